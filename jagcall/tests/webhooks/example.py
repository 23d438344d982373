"""Example webhooks mounted only in tests (``@pytest.mark.urls("jagcall.tests.webhooks.example")``).

They prove the base itself (jagcall/kernel/webhooks/views.py): a Twilio hook
whose account maps to an organization, and a generic HMAC-over-the-raw-body
hook (the shape of Stripe's or Standard Webhooks' schemes) that concerns no
organization. The project's own routes are included too, so the walk of
signed inbound routes can be run over this URLconf.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from django.db import transaction
from django.http import HttpResponse
from django.urls import include, path

from jagcall.kernel.webhooks import SignedWebhookView, TwilioWebhookView
from jagcall.kernel.webhooks.models import ReceivedWebhook

HMAC_SECRET = b"example-secret-for-tests-only"


class Calls:
    """What the example handlers saw (reset by the tests' fixture)."""

    organization_lookups: list = []
    handled: list = []
    committed: list = []
    fail_next: str | None = None  # "raise", "503" or "too_long"
    key_store_down = False  # the auth token's lookup fails as a database that is down does

    @classmethod
    def reset(cls) -> None:
        cls.organization_lookups, cls.handled, cls.committed, cls.fail_next = [], [], [], None
        cls.key_store_down = False


def _unreachable_database():
    """A real connection attempt to a PostgreSQL port nothing listens on: psycopg's OperationalError."""
    import socket

    import psycopg

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free again once closed: nothing listens there
    psycopg.connect(host="127.0.0.1", port=port, dbname="jagcall", connect_timeout=2)


class ExampleTwilioHook(TwilioWebhookView):
    # AccountSid -> organization id, set by the tests (telephony looks this up from its subaccounts).
    accounts: dict = {}

    def auth_tokens(self, request):
        if Calls.key_store_down:
            _unreachable_database()
        return super().auth_tokens(request)

    def organization_for(self, request):
        from accounts.models import Organization

        Calls.organization_lookups.append(request.path)
        organization_id = self.accounts.get(request.POST.get("AccountSid", ""))
        return Organization.objects.filter(pk=organization_id).first() if organization_id else None

    def twilio_event_id(self, request):
        sid, status = request.POST.get("CallSid"), request.POST.get("CallStatus")
        return f"{sid}:{status}" if sid and status else None

    def handle(self, request, organization):
        # The handler's own write, in the dedupe record's transaction (rolled back with it).
        ReceivedWebhook.objects.create(provider="example-handler-write", event_id=uuid.uuid4().hex)
        Calls.handled.append((request.POST.get("CallSid"), organization.pk))
        event = request.POST.get("CallSid")
        transaction.on_commit(lambda: Calls.committed.append(event))  # where a task's .delay would go
        if Calls.fail_next == "raise":
            raise RuntimeError("the handler failed")
        if Calls.fail_next == "503":
            return HttpResponse("try again", status=503, content_type="text/plain")
        if Calls.fail_next == "too_long":  # a value longer than its column, as PostgreSQL refuses it
            ReceivedWebhook.objects.create(provider="x" * 41, event_id="too-long")
        return HttpResponse("<Response/>", content_type="text/xml")


class SpokenRefusalTwilioHook(ExampleTwilioHook):
    def unknown_organization(self, request):
        return HttpResponse("<Response><Say>This number is not in service.</Say></Response>", content_type="text/xml")


class ExampleHmacHook(SignedWebhookView):
    """HMAC-SHA256 of the raw body in a header, an event id in another; platform events (no organization)."""

    provider = "example"
    signature_header = "X-Example-Signature"
    organization_required = False

    def signature_valid(self, request):
        expected = hmac.new(HMAC_SECRET, request.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, request.headers[self.signature_header])

    def event_id(self, request):
        return request.headers.get("X-Example-Event")

    def organization_for(self, request):
        Calls.organization_lookups.append(request.path)
        return None

    def handle(self, request, organization):
        Calls.handled.append((request.headers.get("X-Example-Event"), None))
        return HttpResponse(status=204)


def hmac_signature(body: bytes) -> str:
    return hmac.new(HMAC_SECRET, body, hashlib.sha256).hexdigest()


urlpatterns = [
    path("hooks/example/twilio/<str:kind>/", ExampleTwilioHook.as_view(), name="example-twilio"),
    path("hooks/example/twilio-spoken/", SpokenRefusalTwilioHook.as_view(), name="example-twilio-spoken"),
    path("hooks/example/hmac/", ExampleHmacHook.as_view(), name="example-hmac"),
    path("", include("jagcall.urls")),
]

# The example hooks' cases for the walk of signed inbound routes (accounts/tests/test_signed_inbound.py),
# kept here rather than in a tests/tenancy.py: these routes exist only in this URLconf.
SIGNED_INBOUND = {
    "example-twilio": {"kwargs": {"kind": "voice"}, "provider": "twilio"},
    "example-twilio-spoken": {"kwargs": {}, "provider": "twilio"},
    "example-hmac": {"kwargs": {}, "provider": "example"},
}
