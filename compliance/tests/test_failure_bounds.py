"""A flood of failures writes a bounded number of audit records (compliance/services/sources.py):
per (kind, target, window) the first few one by one, then one summary carrying the count."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from django.test import Client

from accounts.security_events import emit
from accounts.tests.redis_server import own_redis  # noqa: F401  (fixture)
from compliance.models import AuditEvent, Outcome
from compliance.services import audit_record_failure_summaries
from compliance.services import sources

pytestmark = pytest.mark.django_db

WINDOW = 300


@pytest.fixture
def frozen(settings, monkeypatch):
    """The clock held still (rate-limit windows and audit windows), at the start of an audit window."""
    import django_ratelimit.core

    now = float(int(time.time()) // WINDOW * WINDOW + 10)
    clock = SimpleNamespace(time=lambda: now)
    monkeypatch.setattr(django_ratelimit.core, "time", clock)
    monkeypatch.setattr(sources, "time", clock)
    settings.AUDIT_FAILURE_WINDOW_SECONDS = WINDOW
    settings.AUDIT_FAILURES_RECORDED_PER_WINDOW = 5
    return SimpleNamespace(now=now, window_end=now - 10 + WINDOW, settings=settings)


@pytest.fixture
def limits_out_of_the_way(frozen):
    frozen.settings.SENSITIVE_RATE_LIMITS = {"default": "10000/m"}
    frozen.settings.SENSITIVE_TARGET_RATE_LIMITS = {
        budget: "10000/m" for budget in frozen.settings.SENSITIVE_TARGET_RATE_LIMITS
    }
    frozen.settings.ACCOUNT_RATE_LIMITS = False  # every attempt reaches the password check
    return frozen


def _flush_after_the_window(frozen) -> int:
    return audit_record_failure_summaries(now=frozen.window_end + sources.FAILURE_SUMMARY_GRACE_SECONDS + 1)


def test_500_failed_sign_ins_for_a_member_write_a_handful_of_rows(limits_out_of_the_way, owner, organization, rf):
    from django.contrib.auth import authenticate

    def everywhere() -> int:  # the platform's chain and the member's organization's
        return AuditEvent.objects.platform().count() + AuditEvent.objects.for_org(organization).count()

    before = everywhere()
    # Through the sign-in page (the first 50) and then Django's authenticate() directly, which is
    # what the page calls and what announces each failure: the same path, without 450 page renders.
    for n in range(50):
        response = Client(REMOTE_ADDR=f"10.0.0.{n + 1}").post("/auth/login/", {"login": owner.email, "password": f"guess {n}"})
        assert response.status_code == 200
    for n in range(50, 500):
        request = rf.post("/auth/login/", REMOTE_ADDR=f"10.0.{n // 250}.{n % 250 + 1}")
        assert authenticate(request, email=owner.email, password=f"guess {n}") is None
    failed = AuditEvent.objects.platform().filter(action="user.login_failed")
    assert failed.count() == 5  # the first five of the window, one by one
    assert everywhere() - before == 5
    assert not AuditEvent.objects.for_org(organization).exists()

    assert audit_record_failure_summaries(now=limits_out_of_the_way.now) == 0  # not before the window has ended
    assert _flush_after_the_window(limits_out_of_the_way) == 1
    summary = failed.get(metadata__summary=True)
    assert summary.outcome == Outcome.FAILED and summary.organization_id is None
    assert summary.metadata["count"] == 495 and summary.metadata["seen"] == 500
    assert summary.metadata["email"] == owner.email or summary.actor_label == owner.email
    assert summary.metadata["window_end"] > summary.metadata["window_start"]
    assert _flush_after_the_window(limits_out_of_the_way) == 0  # written once
    assert everywhere() - before == 6


def test_a_flood_of_invalid_sso_responses_stays_bounded_in_the_organizations_log(
    limits_out_of_the_way, owner, organization, tmp_path
):
    from accounts.sso import services as sso
    from accounts.tests.test_sso import TestIdP

    organization.plan_code = "enterprise"
    organization.save(update_fields=["plan_code"])
    sso.sso_configure(
        organization=organization, actor=owner, metadata_xml=TestIdP(tmp_path).metadata_xml, enabled=True, require_sso=False
    )
    for n in range(60):
        response = Client(REMOTE_ADDR=f"10.1.0.{n + 1}").post(
            f"/sso/{organization.slug}/acs/", {"SAMLResponse": "bm90IGEgcmVzcG9uc2U="}
        )
        assert response.status_code in (400, 403)
    chain = AuditEvent.objects.for_org(organization).filter(action="sso.login_failed")
    assert chain.count() == 5
    assert _flush_after_the_window(limits_out_of_the_way) == 1
    summary = chain.get(metadata__summary=True)
    assert summary.metadata["count"] == 55 and summary.metadata["seen"] == 60
    assert chain.count() == 6


def test_refusals_by_the_limits_are_bounded_and_stay_out_of_organizations_logs(frozen, owner, organization):
    frozen.settings.SENSITIVE_RATE_LIMITS = {"default": "3/m"}
    frozen.settings.SENSITIVE_TARGET_RATE_LIMITS = {**frozen.settings.SENSITIVE_TARGET_RATE_LIMITS, "sign_in": "3/5m"}
    flood = Client(REMOTE_ADDR="10.2.0.1")
    for _ in range(60):  # one address: refused for the address
        flood.post("/auth/login/", {"login": "someone@example.test", "password": "x"})
    for n in range(60):  # many addresses, one account: refused for the account
        Client(REMOTE_ADDR=f"10.3.0.{n + 1}").post("/auth/login/", {"login": owner.email, "password": "x"})
    refused = AuditEvent.objects.platform().filter(action="rate_limit.exceeded")
    assert refused.count() == 10  # five per (route, window) and five per (account, window)
    assert set(refused.values_list("outcome", flat=True)) == {Outcome.DENIED}
    assert not AuditEvent.objects.for_org(organization).exists()
    assert _flush_after_the_window(frozen) == 2
    counts = sorted(e.metadata["count"] for e in refused.filter(metadata__summary=True))
    assert counts == [52, 52]  # 57 refused for the address and 57 for the account, 5 of each recorded


def test_spraying_many_emails_is_bounded_per_kind(frozen, rf_request):
    frozen.settings.AUDIT_FAILURES_RECORDED_PER_KIND = 20
    request = rf_request()
    for n in range(100):
        emit("user.login_failed", request=request, email=f"person{n}@example.test")
    assert AuditEvent.objects.platform().filter(action="user.login_failed").count() == 20
    assert _flush_after_the_window(frozen) == 1
    summary = AuditEvent.objects.platform().get(action="user.login_failed", metadata__summary=True)
    assert summary.metadata["count"] == 80 and "many" in summary.metadata["targets"]


def test_successes_and_failures_without_a_request_are_always_recorded(frozen, owner, rf_request):
    request = rf_request(user=owner)
    for _ in range(10):
        emit("user.login", request=request, user=owner)
    for _ in range(10):
        emit("user.login_failed", email="job@example.test")  # no request: a job, not a flood
    assert AuditEvent.objects.platform().filter(action="user.login").count() == 10
    assert AuditEvent.objects.platform().filter(action="user.login_failed").count() == 10


def test_each_window_has_its_own_first_few(frozen, rf_request, monkeypatch):
    request = rf_request()
    for _ in range(8):
        emit("user.mfa_failed", request=request, email="a@example.test")
    monkeypatch.setattr(sources, "time", SimpleNamespace(time=lambda: frozen.now + WINDOW))
    for _ in range(8):
        emit("user.mfa_failed", request=request, email="a@example.test")
    assert AuditEvent.objects.platform().filter(action="user.mfa_failed").count() == 10
    assert audit_record_failure_summaries(now=frozen.window_end + WINDOW + 60) == 2


def test_with_redis_down_every_failure_is_recorded(own_redis, frozen, rf_request):  # noqa: F811
    own_redis.stop()
    request = rf_request()
    for _ in range(8):
        emit("user.login_failed", request=request, email="a@example.test")
    assert AuditEvent.objects.platform().filter(action="user.login_failed").count() == 8
