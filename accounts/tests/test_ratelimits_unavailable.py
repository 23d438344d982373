"""With Redis unreachable, the limits on unauthenticated endpoints fail closed: a clear 503, never a 500
and never the view. Each test runs its own Redis server and stops it (accounts/tests/redis_server.py)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.tests.redis_server import own_redis  # noqa: F401  (fixture)
from compliance.models import AuditEvent

pytestmark = pytest.mark.django_db


def _client() -> Client:
    return Client(REMOTE_ADDR="203.0.113.90")


def test_the_limits_count_in_the_redis_the_test_started(own_redis, owner):  # noqa: F811
    response = _client().post("/auth/login/", {"login": owner.email, "password": "wrong"})
    assert response.status_code == 200
    assert any(b":rl:" in key for key in own_redis.client().keys("*"))  # django-ratelimit's counters


def test_sign_in_answers_503_when_redis_is_down(own_redis, owner, password):  # noqa: F811
    own_redis.stop()
    response = _client().post("/auth/login/", {"login": owner.email, "password": password})
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    page = response.content.decode()
    assert "briefly unavailable" in page and "try again shortly" in page
    assert not AuditEvent.objects.platform().filter(action="user.login").exists()  # the view never ran


def test_saml_acs_answers_503_when_redis_is_down(own_redis, organization):  # noqa: F811
    own_redis.stop()
    response = _client().post(f"/sso/{organization.slug}/acs/", {"SAMLResponse": "eA=="})
    assert response.status_code == 503 and "briefly unavailable" in response.content.decode()


def test_sso_login_start_answers_503_when_redis_is_down(own_redis, organization):  # noqa: F811
    own_redis.stop()
    assert _client().get(f"/sso/{organization.slug}/login/").status_code == 503


def test_the_oauth_token_endpoint_answers_503_in_oauths_shape(own_redis):  # noqa: F811
    own_redis.stop()
    response = _client().post("/oauth/token", {"grant_type": "authorization_code", "client_id": "app", "code": "x"})
    assert response.status_code == 503 and response["Retry-After"] == "30"
    body = response.json()
    assert body["error"] == "temporarily_unavailable" and "Try again" in body["error_description"]


def test_the_jwt_token_endpoints_answer_503_in_the_apis_shape(own_redis, owner, organization, password):  # noqa: F811
    own_redis.stop()
    client = _client()
    obtain = client.post(
        "/api/v1/auth/token",
        {"email": owner.email, "password": password, "organization": organization.slug},
        content_type="application/json",
    )
    assert obtain.status_code == 503 and obtain["Retry-After"] == "30"
    error = obtain.json()["error"]
    assert error["code"] == "service_unavailable" and "Try again" in error["message"]
    refresh = client.post("/api/v1/auth/token/refresh", {"refresh": "x"}, content_type="application/json")
    assert refresh.status_code == 503 and refresh.json()["error"]["code"] == "service_unavailable"


def test_the_other_unauthenticated_pages_fail_closed_too(own_redis):  # noqa: F811
    own_redis.stop()
    client = _client()
    assert client.post("/auth/password/reset/", {"email": "a@example.test"}).status_code == 503
    assert client.post("/auth/signup/", {"email": "a@example.test"}).status_code == 503
    assert client.get("/invitations/some-token/").status_code == 503
    assert client.post("/auth/2fa/authenticate/", {"code": "000000"}).status_code == 503
