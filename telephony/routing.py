"""Telephony's websocket routes (composed in jagcall/routing.py)."""

from django.urls import path

from telephony.agent_test import AgentTestConsumer
from telephony.consumers import MediaStreamConsumer

# Routes of the organization's members (under /ws/o/<org_slug>/, OrganizationConsumer).
websocket_urlpatterns = [
    # A test of an agent from its page, by text or by voice in the browser (telephony/agent_test.py).
    path("ws/o/<slug:org_slug>/agents/<uuid:agent_id>/test/", AgentTestConsumer.as_asgi(), name="agent-test"),
]

# [!!] Routes a provider opens, authenticated by a single-use token instead of a session
# (accounts.consumers.ProviderStreamConsumer): Twilio's media stream sends no cookie and no Origin.
provider_stream_urlpatterns = [
    path("ws/telephony/stream/<uuid:call_id>/", MediaStreamConsumer.as_asgi(), name="telephony-stream"),
]
