"""The embedded PostgreSQL + pgvector and Redis: the features we rely on, and recovery after a crash."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from django.db import connection

from jagcall.kernel.embedded import EmbeddedPostgres, EmbeddedRedis

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def _gone(pid: int) -> bool:
    """True once the process has exited (an exited child not yet reaped by init counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running after {timeout}s"
        time.sleep(0.05)


def _kill_if_running(pid: int | None, expected_name: str) -> None:
    """Last-resort cleanup of a server this test started, checked by name so a recycled pid is left alone."""
    if pid is None or _gone(pid):
        return
    try:
        if expected_name in " ".join(psutil.Process(pid).cmdline()):
            os.kill(pid, signal.SIGKILL)
    except (psutil.NoSuchProcess, ProcessLookupError):
        pass


@pytest.fixture
def world_readable_dir():
    """A fresh directory whose parents the `embedded_postgres` system user can traverse.

    pytest's tmp_path lives under a 0700 directory when running as root, so PostgreSQL (which
    then runs as another user) could not reach it.
    """
    path = Path(tempfile.mkdtemp(prefix="jagcall-embedded-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- the test database --------------------------------------------------------


@pytest.mark.django_db
def test_the_test_database_has_pgvector():
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cursor.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector")
        assert cursor.fetchone()[0] == 1.0
        cursor.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'")
        assert cursor.fetchone() == ("vector",)


@pytest.mark.django_db
def test_the_embedded_server_is_postgresql_18():
    if os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL is set: the suite runs on an external server, not the embedded one")
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0]
        cursor.execute("SHOW server_version_num")
        number = int(cursor.fetchone()[0])
    assert version.startswith("PostgreSQL 18"), version
    assert 180000 <= number < 190000


# --- Redis ------------------------------------------------------------------


def _client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url(), socket_timeout=2, socket_connect_timeout=2)


def test_embedded_redis_recovers_after_its_server_is_killed(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    pids: list[int] = []
    try:
        assert server.ensure_running() is True
        assert server.ensure_running() is False  # idempotent: the running server is reused
        first_pid = server._pid()
        pids.append(first_pid)
        password = server.password
        client = _client(server)
        client.set("survives", "the crash")
        client.save()  # written to dump.rdb in the data directory
        client.close()

        os.kill(first_pid, signal.SIGKILL)
        _wait_gone(first_pid)
        assert not server.is_running()

        assert server.ensure_running() is True
        second_pid = server._pid()
        pids.append(second_pid)
        assert second_pid != first_pid
        assert not _gone(second_pid)
        assert server.password == password  # same credentials, so running clients reconnect
        client = _client(server)
        assert client.ping() is True
        assert client.get("survives") == b"the crash"  # same data directory, reloaded
        client.close()
        assert (tmp_path / "redis" / "dump.rdb").exists()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(
                host="127.0.0.1", port=server.port, password="wrong", socket_timeout=2, retry=Retry(NoBackoff(), 0)
            ).ping()

        server.stop()
        _wait_gone(second_pid, timeout=5)
        assert not server.is_running()
        assert not server.pid_file.exists()
    finally:
        server.stop()
        for pid in pids:
            _kill_if_running(pid, "redis-server")


def test_embedded_redis_clears_a_pid_file_naming_a_dead_process(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: its pid now names no process
    server.pid_file.write_text(f"{finished.pid}\n")
    started_pid = None
    try:
        assert server.ensure_running() is True
        started_pid = server._pid()
        assert started_pid != finished.pid
        assert _client(server).ping() is True
    finally:
        server.stop()
        _kill_if_running(started_pid, "redis-server")
    assert started_pid is not None and _gone(started_pid)


def test_embedded_redis_never_kills_a_foreign_process_named_by_its_pid_file(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    bystander = subprocess.Popen(["sleep", "60"])
    server.pid_file.write_text(f"{bystander.pid}\n")  # e.g. a pid recycled after a reboot
    started_pid = None
    try:
        assert server.ensure_running() is True
        started_pid = server._pid()
        assert bystander.poll() is None, "ensure_running() killed a process that is not its redis-server"
        assert started_pid != bystander.pid
        assert _client(server).ping() is True
    finally:
        server.stop()
        _kill_if_running(started_pid, "redis-server")
        bystander.kill()
        bystander.wait(timeout=10)


# --- ownership: only the starter stops a server ---------------------------------

_HOLDER = """
import sys, time
from pathlib import Path
from jagcall.kernel.embedded import EmbeddedRedis
print(EmbeddedRedis(Path(sys.argv[1])).ensure_running(), flush=True)
time.sleep(120)
"""


def test_embedded_redis_is_stopped_only_by_its_starter_and_adopted_once_the_starter_ends(tmp_path):
    """Another live process's server is never stopped by one that merely reused it; after a crash it is adopted."""
    server = EmbeddedRedis(tmp_path / "redis")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(server.root)], cwd=BASE_DIR, stdout=subprocess.PIPE, text=True
    )
    started_pid = None
    try:
        assert holder.stdout.readline().strip() == "True"  # the holder started it
        started_pid = server._pid()
        assert server.owner() == holder.pid
        assert server.ensure_running() is False  # reused here

        assert server.adopt() is False  # its starter is alive: not ours to take
        assert server.stop_if_owned() is False
        assert _client(server).ping() is True, "a process that merely reused the server stopped it"
        assert server.owner() == holder.pid

        holder.kill()  # the starter dies without stopping it (kill -9)
        holder.wait(timeout=10)
        assert server.owner() is None
        assert _client(server).ping() is True  # the server runs detached from its starter
        assert server.adopt() is True
        assert server.owner() == os.getpid()
        assert server.adopt() is True  # idempotent for the owner

        assert server.stop_if_owned() is True
        _wait_gone(started_pid, timeout=5)
        assert not server.is_running()
        assert not server.owner_file.exists()
        assert server.adopt() is False  # nothing runs: nothing to adopt
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        server.stop()
        _kill_if_running(started_pid, "redis-server")


def test_embedded_redis_owner_is_not_a_recycled_pid(tmp_path):
    """An owner record naming a live process that started at another time (a pid reused) names nobody."""
    server = EmbeddedRedis(tmp_path / "redis")
    bystander = subprocess.Popen(["sleep", "60"])
    started_pid = None
    try:
        assert server.ensure_running() is True
        started_pid = server._pid()
        assert server.owner() == os.getpid()
        started = psutil.Process(bystander.pid).create_time()
        server.owner_file.write_text(json.dumps({"pid": bystander.pid, "started": started - 3600}))
        assert server.owner() is None
        assert server.stop_if_owned() is False  # not recorded as ours any more
        assert bystander.poll() is None
        assert server.adopt() is True
        assert server.stop_if_owned() is True
        _wait_gone(started_pid, timeout=5)
        assert bystander.poll() is None, "stopping the server signalled the process its owner record named"
    finally:
        server.stop()
        _kill_if_running(started_pid, "redis-server")
        bystander.kill()
        bystander.wait(timeout=10)


# --- PostgreSQL ----------------------------------------------------------------


def _postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.cluster / "postmaster.pid").read_text().splitlines()[0])


