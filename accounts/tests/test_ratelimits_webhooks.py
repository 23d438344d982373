"""Signed inbound webhooks survive a flood (accounts/ratelimits.py, "signed inbound webhooks"):
refusals are counted per client in the real Redis cache, past the budget the client gets 429 on
every webhook route, valid deliveries are never counted, and the audit log stays bounded."""

from __future__ import annotations

import time
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.test import Client
from twilio.request_validator import RequestValidator

from accounts.tests.redis_server import own_redis  # noqa: F401  (fixture)
from compliance.models import AuditEvent
from compliance.services import sources
from jagcall.tests.webhooks.example import Calls, ExampleTwilioHook

pytestmark = [pytest.mark.django_db, pytest.mark.urls("jagcall.tests.webhooks.example")]

TOKEN = "example-auth-token"
SID = "AC" + "1" * 32
HOOK = "/hooks/example/twilio/voice/"
PUBLIC = "https://hooks.jagcall.example"


@pytest.fixture
def hooks(settings, monkeypatch, organization):
    import django_ratelimit.core

    now = float(int(time.time()) // 300 * 300 + 5)  # the start of a minute and of an audit window
    clock = SimpleNamespace(time=lambda: now)
    monkeypatch.setattr(django_ratelimit.core, "time", clock)
    monkeypatch.setattr(sources, "time", clock)
    settings.SENSITIVE_RATE_LIMITS = {**settings.SENSITIVE_RATE_LIMITS, "hooks": "5/m"}
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.PUBLIC_BASE_URL = PUBLIC
    Calls.reset()
    ExampleTwilioHook.accounts = {SID: organization.pk}
    yield settings
    ExampleTwilioHook.accounts = {}


def deliver(ip: str, *, n: int = 0, signed: bool = True, path: str = HOOK):
    data = {"AccountSid": SID, "CallSid": f"CA{n:032d}", "CallStatus": "ringing"}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + path, data) if signed else "Zm9yZ2Vk"
    return Client(REMOTE_ADDR=ip).post(
        path, urlencode(data), content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature, "I-Twilio-Idempotency-Token": f"idem-{ip}-{n}"},
    )


def test_a_flood_of_forged_deliveries_ends_in_429_and_the_audit_log_stays_bounded(hooks):
    statuses = [deliver("198.51.100.66", n=n, signed=False).status_code for n in range(60)]
    assert statuses[:5] == [403] * 5  # the budget of refusals
    assert set(statuses[5:]) == {429}  # then refused before the signature is even checked
    refused = deliver("198.51.100.66", signed=False)
    assert refused["Retry-After"].isdigit() and int(refused["Retry-After"]) <= 60
    assert refused["Content-Type"].startswith("text/plain") and b"Too many requests" in refused.content
    # Even a valid delivery from that client waits for the window to turn.
    assert deliver("198.51.100.66", n=999).status_code == 429
    assert Calls.organization_lookups == [] and Calls.handled == []

    platform = AuditEvent.objects.platform()
    assert platform.filter(action="webhook.signature_refused").count() == 1  # one per provider, reason, client, minute
    assert platform.filter(action="rate_limit.exceeded").count() <= hooks.AUDIT_FAILURES_RECORDED_PER_WINDOW
    assert platform.count() <= 1 + hooks.AUDIT_FAILURES_RECORDED_PER_WINDOW


def test_valid_deliveries_are_never_counted(hooks):
    for n in range(30):  # six times the budget of refusals
        assert deliver("198.51.100.67", n=n).status_code == 200
    assert len(Calls.handled) == 30


def test_one_flooding_client_does_not_stop_another(hooks):
    for n in range(8):
        deliver("198.51.100.68", n=n, signed=False)
    assert deliver("198.51.100.68", n=100).status_code == 429
    assert deliver("198.51.100.69", n=101).status_code == 200


def test_the_budget_is_shared_by_every_webhook_route_of_the_client(hooks):
    for n in range(5):
        assert deliver("198.51.100.70", n=n, signed=False, path="/hooks/example/twilio/sms/").status_code == 403
    assert deliver("198.51.100.70", n=6, path=HOOK).status_code == 429
    body = b'{"id": "evt_1"}'
    other = Client(REMOTE_ADDR="198.51.100.70").post(
        "/hooks/example/hmac/", body, content_type="application/json", headers={"X-Example-Signature": "00"}
    )
    assert other.status_code == 429


def test_when_redis_is_down_webhooks_answer_503_and_the_view_never_runs(hooks, own_redis):  # noqa: F811
    own_redis.stop()
    response = deliver("198.51.100.71")
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert Calls.handled == []


def test_the_read_before_the_signature_answers_what_the_counter_holds(hooks):
    """Each delivery reads its client's refusals with one GET; it must see exactly what the counter (the rate
    limiter's own, incremented on each refusal) holds, window and all."""
    from django.test import RequestFactory
    from django_ratelimit.core import get_usage

    from accounts.ratelimits import _client_rate, _refusals_read

    client, group, rate = "198.51.100.72", "webhook-refusals:hooks", _client_rate("hooks")
    request = RequestFactory().post(HOOK, REMOTE_ADDR=client)

    def theirs(increment=False):
        return get_usage(request, group=group, key=lambda _group, _request: client, rate=rate, increment=increment)

    assert _refusals_read(group, client, rate)["count"] == 0  # nothing counted yet, and nothing written by asking
    for _ in range(3):
        theirs(increment=True)
    assert _refusals_read(group, client, rate) == theirs() and theirs()["count"] == 3
    assert _refusals_read("webhook-refusals:other", client, rate)["count"] == 0  # another budget
    assert _refusals_read(group, "198.51.100.73", rate)["count"] == 0  # another client
