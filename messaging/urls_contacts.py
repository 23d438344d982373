"""The contacts pages, under /o/<org_slug>/messages/ (messaging/views_contacts.py)."""

from django.urls import path

from messaging import views_contacts as views

urlpatterns = [
    path("contacts/", views.ContactListView.as_view(), name="contact-list"),
    path("contacts/new/", views.ContactCreateView.as_view(), name="contact-create"),
    path("contacts/export.csv", views.ContactExportView.as_view(), name="contact-export"),
    path("contacts/import/", views.ContactImportView.as_view(), name="contact-import"),
    path("contacts/import/<uuid:import_id>/", views.ContactImportDetailView.as_view(), name="contact-import-detail"),
    path(
        "contacts/import/<uuid:import_id>/progress/",
        views.ContactImportProgressView.as_view(),
        name="contact-import-progress",
    ),
    path(
        "contacts/import/<uuid:import_id>/confirm/",
        views.ContactImportConfirmView.as_view(),
        name="contact-import-confirm",
    ),
    path(
        "contacts/import/<uuid:import_id>/discard/",
        views.ContactImportDiscardView.as_view(),
        name="contact-import-discard",
    ),
    path(
        "contacts/import/<uuid:import_id>/rows-not-imported.csv",
        views.ContactImportErrorsView.as_view(),
        name="contact-import-errors",
    ),
    path("contacts/<uuid:contact_id>/", views.ContactDetailView.as_view(), name="contact-detail"),
    path("contacts/<uuid:contact_id>/edit/", views.ContactUpdateView.as_view(), name="contact-update"),
    path("contacts/<uuid:contact_id>/delete/", views.ContactDeleteView.as_view(), name="contact-delete"),
]
