"""Per-IP limits on the sensitive pages (accounts/ratelimits.py), counted in the real Redis cache."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse

from accounts.models import Membership
from accounts.ratelimits import SENSITIVE_ROUTES
from accounts.services import invitation_create
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tight(settings, monkeypatch):
    settings.SENSITIVE_RATE_LIMITS = {"default": "3/m", "accounts:invitation-accept": "2/m"}
    # The limits count in fixed windows: hold the clock still so a test never straddles two of them.
    import django_ratelimit.core

    now = time.time()
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: now))
    return settings


def test_at_the_turn_of_a_window_retry_after_is_still_given(settings, monkeypatch):
    import django_ratelimit.core

    settings.SENSITIVE_RATE_LIMITS = {"default": "1/m", "accounts:invitation-accept": "1/m"}
    window_end = django_ratelimit.core._get_window("203.0.113.30", 60)
    # Each check reads the clock twice (its window, then the time left): the refused request's
    # two readings fall either side of the window's end, so the time left rounds to 0.
    readings = iter([window_end - 0.001] * 3 + [float(window_end)])
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: next(readings, window_end)))
    client = from_ip("203.0.113.30")
    client.get("/invitations/guess-1/")
    refused = client.get("/invitations/guess-2/")
    assert refused.status_code == 429 and refused["Retry-After"] == "1"


def from_ip(ip: str) -> Client:
    return Client(REMOTE_ADDR=ip)


def test_every_route_in_the_table_exists():
    for name in SENSITIVE_ROUTES:
        try:
            reverse(name)
        except NoReverseMatch as e:
            # Routes with a key in the URL need their kwargs; the name itself must be known.
            assert "with no arguments not found" in str(e) or "arguments '()'" in str(e), f"{name}: {e}"


def test_the_defaults_are_tighter_for_codes_and_keys(settings):
    limits = settings.SENSITIVE_RATE_LIMITS
    assert limits["default"] == "30/m"
    assert limits["mfa_authenticate"] == "10/m"
    assert limits["accounts:invitation-accept"] == "20/m"


def test_guessing_invitation_links_is_stopped_per_ip(tight):
    guesser = from_ip("203.0.113.7")
    statuses = [guesser.get(f"/invitations/guess-{n}/").status_code for n in range(3)]
    assert statuses == [404, 404, 429]
    refused = guesser.get("/invitations/guess-9/")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert b"Too many attempts" in refused.content and b"Wait" in refused.content
    # Someone else, elsewhere, is not held back.
    assert from_ip("198.51.100.20").get("/invitations/guess-1/").status_code == 404


def test_a_limited_request_changes_nothing(tight, organization, owner):
    invitation, token = invitation_create(organization=organization, actor=owner, email="new@example.test")
    person = UserFactory(email="new@example.test")
    client = from_ip("203.0.113.8")
    client.force_login(person)
    for n in range(2):
        client.get(f"/invitations/wrong-{n}/")
    response = client.post(f"/invitations/{token}/")
    assert response.status_code == 429
    assert not Membership.objects.filter(organization=organization, user=person).exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_sign_in_posts_are_limited_per_ip(tight, owner):
    client = from_ip("203.0.113.9")
    statuses = [
        client.post("/auth/login/", {"login": owner.email, "password": "not the password"}).status_code
        for _ in range(4)
    ]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429
    # Reading the page is not counted: the form still shows.
    assert client.get("/auth/login/").status_code == 200


def test_registration_and_reset_are_limited(tight):
    client = from_ip("203.0.113.10")
    for _ in range(3):
        client.post("/auth/password/reset/", {"email": "someone@example.test"})
    assert client.post("/auth/password/reset/", {"email": "someone@example.test"}).status_code == 429
    for _ in range(3):
        client.post("/auth/signup/", {})
    assert client.post("/auth/signup/", {}).status_code == 429


def test_the_api_token_endpoint_answers_in_the_error_shape(tight, owner, organization):
    client = from_ip("203.0.113.11")
    body = {"email": owner.email, "password": "wrong", "organization": organization.slug}
    for _ in range(3):
        client.post("/api/v1/auth/token", body, content_type="application/json")
    response = client.post("/api/v1/auth/token", body, content_type="application/json")
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "throttled" and "Wait" in error["message"]
    assert int(response["Retry-After"]) >= 1


def test_exceeding_a_limit_is_a_security_event(tight, events):
    client = from_ip("203.0.113.12")
    for n in range(3):
        client.get(f"/invitations/guess-{n}/")
    exceeded = [e for e in events if e["event"] == "rate_limit.exceeded"]
    assert exceeded and exceeded[0]["route"] == "accounts:invitation-accept" and exceeded[0]["ip"] == "203.0.113.12"


def test_second_factor_codes_get_the_tighter_default_limit(owner, monkeypatch):
    import django_ratelimit.core

    now = time.time()
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: now))
    client = from_ip("203.0.113.40")
    statuses = [client.post("/auth/2fa/authenticate/", {"code": "000000"}).status_code for _ in range(11)]
    assert 429 not in statuses[:10]
    assert statuses[10] == 429
    assert client.post("/auth/login/", {"login": owner.email, "password": "wrong"}).status_code == 200  # other pages: own count
