"""Fixtures shared by every test, and the lifecycle of the test servers.

Settings (jagcall/settings_test.py) start an embedded PostgreSQL + pgvector
and Redis under .data/test unless DATABASE_URL / REDIS_URL are set. The
first pytest process to import settings starts them; when the run ends, the
controlling process stops them and removes .data/test, so every run starts
fresh. pytest-django creates one test database per xdist worker.
"""

from __future__ import annotations

import os
import shutil

import pytest


def _is_controller(config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_sessionfinish(session, exitstatus):
    if not _is_controller(session.config) or os.environ.get("JAGCALL_KEEP_TEST_SERVERS"):
        return
    from django.conf import settings

    if not getattr(settings, "TESTING", False):
        return
    from jagcall.embedded import EmbeddedPostgres, EmbeddedRedis

    data_dir = settings.DATA_DIR
    if not os.environ.get("REDIS_URL"):
        EmbeddedRedis(data_dir / "redis").stop()
    if not os.environ.get("DATABASE_URL"):
        EmbeddedPostgres(data_dir / "pg").stop()
    if not os.environ.get("DATABASE_URL") and not os.environ.get("REDIS_URL") and data_dir.name == "test":
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _clear_cache_between_tests():
    """Each test sees an empty cache (sessions, rate-limit counters) in its own Redis db."""
    from django.core.cache import cache

    cache.clear()
    yield


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
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
