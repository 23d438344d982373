"""The application's database role as the embedded server and the db container make it."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
import pytest
from django.conf import settings
from django.db import connections

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(databases=["default", "owner"])


def _attributes(role: str) -> tuple:
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls, "
            "(SELECT count(*) FROM pg_auth_members WHERE member = r.oid) FROM pg_roles r WHERE rolname = %s",
            [role],
        )
        return cursor.fetchone()


def test_the_embedded_server_connects_the_application_as_a_login_role_with_no_powers():
    if os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL is set: the suite runs on an external server, not the embedded one")
    from jagcall.kernel.embedded import EmbeddedPostgres

    assert settings.DATABASES["default"]["USER"] == EmbeddedPostgres.APP_ROLE == settings.DATABASE_APP_ROLE
    assert settings.DATABASES["owner"]["USER"] == "postgres" and settings.MIGRATION_DATABASE == "owner"
    # login; not superuser, createdb, createrole, replication or bypassrls; member of no role
    assert _attributes(EmbeddedPostgres.APP_ROLE) == (True, False, False, False, False, False, False, 0)
    # Running it again (every process start does) changes nothing and keeps the password working.
    EmbeddedPostgres(settings.DATA_DIR / "pg").ensure_app_role()
    with psycopg.connect(EmbeddedPostgres(settings.DATA_DIR / "pg").app_url("postgres"), connect_timeout=10) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == EmbeddedPostgres.APP_ROLE


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql (Debian package postgresql-client) is not installed")
def test_the_db_containers_script_makes_the_same_role_and_can_run_again():
    if os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL is set: the suite runs on an external server, not the embedded one")
    owner = settings.DATABASES["owner"]
    role = f"jagcall_app_probe_{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": os.environ["PATH"], "PGHOST": owner["HOST"], "PGPORT": str(owner["PORT"]),
        "PGPASSWORD": owner["PASSWORD"], "POSTGRES_USER": owner["USER"], "POSTGRES_DB": "postgres",
        "POSTGRES_APP_USER": role, "POSTGRES_APP_PASSWORD": "probe-password",
    }
    script = str(ROOT / "deploy" / "postgres" / "10-app-role.sh")
    try:
        for _ in range(2):  # idempotent
            result = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
        assert _attributes(role) == (True, False, False, False, False, False, False, 0)
        same = subprocess.run(["sh", script], env={**env, "POSTGRES_APP_USER": owner["USER"]}, capture_output=True, text=True)
        assert same.returncode != 0 and "must differ from POSTGRES_USER" in same.stderr
    finally:
        with psycopg.connect(
            host=owner["HOST"], port=owner["PORT"], user=owner["USER"], password=owner["PASSWORD"], dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
