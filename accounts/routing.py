from django.urls import path

from accounts.consumers import OrganizationEventsConsumer

websocket_urlpatterns = [
    path("ws/o/<slug:org_slug>/events/", OrganizationEventsConsumer.as_asgi(), name="org-events"),
]