@pytest.mark.slow
def test_embedded_postgres_recovers_after_the_postmaster_is_killed(world_readable_dir):
    server = EmbeddedPostgres(world_readable_dir / "pg")
    postmasters: list[int] = []
    try:
        assert server.ensure_running() is True
        assert server.ensure_running() is False  # idempotent
        postmasters.append(_postmaster_pid(server))
        with psycopg.connect(server.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE TABLE crash_probe (note text)")
            conn.execute("INSERT INTO crash_probe VALUES ('committed before the crash')")
            assert conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector").fetchone()[0] == 1.0
        initialised = (server.cluster / "PG_VERSION").stat().st_ino

        os.kill(postmasters[0], signal.SIGKILL)
        _wait_gone(postmasters[0])

        assert server.ensure_running() is True
        postmasters.append(_postmaster_pid(server))
        assert postmasters[1] != postmasters[0]
        assert (server.cluster / "PG_VERSION").stat().st_ino == initialised  # no new initdb
        with psycopg.connect(server.url(), autocommit=True, connect_timeout=10) as conn:
            assert conn.execute("SELECT note FROM crash_probe").fetchall() == [("committed before the crash",)]

        server.stop()
        _wait_gone(postmasters[1])
        assert not server.is_running()
    finally:
        server.stop()
        for pid in postmasters:
            _kill_if_running(pid, str(server.cluster))
