"""API rate limits (jagcall/kernel/api/throttling.py) against the real Redis of the test run.

Most HTTP tests lower the limits through settings so they stay fast; the
limiter itself is also checked at the real 200/30 figures, and the
concurrency tests fire 60 simultaneous writes at a real threaded server.
"""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from collections import Counter
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connections
from django.test.testcases import LiveServerThread
from rest_framework.test import APIClient

from accounts.jwt.tokens import OrganizationRefreshToken
from accounts.permissions import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from jagcall.kernel.api import throttling

ME_URL = "/api/v1/me"
TOKEN_URL = "/api/v1/auth/token"


def access_token(user=None, organization=None) -> str:
    organization = organization or OrganizationFactory()
    # Admins may write (POST) in the organization; a member's writes are refused before counting.
    user = user or MembershipFactory(organization=organization, user=UserFactory(), role=Role.ADMIN).user
    return str(OrganizationRefreshToken.for_membership(user=user, organization=organization).access_token)


def client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def small_limits(settings):
    settings.API_RATE_LIMIT_READS = 5
    settings.API_RATE_LIMIT_WRITES = 3
    settings.API_RATE_LIMIT_WINDOW_SECONDS = 60
    return settings


# --- the limiter itself, at the real figures ----------------------------------------------


def test_the_limiter_admits_exactly_the_configured_reads_and_writes_per_window():
    assert (settings.API_RATE_LIMIT_READS, settings.API_RATE_LIMIT_WRITES) == (200, 30)
    window = settings.API_RATE_LIMIT_WINDOW_SECONDS
    assert window == 60
    caller = f"test:{uuid.uuid4()}"

    writes = [throttling.hit(f"write:{caller}", limit=30, window_seconds=window) for _ in range(31)]
    assert [d.allowed for d in writes] == [True] * 30 + [False]
    assert [d.remaining for d in writes[:30]] == list(range(29, -1, -1))
    assert writes[30].remaining == 0 and 1 <= writes[30].retry_after <= window

    reads = [throttling.hit(f"read:{caller}", limit=200, window_seconds=window) for _ in range(201)]
    assert [d.allowed for d in reads] == [True] * 200 + [False]
    assert reads[199].remaining == 0

    # Refused requests are not counted: the log holds exactly the admitted ones, expiring with the window.
    raw = redis.Redis.from_url(settings.REDIS_CACHE_URL)
    assert raw.zcard(f"{throttling.KEY_PREFIX}:write:{caller}") == 30
    assert raw.zcard(f"{throttling.KEY_PREFIX}:read:{caller}") == 200
    assert 0 < raw.pttl(f"{throttling.KEY_PREFIX}:write:{caller}") <= window * 1000


