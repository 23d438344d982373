"""What both embedded servers share: locks, ports, pids, and who started a server."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import psutil


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


def process_identity(pid: int) -> dict | None:
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
        self.owner_file.write_text(json.dumps(process_identity(os.getpid())))

    def owner(self) -> int | None:
        """The pid of the live process that started (or adopted) this server; None when it has ended."""
        try:
            recorded = json.loads(self.owner_file.read_text())
            pid, started = int(recorded["pid"]), float(recorded["started"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        current = process_identity(pid)
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
