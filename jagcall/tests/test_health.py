"""/healthz and /readyz against the real PostgreSQL and Redis, and with each one really down."""

from __future__ import annotations

import socket

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test import override_settings

NEVER_CACHED = ("no-cache", "no-store", "must-revalidate", "max-age=0")


def _closed_port() -> int:
    """A loopback port nothing listens on: bound by us, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _assert_json_never_cached(response) -> dict:
    assert response["Content-Type"] == "application/json"
    cache_control = response["Cache-Control"]
    for directive in NEVER_CACHED:
        assert directive in cache_control, cache_control
    assert "Expires" in response
    return response.json()


def test_healthz_answers_ok_without_touching_backing_services(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert _assert_json_never_cached(response) == {"status": "ok"}


def test_healthz_and_readyz_refuse_writes(client):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


@pytest.mark.django_db
def test_readyz_is_ok_when_every_check_passes(client):
    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    assert _assert_json_never_cached(response) == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "migrations": "ok"},
    }


@pytest.mark.django_db
def test_readyz_names_redis_when_redis_is_down(client):
    port = _closed_port()
    down = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"}}

    # override_settings(CACHES=...) fires setting_changed, which rebuilds django.core.cache's
    # handler: health.py's `cache` proxy then resolves to a client for the dead port.
    with override_settings(CACHES=down):
        response = client.get("/readyz")

    assert response.status_code == 503
    body = _assert_json_never_cached(response)
    assert body["status"] == "unavailable"
    assert body["failing"] == ["redis"]
    assert body["checks"]["redis"].startswith("redis unreachable")
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == "ok"

    # Back on the real cache, the same endpoint is ready again.
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_readyz_names_the_database_when_postgresql_is_unreachable(client):
    db = connections["default"]
    original_port = db.settings_dict["PORT"]
    db.close()
    db.settings_dict["PORT"] = str(_closed_port())
    try:
        response = client.get("/readyz")
    finally:
        db.close()
        db.settings_dict["PORT"] = original_port
        db.close()

    assert response.status_code == 503
    body = _assert_json_never_cached(response)
    assert body["status"] == "unavailable"
    assert body["failing"] == ["database"]
    assert body["checks"]["database"] == "database unreachable: OperationalError"
    assert body["checks"]["migrations"] == "skipped"
    assert body["checks"]["redis"] == "ok"

    # The connection settings are restored: the database answers again.
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_readyz_names_migrations_when_one_is_not_applied(client):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, app, name, applied FROM django_migrations WHERE app = 'accounts' ORDER BY id DESC LIMIT 1"
        )
        row = cursor.fetchone()
        assert row is not None, "the accounts app has no applied migration to remove"
        cursor.execute("DELETE FROM django_migrations WHERE id = %s", [row[0]])
    try:
        response = client.get("/readyz")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_migrations (id, app, name, applied) VALUES (%s, %s, %s, %s)", list(row)
            )

    assert response.status_code == 503
    body = _assert_json_never_cached(response)
    assert body["status"] == "unavailable"
    assert body["failing"] == ["migrations"]
    assert body["checks"]["migrations"].endswith("migration(s) not applied")
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "ok"

    assert client.get("/readyz").status_code == 200
