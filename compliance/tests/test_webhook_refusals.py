"""Webhooks refused for their signature become bounded audit records (compliance/services/sources.py):
at most one per (provider, reason, client) and minute, the rest counted into one summary."""

from __future__ import annotations

import time
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.test import Client

from compliance.models import AuditEvent, Outcome
from compliance.services import audit_record_failure_summaries, sources

pytestmark = [pytest.mark.django_db, pytest.mark.urls("jagcall.tests.webhooks.example")]

HOOK = "/hooks/example/twilio/voice/"


@pytest.fixture
def minute(settings, monkeypatch):
    """The clock held still at the start of a minute; the webhook limiter out of the way."""
    import django_ratelimit.core

    now = float(int(time.time()) // 60 * 60 + 5)
    clock = SimpleNamespace(time=lambda: now)
    monkeypatch.setattr(sources, "time", clock)
    monkeypatch.setattr(django_ratelimit.core, "time", clock)
    settings.TWILIO_AUTH_TOKEN = "example-auth-token"
    settings.SENSITIVE_RATE_LIMITS = {**settings.SENSITIVE_RATE_LIMITS, "hooks": "10000/m"}
    return SimpleNamespace(now=now, after=now - 5 + 60 + sources.FAILURE_SUMMARY_GRACE_SECONDS + 1)


def refuse(ip: str, *, signature: str | None = "Zm9yZ2Vk", path: str = HOOK):
    headers = {"X-Twilio-Signature": signature} if signature else {}
    body = urlencode({"AccountSid": "AC" + "1" * 32, "CallSid": "CA1"})
    response = Client(REMOTE_ADDR=ip).post(
        path, body, content_type="application/x-www-form-urlencoded", headers={**headers, "User-Agent": "flood/1.0"}
    )
    assert response.status_code == 403
    return response


def refusals():
    return AuditEvent.objects.platform().filter(action="webhook.signature_refused")


def test_a_refusal_is_recorded_with_the_webhook_as_actor_and_no_organization(minute):
    response = refuse("203.0.113.9")
    event = refusals().get()
    assert event.outcome == Outcome.DENIED and event.organization_id is None
    assert event.actor_key == "webhook:twilio" and event.actor_label == "twilio webhook"
    assert event.ip == "203.0.113.9" and event.user_agent == "flood/1.0"
    assert event.request_id == response["X-Request-ID"]
    assert event.resource_type == "webhook" and event.resource_id == "twilio"
    assert event.metadata["provider"] == "twilio" and event.metadata["reason"] == "invalid"
    assert event.metadata["path"] == HOOK


def test_a_flood_writes_one_record_per_provider_reason_and_client_and_a_summary_per_minute(minute):
    for _ in range(40):
        refuse("203.0.113.10")
    for _ in range(5):
        refuse("203.0.113.10", signature=None)  # another reason
    refuse("203.0.113.11")  # another client
    assert sorted(refusals().values_list("ip", "metadata__reason")) == [
        ("203.0.113.10", "invalid"),
        ("203.0.113.10", "missing"),
        ("203.0.113.11", "invalid"),
    ]
    assert not AuditEvent.objects.exclude(action="webhook.signature_refused").platform().filter(
        action__startswith="webhook."
    ).exists()

    assert audit_record_failure_summaries(now=minute.now) == 0  # not before the minute has ended
    assert audit_record_failure_summaries(now=minute.after) == 2
    summaries = {e.metadata["reason"]: e for e in refusals().filter(metadata__summary=True)}
    assert summaries["invalid"].metadata["count"] == 39 and summaries["invalid"].metadata["seen"] == 40
    assert summaries["missing"].metadata["count"] == 4
    for summary in summaries.values():
        assert summary.metadata["provider"] == "twilio" and summary.metadata["client"] == "203.0.113.10"
        assert summary.actor_key == "webhook:twilio" and summary.organization_id is None
        assert summary.outcome == Outcome.DENIED
    assert refusals().count() == 5
    assert audit_record_failure_summaries(now=minute.after) == 0  # written once


def test_the_next_minute_records_again(minute, monkeypatch):
    refuse("203.0.113.12")
    refuse("203.0.113.12")
    later = SimpleNamespace(time=lambda: minute.now + 60)
    monkeypatch.setattr(sources, "time", later)
    refuse("203.0.113.12")
    assert refusals().filter(metadata__summary__isnull=True).count() == 2
