"""Idempotency-Key on POST, over the real Redis: a retried request runs once."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.urls import include, path
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.test import APIClient

from accounts.api.base import OrganizationAPIView
from accounts.api_keys.services import api_key_create
from accounts.models import ApiKey
from accounts.scopes import ALL_SCOPES
from jagcall.kernel.api import idempotency

from accounts.principals import Principal

OPERATOR = Principal.system("operator")  # service keys, as the create_api_key command makes them

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

THINGS = "/api/v1/test-things"
API_KEYS = "/api/v1/api-keys"


class ThingCreateApi(OrganizationAPIView):
    """POST {name, delay?} -> 201 {id, name}: creates a row (an API key, through its service) and says so."""

    required_scopes = {"POST": "api_keys:write"}
    calls = 0

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        delay = serializers.FloatField(required=False, default=0)

    def get_org_queryset(self):
        return ApiKey.objects.unscoped("test: inspects rows directly").all()

    def post(self, request):
        type(self).calls += 1
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        time.sleep(serializer.validated_data["delay"])
        api_key, _secret = api_key_create(
            organization=self.organization,
            actor=OPERATOR, service_role="owner",
            name=serializer.validated_data["name"],
            scopes=["api_keys:read"],
        )
        return Response({"id": str(api_key.id), "name": api_key.name}, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("api/v1/test-things", ThingCreateApi.as_view()),
    path("", include("jagcall.urls")),
]


@pytest.fixture(autouse=True)
def _reset_calls():
    ThingCreateApi.calls = 0


def raw_key(organization) -> str:
    return api_key_create(
        organization=organization, actor=OPERATOR, service_role="owner", name="Client",
        scopes=["api_keys:read", "api_keys:write"],
    )[1]


def client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def post(client, url, body, key=None):
    extra = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(url, body, format="json", **extra)


def redis_client():
    return redis.Redis.from_url(settings.REDIS_CACHE_URL)


# --- replay --------------------------------------------------------------------------------


def test_replay_returns_the_first_response_and_creates_nothing(organization):
    client = client_for(raw_key(organization))
    before = ApiKey.objects.unscoped("test: inspects rows directly").count()
    first = post(client, THINGS, {"name": "one"}, key="order-123")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    again = post(client, THINGS, {"name": "one"}, key="order-123")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert ThingCreateApi.calls == 1
    assert ApiKey.objects.unscoped("test: inspects rows directly").count() == before + 1


def test_the_body_is_compared_canonically(organization):
    client = client_for(raw_key(organization))
    headers = {"content_type": "application/json", "HTTP_IDEMPOTENCY_KEY": "k1"}
    first = client.post(THINGS, '{"name": "one", "delay": 0}', **headers)
    again = client.post(THINGS, '{"delay":0,"name":"one"}', **headers)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert ThingCreateApi.calls == 1


def test_responses_are_kept_for_a_day(organization):
    client = client_for(raw_key(organization))
    post(client, THINGS, {"name": "one"}, key="ttl")
    keys = list(redis_client().scan_iter(f"{idempotency.KEY_PREFIX}:response:*"))
    assert len(keys) == 1
    assert 24 * 3600 - 60 < redis_client().ttl(keys[0]) <= 24 * 3600
    assert not list(redis_client().scan_iter(f"{idempotency.KEY_PREFIX}:lock:*")), "the lock is released"


def test_without_the_header_every_request_runs(organization):
    client = client_for(raw_key(organization))
    before = ApiKey.objects.unscoped("test: inspects rows directly").count()
    post(client, THINGS, {"name": "one"})
    post(client, THINGS, {"name": "one"})
    assert ThingCreateApi.calls == 2
    assert ApiKey.objects.unscoped("test: inspects rows directly").count() == before + 2


def test_keys_belong_to_one_caller(organization, other_organization):
    mine, theirs = client_for(raw_key(organization)), client_for(raw_key(other_organization))
    assert post(mine, THINGS, {"name": "one"}, key="shared").status_code == 201
    response = post(theirs, THINGS, {"name": "one"}, key="shared")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert ThingCreateApi.calls == 2
    assert ApiKey.objects.for_org(other_organization).filter(name="one").count() == 1


def test_a_persons_keys_are_scoped_to_the_organization_and_the_credential(organization, other_organization, owner):
    """[!!] The same person in two organizations, and a key and a person in one, never share a record."""
    from accounts.jwt.tokens import OrganizationRefreshToken
    from accounts.tests.factories import MembershipFactory

    MembershipFactory(organization=other_organization, user=owner, role="owner")

    def jwt(org):
        return str(OrganizationRefreshToken.for_membership(user=owner, organization=org).access_token)

    in_acme, in_other = client_for(jwt(organization)), client_for(jwt(other_organization))
    assert post(in_acme, THINGS, {"name": "same"}, key="k-1").status_code == 201
    replay = post(in_other, THINGS, {"name": "same"}, key="k-1")
    assert replay.status_code == 201 and "Idempotent-Replayed" not in replay
    assert ApiKey.objects.for_org(other_organization).filter(name="same").count() == 1
    # In one organization, an API key's record is not the person's.
    as_key = post(client_for(raw_key(organization)), THINGS, {"name": "same"}, key="k-1")
    assert as_key.status_code == 201 and "Idempotent-Replayed" not in as_key
    assert ThingCreateApi.calls == 3
    # While the person's own retry replays.
    again = post(in_acme, THINGS, {"name": "same"}, key="k-1")
    assert again["Idempotent-Replayed"] == "true" and ThingCreateApi.calls == 3


def test_same_key_different_body_is_a_409(organization):
    client = client_for(raw_key(organization))
    before = ApiKey.objects.unscoped("test: inspects rows directly").count()
    post(client, THINGS, {"name": "one"}, key="order-1")
    response = post(client, THINGS, {"name": "two"}, key="order-1")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "different request" in error["message"]
    assert ThingCreateApi.calls == 1
    assert ApiKey.objects.unscoped("test: inspects rows directly").count() == before + 1
    # Another path with the same key is another request too.
    assert post(client, API_KEYS, {"name": "one"}, key="order-1").status_code == 409


def test_errors_are_not_stored_so_a_retry_runs_again(organization):
    client = client_for(raw_key(organization))
    assert post(client, THINGS, {"name": ""}, key="retry").status_code == 400
    response = post(client, THINGS, {"name": ""}, key="retry")
    assert response.status_code == 400
    assert "Idempotent-Replayed" not in response
    assert ThingCreateApi.calls == 2


def test_a_refused_request_stores_nothing(organization):
    read_only = api_key_create(
        organization=organization, actor=OPERATOR, service_role="owner", name="ro", scopes=["api_keys:read"]
    )[1]
    assert post(client_for(read_only), THINGS, {"name": "one"}, key="k").status_code == 403
    assert not list(redis_client().scan_iter(f"{idempotency.KEY_PREFIX}:*"))


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "line\x7f"])
def test_a_malformed_key_is_a_400(organization, key):
    client = client_for(raw_key(organization))
    before = ApiKey.objects.unscoped("test: inspects rows directly").count()
    response = post(client, THINGS, {"name": "one"}, key=key)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "idempotency_key_invalid"
    assert "printable ASCII" in error["message"]
    assert ThingCreateApi.calls == 0
    assert ApiKey.objects.unscoped("test: inspects rows directly").count() == before


@pytest.mark.parametrize("key", ["a", "x" * 255, "550e8400-e29b-41d4-a716-446655440000", "with space ~!"])
def test_well_formed_keys_are_accepted(organization, key):
    assert post(client_for(raw_key(organization)), THINGS, {"name": "one"}, key=key).status_code == 201


# --- responses that must not be stored -------------------------------------------------------


def test_api_key_creation_is_not_replayed(organization):
    """Its response shows the secret once (no-store): a replay says it succeeded, and shows no secret."""
    client = client_for(raw_key(organization))
    before = ApiKey.objects.unscoped("test: inspects rows directly").count()
    body = {"name": "CRM", "scopes": ["api_keys:read"]}
    first = post(client, API_KEYS, body, key="create-crm")
    assert first.status_code == 201
    secret = first.json()["key"]
    again = post(client, API_KEYS, body, key="create-crm")
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "idempotency_replay_unavailable"
    assert "succeeded" in error["message"] and "cannot be shown again" in error["message"]
    assert secret not in again.content.decode()
    assert ApiKey.objects.unscoped("test: inspects rows directly").count() == before + 1
    stored = [redis_client().get(k) for k in redis_client().scan_iter(f"{idempotency.KEY_PREFIX}:*")]
    assert stored and all(secret.encode() not in value for value in stored)


# --- concurrency and failure -------------------------------------------------------------------


def _concurrent_posts(token, bodies_and_starts):
    results: list = [None] * len(bodies_and_starts)

    def run(index, body, start_delay):
        try:
            time.sleep(start_delay)
            results[index] = post(client_for(token), THINGS, body, key="same")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, b, d)) for i, (b, d) in enumerate(bodies_and_starts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_duplicate_runs_once(organization):
    token = raw_key(organization)
    before = ApiKey.objects.unscoped("test: inspects rows directly").count()
    body = {"name": "one", "delay": 0.5}
    first, second = _concurrent_posts(token, [(body, 0), (body, 0.1)])
    assert {first.status_code, second.status_code} == {201}
    assert first.json() == second.json()
    assert sorted(r.get("Idempotent-Replayed", "") for r in (first, second)) == ["", "true"]
    assert ThingCreateApi.calls == 1
    assert ApiKey.objects.unscoped("test: inspects rows directly").count() == before + 1


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_that_waits_too_long_gets_a_409(organization, monkeypatch):
    monkeypatch.setattr(idempotency, "IDEMPOTENCY_WAIT_SECONDS", 0.2)
    token = raw_key(organization)
    before = ApiKey.objects.unscoped("test: inspects rows directly").count()
    body = {"name": "one", "delay": 1.0}
    first, second = _concurrent_posts(token, [(body, 0), (body, 0.2)])
    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_in_progress"
    assert ThingCreateApi.calls == 1
    assert ApiKey.objects.unscoped("test: inspects rows directly").count() == before + 1


def test_without_redis_a_keyed_request_is_refused(organization, monkeypatch):
    client = client_for(raw_key(organization))

    def unavailable():
        raise redis.ConnectionError("down")

    monkeypatch.setattr(idempotency, "_client", unavailable)
    response = post(client, THINGS, {"name": "one"}, key="k")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "idempotency_unavailable"
    assert ThingCreateApi.calls == 0
    assert post(client, THINGS, {"name": "one"}).status_code == 201  # no header: not concerned
