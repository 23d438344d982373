"""Fixtures shared by every test, and the lifecycle of the test servers.

Settings (jagcall/settings_test.py) start an embedded PostgreSQL + pgvector
and Redis under .data/test-<pid> unless DATABASE_URL / REDIS_URL are set.
The controlling pytest process starts them (xdist workers reuse them); when
the run ends it stops them and removes the directory, so every run starts
fresh, and a run killed before that is swept by the next one.
pytest-django creates one test database per xdist worker.
"""

from __future__ import annotations

import os
import shutil

import pytest

# Local stand-ins of outside services (tests/fakes/), as fixtures.
pytest_plugins = ["tests.fakes.plugin"]


def _is_controller(config) -> bool:
    return not hasattr(config, "workerinput")


def _stop_and_remove(data_dir) -> None:
    from jagcall.kernel.embedded import EmbeddedPostgres, EmbeddedRedis

    EmbeddedRedis(data_dir / "redis").stop()
    EmbeddedPostgres(data_dir / "pg").stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def pytest_configure(config):
    """Sweep test data left by runs that were killed before they could clean up."""
    if not _is_controller(config):
        return
    from django.conf import settings

    if not getattr(settings, "TESTING", False):
        return
    project_data = settings.BASE_DIR / ".data"
    if settings.DATA_DIR.parent != project_data:
        return  # a data directory chosen by hand: leave its neighbours alone
    for stale in project_data.glob("test-*"):
        pid = stale.name.removeprefix("test-")
        if stale == settings.DATA_DIR or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _stop_and_remove(stale)
        except PermissionError:
            pass


def pytest_sessionfinish(session, exitstatus):
    if not _is_controller(session.config) or os.environ.get("JAGCALL_KEEP_TEST_SERVERS"):
        return
    from django.conf import settings

    if not getattr(settings, "TESTING", False):
        return
    from jagcall.kernel.embedded import EmbeddedPostgres, EmbeddedRedis

    # [!!] Only servers this process started: a pytest run started by a test
    # (on the same data directory) must never stop the servers of the run around it.
    data_dir = settings.DATA_DIR
    started_pg, started_redis = settings.EMBEDDED_POSTGRES_STARTED, settings.EMBEDDED_REDIS_STARTED
    if data_dir.name.startswith("test-") and started_pg and started_redis:
        _stop_and_remove(data_dir)
        return
    if started_redis:
        EmbeddedRedis(data_dir / "redis").stop()
    if started_pg:
        EmbeddedPostgres(data_dir / "pg").stop()


@pytest.fixture(autouse=True)
def _clear_cache_between_tests():
    """Each test sees an empty cache (sessions, rate-limit counters) in its own Redis db,
    and cold key caches: keysets made by a rolled-back test must not linger in memory."""
    from django.core.cache import cache

    from jagcall.kernel.crypto import keys, sealed

    cache.clear()
    keys.evict()
    sealed.evict()
    yield


def record_sign_in(session, user, *, password: bool = True, second_factor: bool | None = None) -> None:
    """Write into ``session`` what signing in through the form proves (accounts.access reads it):
    a password, and the second factor when the account has one (or as ``second_factor`` says)."""
    import time

    from accounts.mfa import user_has_two_factor

    if second_factor is None:
        second_factor = user_has_two_factor(user)
    records = []
    if password:
        records.append({"method": "password", "at": time.time(), "email": user.email})
    if second_factor:
        records.append({"method": "mfa", "at": time.time(), "type": "totp"})
    session["account_authentication_methods"] = records
    session["account_authentication_methods_user"] = str(user.pk)


@pytest.fixture(autouse=True)
def _force_login_signs_in_as_the_form_does(monkeypatch):
    """``Client.force_login`` skips the sign-in form, so it would leave a session that proved nothing
    (accounts.access refuses such a session everywhere). Here it records what the form would have
    proved: the password, and the second factor when the account has one. Tests of other sign-ins
    (single sign-on only, no second factor) write their session with ``record_sign_in``."""
    from django.test import client as test_client

    original = test_client.ClientMixin.force_login

    def force_login(self, user, backend=None):
        original(self, user, backend)
        session = self.session
        record_sign_in(session, user)
        session.save()

    original_async = test_client.ClientMixin.aforce_login

    async def aforce_login(self, user, backend=None):
        from asgiref.sync import sync_to_async

        await original_async(self, user, backend)
        session = await self.asession()

        def write():
            record_sign_in(session, user)
            session.save()

        await sync_to_async(write)()

    monkeypatch.setattr(test_client.ClientMixin, "force_login", force_login)
    monkeypatch.setattr(test_client.ClientMixin, "aforce_login", aforce_login)


@pytest.fixture
def password() -> str:
    from accounts.tests.factories import DEFAULT_PASSWORD

    return DEFAULT_PASSWORD


@pytest.fixture
def organization(db):
    from accounts.tests.factories import OrganizationFactory

    return OrganizationFactory(name="Acme Dental", slug="acme-dental")


@pytest.fixture
def other_organization(db):
    from accounts.tests.factories import OrganizationFactory

    return OrganizationFactory(name="Globex Sales", slug="globex-sales")


def _member(organization, role, email):
    from accounts.tests.factories import MembershipFactory, UserFactory

    return MembershipFactory(organization=organization, user=UserFactory(email=email), role=role).user


@pytest.fixture
def owner(organization):
    return _member(organization, "owner", "owner@acme.test")


@pytest.fixture
def admin_user(organization):
    return _member(organization, "admin", "admin@acme.test")


@pytest.fixture
def member(organization):
    return _member(organization, "member", "member@acme.test")


@pytest.fixture
def other_owner(other_organization):
    return _member(other_organization, "owner", "owner@globex.test")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def staff_user(db):
    """JagCall support staff, with the second factor the back office requires."""
    from accounts.tests.factories import UserFactory, enable_totp

    staff = UserFactory(email="support@jagcall.test", is_staff=True, is_superuser=True)
    enable_totp(staff)
    return staff


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def asgi_live_server(transactional_db, settings):
    """The real ASGI application (HTTP and websockets) on a loopback port, in this process.

    Serving in-process keeps the test database and the mail outbox shared
    with the test; it stops before the database fixture tears down.
    """
    import socket
    import threading
    import time

    import uvicorn

    from jagcall.asgi import application

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(application, host="127.0.0.1", port=port, lifespan="off", log_level="warning", ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="asgi-live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the ASGI test server did not start")
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    settings.SITE_URL = base
    yield base
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
def events():
    """Security events emitted during the test (accounts.security_events), in order."""
    from accounts.activity import audit

    seen = []

    def record(sender, kind, event=None, **kwargs):
        if kind == "security":
            seen.append(event)

    audit.connect(record)
    yield seen
    audit.disconnect(record)
