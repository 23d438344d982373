"""The SMS hooks under a flood: forged texts and status callbacks run out the client's budget and get 429,
write nothing, keep the audit log bounded; valid texts from Twilio's other addresses still arrive."""

from __future__ import annotations

import time
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from compliance.models import AuditEvent
from compliance.services import sources
from messaging.models import Message, Subscription
from messaging.tests.support import message_sid, sms_line
from telephony.services.twilio_accounts import auth_token_for_account_sid
from twilio.request_validator import RequestValidator

pytestmark = pytest.mark.django_db

PUBLIC = "https://app.jagcall.test"


@pytest.fixture
def number(settings, monkeypatch, twilio_standin, organization):
    import django_ratelimit.core

    now = float(int(time.time()) // 300 * 300 + 5)  # the start of a minute and of an audit window
    clock = SimpleNamespace(time=lambda: now)
    monkeypatch.setattr(django_ratelimit.core, "time", clock)
    monkeypatch.setattr(sources, "time", clock)
    settings.SENSITIVE_RATE_LIMITS = {**settings.SENSITIVE_RATE_LIMITS, "hooks": "5/m"}
    settings.PUBLIC_BASE_URL = PUBLIC
    return sms_line(organization, "+14155550123")


def deliver(number, ip: str, *, name="twilio-hooks:sms", signed: bool = True, body="STOP"):
    sid = message_sid()
    data = {"AccountSid": number.account_sid, "MessageSid": sid, "From": "+12129870188", "To": number.number,
            "Body": body, "MessageStatus": "delivered"}  # fmt: skip
    path = reverse(name)
    token = auth_token_for_account_sid(number.account_sid)
    signature = RequestValidator(token).compute_signature(PUBLIC + path, data) if signed else "Zm9yZ2Vk"
    return Client(REMOTE_ADDR=ip).post(
        path, urlencode(data), content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )  # fmt: skip


def test_a_flood_of_forged_texts_ends_in_429_writes_nothing_and_stays_bounded(number, organization, settings):
    statuses = [deliver(number, "198.51.100.66", signed=False).status_code for _ in range(40)]
    statuses += [deliver(number, "198.51.100.66", name="twilio-hooks:sms-status", signed=False).status_code
                 for _ in range(20)]  # fmt: skip
    assert statuses[:5] == [403] * 5 and set(statuses[5:]) == {429}
    assert not Message.objects.for_org(organization).exists()
    assert not Subscription.objects.for_org(organization).exists()
    platform = AuditEvent.objects.platform()
    assert platform.filter(action="webhook.signature_refused").count() == 1
    assert platform.count() <= 1 + settings.AUDIT_FAILURES_RECORDED_PER_WINDOW
    # Twilio itself, from another address, is not held up by the flooding client.
    valid = deliver(number, "198.51.100.99", body="Hi, is Friday possible?")
    assert valid.status_code == 200
    assert [m.body for m in Message.objects.for_org(organization)] == ["Hi, is Friday possible?"]


def test_valid_texts_are_never_counted_against_the_budget(number, organization):
    for turn in range(12):  # more than twice the budget of refusals
        assert deliver(number, "198.51.100.67", body=f"Question {turn}").status_code == 200
    assert Message.objects.for_org(organization).count() == 12
