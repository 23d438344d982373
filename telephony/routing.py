"""Telephony's websocket routes (composed in jagcall/routing.py)."""

from django.urls import path

from telephony.consumers import MediaStreamConsumer

# Routes of the organization's members (under /ws/o/<org_slug>/, OrganizationConsumer).
websocket_urlpatterns: list = []

# [!!] Routes a provider opens, authenticated by a single-use token instead of a session
# (accounts.consumers.ProviderStreamConsumer): Twilio's media stream sends no cookie and no Origin.
provider_stream_urlpatterns = [
    path("ws/telephony/stream/<uuid:call_id>/", MediaStreamConsumer.as_asgi(), name="telephony-stream"),
]