def test_the_limiter_is_exact_when_sixty_callers_race_for_thirty_slots():
    key = f"write:test:{uuid.uuid4()}"
    start = threading.Barrier(60)
    results: list[bool] = []

    def one():
        client = redis.Redis.from_url(settings.REDIS_CACHE_URL)  # a connection of its own
        script = client.register_script(throttling.SLIDING_WINDOW_LUA)
        start.wait()
        allowed, _remaining, _reset, _limit = script(
            keys=[f"{throttling.KEY_PREFIX}:{key}"], args=[60_000, uuid.uuid4().hex, 30]
        )
        results.append(bool(allowed))
        client.close()

    threads = [threading.Thread(target=one) for _ in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert Counter(results) == {True: 30, False: 30}


# --- over HTTP (APIClient), with small limits ---------------------------------------------


@pytest.mark.django_db
def test_the_fourth_write_is_refused_with_retry_after_and_the_error_shape(small_limits):
    client = client_for(access_token())
    answers = [client.post(ME_URL, {}, format="json") for _ in range(4)]
    assert [r.status_code for r in answers] == [405, 405, 405, 429]
    refused = answers[3]
    body = refused.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "throttled"
    assert body["error"]["message"]
    assert body["error"]["details"] == {}
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["RateLimit-Limit"] == "3"
    assert refused["RateLimit-Remaining"] == "0"
    assert refused["Retry-After"] == refused["RateLimit-Reset"]


@pytest.mark.django_db
def test_the_sixth_read_is_refused(small_limits):
    client = client_for(access_token())
    statuses = [client.get(ME_URL).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


@pytest.mark.django_db
def test_an_organizations_callers_share_a_ceiling(small_limits):
    """More keys or people cannot multiply an organization's share: 5 reads each, 2 x 5 = 10 for all."""
    small_limits.API_RATE_LIMIT_ORGANIZATION_MULTIPLIER = 2
    organization, elsewhere = OrganizationFactory(), OrganizationFactory()
    first, second, third = (client_for(access_token(organization=organization)) for _ in range(3))
    assert [first.get(ME_URL).status_code for _ in range(5)] == [200] * 5
    assert [second.get(ME_URL).status_code for _ in range(5)] == [200] * 5
    refused = third.get(ME_URL)  # its own budget is untouched, the organization's is spent
    assert refused.status_code == 429
    assert refused["RateLimit-Limit"] == "10" and refused["RateLimit-Remaining"] == "0"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert client_for(access_token(organization=elsewhere)).get(ME_URL).status_code == 200
    # Refused requests are counted nowhere: the third caller's own window is still empty.
    raw = redis.Redis.from_url(settings.REDIS_CACHE_URL)
    assert raw.zcard(f"{throttling.KEY_PREFIX}:read:org:{organization.pk}") == 10


@pytest.mark.django_db
def test_the_headers_name_the_window_closest_to_its_limit(small_limits):
    small_limits.API_RATE_LIMIT_ORGANIZATION_MULTIPLIER = 1  # the organization's window is as small as a caller's
    organization = OrganizationFactory()
    one, other = (client_for(access_token(organization=organization)) for _ in range(2))
    one.get(ME_URL)
    one.get(ME_URL)
    answer = other.get(ME_URL)  # its own window has 4 left, the organization's 2
    assert answer.status_code == 200
    assert (answer["RateLimit-Limit"], answer["RateLimit-Remaining"]) == ("5", "2")


@pytest.mark.django_db
def test_with_the_limiter_unreachable_requests_go_through_and_it_is_logged(small_limits, caplog):
    """A deliberate choice: the API stays up while its limiter's Redis is down, and operators are told."""
    import socket

    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    small_limits.REDIS_CACHE_URL = f"redis://127.0.0.1:{port}/0"
    client = client_for(access_token())
    with caplog.at_level("ERROR", logger="jagcall.kernel.api"):
        answers = [client.get(ME_URL) for _ in range(7)]  # more than the 5 reads allowed
    assert [a.status_code for a in answers] == [200] * 7
    assert all("RateLimit-Limit" not in a for a in answers)  # nothing was counted, so nothing is announced
    assert any("rate limiter unavailable" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_every_counted_response_carries_consistent_headers(small_limits):
    client = client_for(access_token())
    answers = [client.get(ME_URL) for _ in range(5)]
    assert all(r.status_code == 200 for r in answers)
    assert [r["RateLimit-Limit"] for r in answers] == ["5"] * 5
    assert [int(r["RateLimit-Remaining"]) for r in answers] == [4, 3, 2, 1, 0]
    resets = [int(r["RateLimit-Reset"]) for r in answers]
    assert all(0 < reset <= 60 for reset in resets)
    assert all("Retry-After" not in r for r in answers)
    # HEAD and OPTIONS are reads too.
    assert client.head(ME_URL).status_code == 429
    assert client.options(ME_URL).status_code == 429


@pytest.mark.django_db
def test_reads_and_writes_are_separate_budgets(small_limits):
    client = client_for(access_token())
    assert [client.post(ME_URL, {}, format="json").status_code for _ in range(4)] == [405, 405, 405, 429]
    first_read = client.get(ME_URL)
    assert first_read.status_code == 200
    assert first_read["RateLimit-Limit"] == "5"
    assert first_read["RateLimit-Remaining"] == "4"
    for _ in range(4):
        assert client.get(ME_URL).status_code == 200
    assert client.get(ME_URL).status_code == 429
    # Spending the reads did not give writes back, nor take more.
    assert client.delete(ME_URL).status_code == 429


@pytest.mark.django_db
def test_callers_are_counted_apart_and_one_person_shares_a_budget_across_tokens(small_limits):
    organization = OrganizationFactory()
    first = MembershipFactory(organization=organization, user=UserFactory(), role=Role.ADMIN).user
    second = MembershipFactory(organization=organization, user=UserFactory(), role=Role.ADMIN).user
    first_client = client_for(access_token(first, organization))
    assert [first_client.post(ME_URL, {}, format="json").status_code for _ in range(4)] == [405, 405, 405, 429]

    second_client = client_for(access_token(second, organization))
    assert [second_client.post(ME_URL, {}, format="json").status_code for _ in range(3)] == [405, 405, 405]

    # A new token for the same person draws on the same budget (JWTs count per user).
    again = client_for(access_token(first, organization))
    assert again.post(ME_URL, {}, format="json").status_code == 429


def test_the_credential_key_comes_first_then_the_user():
    user = SimpleNamespace(pk="u1", is_authenticated=True)
    with_key = SimpleNamespace(auth=SimpleNamespace(rate_limit_key="apikey:k1"), user=user)
    without_key = SimpleNamespace(auth=SimpleNamespace(), user=user)
    anonymous = SimpleNamespace(auth=None, user=None)
    assert throttling.caller_key(with_key) == "apikey:k1"
    assert throttling.caller_key(without_key) == "user:u1"
    assert throttling.caller_key(anonymous) is None


@pytest.mark.django_db
def test_requests_without_a_caller_are_not_counted(small_limits):
    response = APIClient().post(TOKEN_URL, {"email": "nobody@example.test", "password": "x", "organization": "none"}, format="json")
    assert response.status_code == 401
    assert "RateLimit-Limit" not in response
    unauthenticated = APIClient().get(ME_URL)
    assert unauthenticated.status_code == 401
    assert "RateLimit-Limit" not in unauthenticated


@pytest.mark.django_db
def test_requests_are_let_in_again_once_the_window_slides(settings):
    settings.API_RATE_LIMIT_WRITES = 2
    settings.API_RATE_LIMIT_WINDOW_SECONDS = 1
    client = client_for(access_token())
    assert [client.post(ME_URL, {}, format="json").status_code for _ in range(3)] == [405, 405, 429]
    refused = client.post(ME_URL, {}, format="json")
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    time.sleep(1.05)
    again = client.post(ME_URL, {}, format="json")
    assert again.status_code == 405
    assert again["RateLimit-Remaining"] == "1"


# --- concurrency, over real HTTP connections to a threaded server ------------------------------------


class _WideBacklogServer(ThreadedWSGIServer):
    # Room for every simultaneous connection in the accept queue (Django's default is 10).
    request_queue_size = 128


class _LiveServerThread(LiveServerThread):
    server_class = _WideBacklogServer


@pytest.fixture
def threaded_live_server(transactional_db):
    """Django's live server (one thread per request), in this process, on a loopback port."""
    server = _LiveServerThread("127.0.0.1", static_handler=lambda handler: handler)
    server.daemon = True
    server.start()
    server.is_ready.wait(timeout=20)
    if server.error:
        raise server.error
    yield f"http://127.0.0.1:{server.port}"
    server.terminate()
    for connection in connections.all():
        connection.close()


def _race(base_url: str, token: str, n: int = 60) -> list[tuple[int, dict]]:
    """``n`` POSTs at once, each on its own connection; returns (status, headers) per request."""
    parts = urlsplit(base_url)
    start = threading.Barrier(n)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def one():
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            connection.connect()
            start.wait()
            connection.request(
                "POST", ME_URL, body=b"{}",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            response.read()
            with lock:
                results.append((response.status, {k.lower(): v for k, v in response.getheaders()}))
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_sixty_concurrent_writes_let_exactly_thirty_in_per_caller(threaded_live_server):
    assert settings.API_RATE_LIMIT_WRITES == 30
    organization = OrganizationFactory()
    for _ in range(2):  # two people, each with a full budget of their own
        token = access_token(organization=organization)
        results = _race(threaded_live_server, token)
        assert len(results) == 60
        statuses = Counter(status for status, _headers in results)
        assert statuses == {405: 30, 429: 30}, statuses
        admitted = [headers for status, headers in results if status == 405]
        refused = [headers for status, headers in results if status == 429]
        # Each admitted request saw its own place in the window: 29 left, 28 left, ... 0 left.
        assert sorted(int(h["ratelimit-remaining"]) for h in admitted) == list(range(30))
        assert all(h["ratelimit-limit"] == "30" for h in admitted + refused)
        assert all(int(h["retry-after"]) >= 1 and h["ratelimit-remaining"] == "0" for h in refused)


@pytest.fixture
def admin_token(transactional_db):
    return access_token()


async def test_the_headers_are_added_under_asgi_too(admin_token, settings):
    from django.test import AsyncClient

    settings.API_RATE_LIMIT_READS = 2
    client = AsyncClient()
    try:
        answers = [await client.get(ME_URL, headers={"Authorization": f"Bearer {admin_token}"}) for _ in range(3)]
    finally:
        # The view ran in asgiref's shared thread; its database connection is closed there.
        await sync_to_async(connections.close_all)()
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert [r["RateLimit-Remaining"] for r in answers] == ["1", "0", "0"]
    assert answers[2]["Retry-After"] == answers[2]["RateLimit-Reset"]
    assert answers[2].json()["error"]["code"] == "throttled"
