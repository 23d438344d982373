"""Messaging's API endpoints (mounted in the one ``api`` namespace under /api/v1/)."""

from messaging.api import contacts, messages

urlpatterns = [*messages.urlpatterns, *contacts.urlpatterns]
