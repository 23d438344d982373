"""The web process's database connections: a bounded pool under the ASGI server (docs/performance.md).

Django's ASGI handler runs each request's sync code in a new thread. A
connection kept per thread (CONN_MAX_AGE > 0) is never used again, so under
concurrent requests they piled up to PostgreSQL's limit. The web process
(jagcall.asgi) borrows from a psycopg pool instead: the server started here is
the image's uvicorn on jagcall.asgi:application, and 50 requests at once may
use no more PostgreSQL backends than the pool holds.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jagcall.tests.test_settings import PRODUCTION_ENV, run_django

ROOT = Path(__file__).resolve().parents[2]
POOL_SIZE = 4
CONCURRENCY = 50

SHOW = (
    "from django.conf import settings as s; d = s.DATABASES['default']; "
    "print(d['CONN_MAX_AGE'], d.get('OPTIONS', {}).get('pool'), s.WEB_MAX_CONCURRENT_REQUESTS)"
)


def test_the_web_process_pools_its_connections_and_other_processes_do_not():
    web = run_django(SHOW, {**PRODUCTION_ENV, "JAGCALL_PROCESS": "web"})
    assert web.returncode == 0, web.stderr
    # At most as many requests inside Django as the pool has connections (jagcall/kernel/serving.py).
    assert web.stdout.strip() == "0 {'min_size': 2, 'max_size': 10, 'timeout': 10} 10"
    sized = run_django(SHOW, {**PRODUCTION_ENV, "JAGCALL_PROCESS": "web", "DB_POOL_MAX_SIZE": "20",
                              "DB_POOL_MIN_SIZE": "5", "DB_POOL_TIMEOUT": "3"})  # fmt: skip
    assert sized.stdout.strip() == "0 {'min_size': 5, 'max_size': 20, 'timeout': 3} 20", sized.stderr
    # Workers, beat and commands: one thread each, persistent connections as before.
    worker = run_django(SHOW, PRODUCTION_ENV)
    assert worker.stdout.strip() == "60 None 10", worker.stderr
    off = run_django(
        SHOW, {**PRODUCTION_ENV, "JAGCALL_PROCESS": "web", "DB_POOL_MAX_SIZE": "0", "DB_CONN_MAX_AGE": "0"}
    )
    assert off.stdout.strip() == "0 None 0", off.stderr
    bad = run_django(SHOW, {**PRODUCTION_ENV, "JAGCALL_PROCESS": "web", "DB_POOL_MAX_SIZE": "-1"})
    assert bad.returncode != 0 and "DB_POOL_MAX_SIZE" in bad.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str, timeout: float = 30) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def pooled_server(django_db_setup, django_db_blocker, tmp_path):
    """The image's uvicorn command on jagcall.asgi, on the test database, with a pool of POOL_SIZE."""
    from django.conf import settings

    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jagcall.tests.dbpool.server_settings",
        "POOL_TEST_DATABASE_NAME": settings.DATABASES["default"]["NAME"],
        "DB_POOL_MAX_SIZE": str(POOL_SIZE),
        "DB_POOL_MIN_SIZE": "1",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("JAGCALL_PROCESS", None)  # jagcall.asgi must mark the process itself
    log = open(tmp_path / "server.log", "wb")
    command = [sys.executable, "-m", "uvicorn", "jagcall.asgi:application", "--host", "127.0.0.1", "--port", str(port),
               "--lifespan", "off", "--no-access-log"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if _get(port, "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _backends(database: str, django_db_blocker) -> set[int]:
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database]
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.slow
def test_fifty_requests_at_once_use_no_more_backends_than_the_pool_holds(pooled_server, django_db_blocker):
    from django.conf import settings

    database = settings.DATABASES["default"]["NAME"]
    before = _backends(database, django_db_blocker)
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        answers = list(pool.map(lambda _n: _get(pooled_server, "/pool-probe/"), range(2 * CONCURRENCY)))
    assert [status for status, _body in answers] == [200] * (2 * CONCURRENCY)
    pids = {json.loads(body)["pid"] for _status, body in answers}
    # Each request's connection came from the pool: a handful of backends served all 100 requests.
    assert 1 <= len(pids) <= POOL_SIZE, pids
    left_open = _backends(database, django_db_blocker) - before
    assert len(left_open) <= POOL_SIZE, left_open
    assert pids <= left_open | before  # and they are still open, waiting in the pool: none was closed and reopened
