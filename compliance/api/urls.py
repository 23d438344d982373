"""API routes, joined with the other apps' under /api/v1/ in namespace "api" by jagcall/urls.py."""

from django.urls import path

from compliance.api import views

urlpatterns = [
    path("audit-events", views.AuditEventListApi.as_view(), name="audit-event-list"),
    path("do-not-call", views.DoNotCallListApi.as_view(), name="do-not-call-list"),
    path("do-not-call/<uuid:do_not_call_id>", views.DoNotCallDetailApi.as_view(), name="do-not-call-detail"),
]
