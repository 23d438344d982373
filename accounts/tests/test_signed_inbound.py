"""Every signed inbound webhook refuses unsigned and forged requests, and writes nothing for them.

The walk (accounts/tests/urlwalk.py) finds every route under /hooks/; each
must derive from jagcall.kernel.webhooks.SignedWebhookView and be listed in
SIGNED_INBOUND of its app's tests/tenancy.py, so a new webhook cannot ship
without this test posting to it. The walk runs over the project's URLs and
over the example hooks mounted in tests (jagcall/tests/webhooks/example.py),
which include the project's.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.tests.urlwalk import classify, signed_inbound_cases, signed_inbound_routes
from compliance.models import AuditEvent
from jagcall.kernel.webhooks.models import ReceivedWebhook
from jagcall.tests.webhooks import example

pytestmark = pytest.mark.django_db

PROJECT = "jagcall.urls"
EXAMPLE = "jagcall.tests.webhooks.example"
# Written by a refusal on purpose: its bounded audit record (compliance/services/sources.py).
AUDIT_TABLES = {"compliance_auditevent"}
# What a provider would post (Twilio's form), so a view that reads the form before refusing would show it.
FORM = {"AccountSid": "AC" + "0" * 32, "CallSid": "CA" + "0" * 32, "CallStatus": "ringing", "From": "+15005550006"}
# A forged signature in each provider's own format (else any base64 text): well formed, so the refusal is the
# signature check's and not the parser's. Stripe's: "t=<now>,v1=<HMAC-SHA256 of t.body>" with a wrong secret.
def stripe_signature(body: bytes, secret: str = "whsec_not-the-endpoints-secret") -> str:
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


FORGERS = {"stripe": stripe_signature}


@pytest.fixture(params=[PROJECT, EXAMPLE])
def urlconf(request, settings, monkeypatch):
    import time
    from types import SimpleNamespace

    from compliance.services import sources

    now = time.time()
    monkeypatch.setattr(sources, "time", SimpleNamespace(time=lambda: now))  # one audit window throughout
    settings.ROOT_URLCONF = request.param
    settings.SENSITIVE_RATE_LIMITS = {**settings.SENSITIVE_RATE_LIMITS, "hooks": "10000/m"}
    settings.TWILIO_AUTH_TOKEN = "walk-auth-token"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_walk-signing-secret"
    cases = signed_inbound_cases()
    if request.param == EXAMPLE:
        cases = {**cases, **example.SIGNED_INBOUND}
    return cases


def _row_counts() -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table in sorted(set(connection.introspection.table_names()) - AUDIT_TABLES):
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def test_every_hooks_route_is_a_listed_signed_webhook(urlconf):
    routes, problems = signed_inbound_routes(urlconf)
    assert not problems, "\n".join(problems)
    listed_but_missing = set(urlconf) - {r.name for r in routes}
    assert not listed_but_missing, f"SIGNED_INBOUND lists routes that do not exist: {sorted(listed_but_missing)}"


def test_an_unlisted_webhook_fails_the_walk(settings):
    settings.ROOT_URLCONF = EXAMPLE
    _scoped, _public, problems = classify()  # without the example's SIGNED_INBOUND
    unlisted = [p for p in problems if "not listed in SIGNED_INBOUND" in p]
    assert len(unlisted) == 3 and any("example-hmac" in p for p in unlisted)
    _scoped, public, problems = classify(signed_inbound={**signed_inbound_cases(), **example.SIGNED_INBOUND})
    assert not problems and "example-hmac" in {r.name for r in public}


def test_unsigned_and_forged_requests_are_refused_and_write_nothing(urlconf):
    routes, _problems = signed_inbound_routes(urlconf)
    before = _row_counts()
    audit_before = set(AuditEvent.objects.platform().values_list("id", flat=True))
    failures = []
    for route in routes:
        url = reverse(route.name, kwargs=urlconf[route.name].get("kwargs", {}))
        header = route.view_class.signature_header
        forge = FORGERS.get(route.view_class.provider, lambda body: "Zm9yZ2VkIHNpZ25hdHVyZQ==")
        for label in ("unsigned", "forged"):
            for body, content_type in (
                (urlencode(FORM).encode(), "application/x-www-form-urlencoded"),
                (b'{"id": "evt_forged", "type": "invoice.paid"}', "application/json"),
            ):
                headers = {header: forge(body)} if label == "forged" else {}
                headers = {**headers, "I-Twilio-Idempotency-Token": "forged-idem", "X-Example-Event": "forged"}
                client = Client(REMOTE_ADDR="203.0.113.50")
                response = client.post(url, body, content_type=content_type, headers=headers)
                if response.status_code != 403:
                    failures.append(f"POST {url} ({label}, {content_type}): {response.status_code}, expected 403")
    assert not failures, "\n".join(failures)
    assert ReceivedWebhook.objects.count() == 0
    assert _row_counts() == before, "a refused webhook wrote rows"
    recorded = list(AuditEvent.objects.platform().exclude(id__in=audit_before).values_list("action", flat=True))
    assert set(recorded) <= {"webhook.signature_refused"}
    # One record per (provider, reason, client) and minute, however many routes and bodies.
    assert len(recorded) <= 2 * len({r.view_class.provider for r in routes})


def test_the_stripe_forgery_is_well_formed():
    """Signed with the endpoint's secret, the same header passes Stripe's check: only the secret is wrong."""
    import stripe

    body = b'{"id": "evt_forged", "type": "invoice.paid"}'
    assert stripe.WebhookSignature.verify_header(body.decode(), stripe_signature(body, "whsec_right"), "whsec_right", 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode(), stripe_signature(body), "whsec_right", 300)
