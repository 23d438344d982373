"""`make run` (python -m jagcall.devserver) end to end.

It must start its own PostgreSQL and Redis in an empty data directory, serve the
portal with the demo data, stop every process on Ctrl-C (SIGINT), reuse the data
on the next run, and come back after a crash that left its servers behind.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from http.cookiejar import CookieJar
from pathlib import Path

import psutil
import psycopg
import pytest

from accounts.management.commands.seed_demo import DEMO_PASSWORD
from jagcall.kernel.embedded import EmbeddedPostgres, EmbeddedRedis

pytestmark = pytest.mark.slow

BASE_DIR = Path(__file__).resolve().parent.parent.parent
OWNER_EMAIL = "owner@acme-dental.test"
READY_TIMEOUT = 90
STOP_TIMEOUT = 30
# Variables of this test process that would point the dev stack elsewhere.
_NOT_INHERITED = {
    "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "JAGCALL_TESTING", "JAGCALL_DATA_DIR",
    "REDIS_DB_OFFSET", "DEBUG", "SECRET_KEY", "JAGCALL_DEV_HOST", "JAGCALL_DEV_PORT",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gone(pid: int, create_time: float | None = None) -> bool:
    """Exited (a zombie waiting for init counts), or the pid now names another process."""
    try:
        process = psutil.Process(pid)
        if create_time is not None and process.create_time() != create_time:
            return True
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class DevServer:
    """One run of the dev stack; remembers every process it saw, to check and to clean up."""

    def __init__(self, data_dir: Path, port: int, name: str):
        self.data_dir = data_dir
        self.port = port
        self.log_path = data_dir.parent / f"{data_dir.name}-{name}.log"
        self.process: subprocess.Popen | None = None
        self.seen: dict[int, float] = {}  # pid -> create time

    def start(self) -> None:
        env = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
        env = {key: value for key, value in env.items() if not key.startswith("PYTEST_")}
        env.update(JAGCALL_DATA_DIR=str(self.data_dir), DEBUG="true", LOG_FORMAT="text")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jagcall.devserver", "--no-reload", "--port", str(self.port)],
                cwd=BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our SIGINT goes to the runner alone, as Ctrl-C would
            )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"devserver exited with {self.process.returncode} before it was ready:\n{self.output}")
            try:
                with urllib.request.urlopen(self.url("/readyz"), timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"/readyz did not answer 200 within {READY_TIMEOUT}s:\n{self.output}")
            time.sleep(0.3)
        self.remember()

    def server_pids(self) -> list[int]:
        """The embedded servers for this data directory: postmaster (+ its children) and redis-server."""
        pids = []
        postmaster_pid_file = self.data_dir / "pg" / "cluster" / "postmaster.pid"
        if postmaster_pid_file.exists():
            postmaster = int(postmaster_pid_file.read_text().split()[0])
            pids.append(postmaster)
            try:
                pids += [child.pid for child in psutil.Process(postmaster).children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        redis_pid_file = self.data_dir / "redis" / "redis.pid"
        if redis_pid_file.exists():
            pids.append(int(redis_pid_file.read_text().strip()))
        return pids

    def runner_tree(self) -> list[int]:
        try:
            return [self.process.pid, *(child.pid for child in psutil.Process(self.process.pid).children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def remember(self) -> None:
        for pid in [*self.runner_tree(), *self.server_pids()]:
            try:
                self.seen.setdefault(pid, psutil.Process(pid).create_time())
            except psutil.NoSuchProcess:
                pass

    def alive(self) -> list[int]:
        return [pid for pid, created in self.seen.items() if not _gone(pid, created)]

    def interrupt(self) -> int:
        self.remember()
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"devserver did not exit within {STOP_TIMEOUT}s of SIGINT:\n{self.output}")

    def kill_everything_started(self) -> None:
        """Cleanup: SIGKILL whatever this run started that still runs (pids checked against their start time)."""
        if self.process is not None and self.process.poll() is None:
            self.remember()
            self.process.kill()
            self.process.wait(timeout=10)
        for pid in self.alive():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _leftovers(data_dir: Path, ports: list[int]) -> list[str]:
    """Processes and listening sockets that would mean something was left running."""
    found = []
    needles = [str(data_dir), *(f"--port {port}" for port in ports), *(f"127.0.0.1:{port}" for port in ports)]
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE or process.pid == os.getpid():
            continue
        cmdline = " ".join(process.info["cmdline"] or [])
        if any(needle in cmdline for needle in needles):
            found.append(f"pid {process.pid}: {cmdline}")
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports:
            found.append(f"listening on {conn.laddr.port} (pid {conn.pid})")
    return found


def _assert_all_stopped(run: DevServer, ports: list[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (run.alive() or _leftovers(run.data_dir, ports)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.alive() == [], f"still running after the devserver exited: {run.alive()}"
    assert _leftovers(run.data_dir, ports) == []


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _open(opener, url: str, data: dict | None = None) -> tuple[int, Message, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:  # 3xx (redirects are not followed) and 4xx
        return error.code, error.headers, error.read().decode(errors="replace")


def _assert_demo_owner_logs_in(run: DevServer) -> None:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()), _NoRedirect())

    status, headers, _ = _open(opener, run.url("/o/acme-dental/"))
    assert status == 302 and "/auth/login/" in headers["Location"], "the dashboard is not behind the login"

    status, _, page = _open(opener, run.url("/auth/login/"))
    assert status == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "no CSRF token in the login form"
    form = {"csrfmiddlewaretoken": html.unescape(token.group(1)), "login": OWNER_EMAIL}

    status, _, _ = _open(opener, run.url("/auth/login/"), {**form, "password": "not the demo password"})
    assert status == 200  # form shown again: the password is really checked

    status, headers, _ = _open(opener, run.url("/auth/login/"), {**form, "password": DEMO_PASSWORD})
    assert status == 302, "the demo owner could not log in"
    assert "/auth/login/" not in headers["Location"]

    status, _, page = _open(opener, run.url("/o/acme-dental/"))
    assert status == 200
    assert "Acme Dental" in page


def _pg_probe(data_dir: Path, write: bool = False) -> list[tuple]:
    """A row of our own in the dev database, to show the next run kept the data."""
    with psycopg.connect(EmbeddedPostgres(data_dir / "pg").url(), autocommit=True, connect_timeout=10) as conn:
        if write:
            conn.execute("CREATE TABLE devserver_probe (note text)")
            conn.execute("INSERT INTO devserver_probe VALUES ('kept across runs')")
        return conn.execute("SELECT note FROM devserver_probe").fetchall()


@pytest.fixture
def data_dir():
    """A fresh data directory that the `embedded_postgres` system user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="jagcall-devserver-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path / "data"
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_make_run_starts_stops_reuses_and_survives_a_crash(data_dir):
    port = _free_port()
    runs: list[DevServer] = []
    try:
        # 1. First run on an empty data directory: everything is created.
        first = DevServer(data_dir, port, "first")
        runs.append(first)
        first.start()
        first.wait_ready()
        output = first.output
        assert "PostgreSQL 18 + pgvector (embedded" in output and ": started" in output
        assert OWNER_EMAIL in output and DEMO_PASSWORD in output
        _assert_demo_owner_logs_in(first)
        assert _pg_probe(data_dir, write=True) == [("kept across runs",)]
        pg_port, redis_port = EmbeddedPostgres(data_dir / "pg").port, EmbeddedRedis(data_dir / "redis").port
        cluster_inode = (data_dir / "pg" / "cluster" / "PG_VERSION").stat().st_ino
        password = (data_dir / "pg" / "password").read_text()
        assert len(first.seen) >= 6, first.seen  # runner, web, worker (+ pool), beat, postgres, redis

        assert first.interrupt() == 0
        assert "stopped; data kept in" in first.output
        _assert_all_stopped(first, [port, pg_port, redis_port])

        # 2. Second run: same cluster (no new initdb), same credentials, same rows.
        second = DevServer(data_dir, port, "second")
        runs.append(second)
        second.start()
        second.wait_ready()
        assert (data_dir / "pg" / "cluster" / "PG_VERSION").stat().st_ino == cluster_inode
        assert (data_dir / "pg" / "password").read_text() == password
        assert _pg_probe(data_dir) == [("kept across runs",)]
        _assert_demo_owner_logs_in(second)

        # 3. A crash: the runner and the processes it started die at once; the embedded
        #    servers, which run detached, are left behind with their pid files.
        second.remember()
        children = [pid for pid in second.runner_tree() if pid != second.process.pid]
        assert children, "the runner has no child processes"
        postmaster = int((data_dir / "pg" / "cluster" / "postmaster.pid").read_text().split()[0])
        redis_server = int((data_dir / "redis" / "redis.pid").read_text().strip())
        os.kill(second.process.pid, signal.SIGKILL)
        second.process.wait(timeout=10)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(not _gone(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(pid) for pid in children)
        assert not _gone(postmaster) and not _gone(redis_server), "the embedded servers run detached from the runner"

        third = DevServer(data_dir, port, "third")
        runs.append(third)
        third.start()
        third.wait_ready()
        assert third.output.count("already running, reused") == 2, third.output  # PostgreSQL and Redis
        assert _pg_probe(data_dir) == [("kept across runs",)]
        _assert_demo_owner_logs_in(third)

        assert third.interrupt() == 0
        third.seen.update(second.seen)  # the servers left by the crash were stopped by this run
        _assert_all_stopped(third, [port, pg_port, redis_port])
    finally:
        for run in runs:
            run.kill_everything_started()
