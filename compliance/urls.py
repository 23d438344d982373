"""Portal routes, included under /o/<org_slug>/audit/ by jagcall/urls.py."""

from django.urls import path

from compliance import views

app_name = "audit"

urlpatterns = [
    path("", views.AuditEventListView.as_view(), name="event-list"),
    path("export.csv", views.AuditEventExportView.as_view(export_format="csv"), name="event-export-csv"),
    path("export.jsonl", views.AuditEventExportView.as_view(export_format="jsonl"), name="event-export-jsonl"),
]
