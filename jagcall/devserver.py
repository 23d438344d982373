"""``make run``: the whole development stack in one terminal.

Starts (or reuses) the embedded PostgreSQL and Redis, applies migrations,
loads the demo data, then runs the ASGI server, a Celery worker and Celery
beat. Ctrl-C stops every process it started, and the embedded servers it
started; the data under .data/ stays for the next run. If one process dies,
the rest are stopped and the exit status says so.

One run per data directory (one per checkout by default):

- [!!] A second ``make run`` says where the first one serves and exits,
  touching nothing. ``.data/devserver.lock`` is held (flock) for a run's
  whole life and ``.data/devserver.json`` says its pid, URL and processes.
- The kernel drops the lock when a run dies, even by ``kill -9``, so a killed
  run never blocks the next one: the next run finds the killed run's
  ``devserver.json``, stops the processes that run left behind (each checked
  by pid and start time, never by name) and carries on.
- [!!] Embedded servers: a run stops those it started, and those it adopted
  from a run that has ended; never those another live process started
  (see jagcall.kernel.embedded, ownership).
- When the port is taken by another program, the next free one is used and
  its URL printed.

Usage: python -m jagcall.devserver [--port 8000] [--no-reload]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from jagcall.kernel.embedded.process import process_identity

BASE_DIR = Path(__file__).resolve().parent.parent
PORT_SEARCH = 50  # how many ports after a busy one are tried
LEFTOVER_STOP_TIMEOUT = 10


def _say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def _data_dir() -> Path:
    from jagcall.kernel.env import env

    # The rule of settings.DATA_DIR, needed before settings load: loading them starts the servers.
    return Path(env("JAGCALL_DATA_DIR", default=str(BASE_DIR / ".data"))).resolve()


def _same_process(entry) -> bool:
    """The recorded {pid, started} still names that very process (not a recycled pid)."""
    try:
        current = process_identity(int(entry["pid"]))
        return current is not None and abs(current["started"] - float(entry["started"])) <= 1
    except (KeyError, TypeError, ValueError):
        return False


class RunLock:
    """Who runs the dev stack on a data directory: an flock for liveness, a JSON file for the details."""

    def __init__(self, data_dir: Path):
        self.lock_path = data_dir / "devserver.lock"
        self.state_path = data_dir / "devserver.json"
        self._handle = None

    def acquire(self) -> bool:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+")  # not inherited by the processes we start (PEP 446)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def read(self) -> dict | None:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def write(self, state: dict) -> None:
        # Replaced whole, so a second run never reads half of it.
        partial = self.state_path.with_name(self.state_path.name + ".partial")
        partial.write_text(json.dumps(state))
        os.replace(partial, self.state_path)

    def release(self) -> None:
        self.state_path.unlink(missing_ok=True)
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def already_running_message(run_lock: RunLock, wait: float = 3.0) -> str:
    """What a second run says; the first may be an instant away from writing its details."""
    deadline = time.monotonic() + wait
    state = run_lock.read()
    while (state is None or not state.get("url")) and time.monotonic() < deadline:
        time.sleep(0.1)
        state = run_lock.read()
    pid = f" (pid {state['pid']})" if state and state.get("pid") else ""
    if not state or not state.get("url"):
        return (f"JagCall is already starting in another terminal{pid}. Wait for it to print its address, "
                "or stop it with Ctrl-C in its terminal.")
    if not state.get("serving"):
        return (f"JagCall is already starting at {state['url']}{pid}. Wait for it to print its address, "
                "or stop it with Ctrl-C in its terminal.")
    return (f"JagCall is already running at {state['url']}{pid}. Open it in your browser, "
            "or stop it with Ctrl-C in its terminal.")


def stop_leftovers(previous: dict) -> list[int]:
    """Stop what a killed run left running (web, worker, beat); returns the pids it signalled.

    [!!] Each is checked by pid and start time first: a pid recycled by another program is left alone.
    Each child was started as the leader of its own process group, so the group goes with it.
    """
    children = previous.get("children")
    leaders = [int(entry["pid"]) for entry in (children.values() if isinstance(children, dict) else [])
               if _same_process(entry)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in leaders:
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + LEFTOVER_STOP_TIMEOUT
        while any(process_identity(pid) for pid in leaders) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not any(process_identity(pid) for pid in leaders):
            break
    return leaders


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _listener(port: int) -> str:
    """Best effort: which program listens on the port (only visible for our own user's processes)."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except (psutil.Error, OSError):
        pass
    return ""


def choose_port(host: str, port: int) -> int | None:
    """The port asked for when it is free, else the next free one after it (None if none is)."""
    for candidate in range(port, min(port + PORT_SEARCH, 65535) + 1):
        if _port_free(host, candidate):
            return candidate
    return None


def _browser_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("JAGCALL_DEV_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("JAGCALL_DEV_PORT", "8000")))
    parser.add_argument("--no-reload", action="store_true", help="do not restart the web server on code changes")
    args = parser.parse_args(argv)

    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jagcall.settings")

    run_lock = RunLock(_data_dir())
    if not run_lock.acquire():
        # [!!] Before settings load: nothing of the running stack is touched, started or stopped.
        _say(already_running_message(run_lock))
        return 1
    try:
        previous = run_lock.read()
        run_lock.write({"pid": os.getpid(), "url": None, "serving": False, "children": {}})
        if previous is not None:
            stopped = stop_leftovers(previous)
            _say(f"an earlier run (pid {previous.get('pid', '?')}) ended without stopping"
                 + (f"; stopped what it left running (pids {', '.join(map(str, stopped))})" if stopped else ""))
        return _serve(args, run_lock)
    finally:
        run_lock.release()


def _start_simulated_providers():
    """Simulated mode (DEBUG, no provider keys): the stand-ins answer for every provider.

    They run in this process; the web server, worker and beat reach them through
    PROVIDER_BASE_URLS. What the database says Twilio holds (subaccounts, numbers) is given
    back to the fresh Twilio stand-in, so numbers bought in an earlier run still ring.
    """
    from jagcall.kernel.standins.simulated import start_all
    from telephony.models import PhoneNumber, TwilioSubaccount

    simulated = start_all()
    reason = "dev server: the simulated Twilio is given back what the database holds"
    simulated.restore_twilio(
        accounts=[(a.account_sid, a.auth_token, a.friendly_name) for a in TwilioSubaccount.objects.unscoped(reason)],
        numbers=[
            (n.twilio_sid, n.account_sid, n.number, _public_hook("voice"), _public_hook("status"), _public_hook("sms"))
            for n in PhoneNumber.objects.unscoped(reason).filter(released_at__isnull=True)
        ],
    )
    _restore_stripe(simulated)
    _say("simulated mode: no provider keys, so local stand-ins answer for Twilio, Stripe, Deepgram, OpenAI, "
         "Anthropic and ElevenLabs; every page says so. Set the keys (deploy/env.example) to use the real services.")
    return simulated


def _restore_stripe(simulated) -> None:
    """The plans' prices at the fresh Stripe stand-in, then the customers and subscriptions the database knows."""
    from django.conf import settings

    from billing.models import BillingAccount
    from billing.services.prices import prices_sync
    from billing.services.stripe_api import METERED_SUFFIXES, base_lookup_key, metered_lookup_key

    settings.PROVIDER_BASE_URLS = {**getattr(settings, "PROVIDER_BASE_URLS", {}), "stripe": simulated["stripe"]}
    prices = prices_sync()
    reason = "dev server: the simulated Stripe is given back what the database holds"
    accounts = list(BillingAccount.objects.unscoped(reason).select_related("organization")
                    .exclude(stripe_customer_id=None).exclude(stripe_customer_id=""))  # fmt: skip
    subscriptions = []
    for account in accounts:
        if not (account.stripe_subscription_id and account.subscribed_plan_code and account.interval):
            continue
        plan, interval = account.subscribed_plan_code, account.interval
        keys = [base_lookup_key(plan, interval), *(metered_lookup_key(plan, kind, interval) for kind in METERED_SUFFIXES)]
        subscriptions.append((account.stripe_subscription_id, account.stripe_customer_id,
                              [prices[key] for key in keys if key in prices], account.subscription_status or "active",
                              {"organization_id": str(account.organization_id)}))  # fmt: skip
    simulated.restore_stripe(
        customers=[(a.stripe_customer_id, a.organization.name, "", {"organization_id": str(a.organization_id)})
                   for a in accounts],
        subscriptions=subscriptions,
    )
    _say(f"simulated Stripe: {len(prices)} plan prices ready, {len(accounts)} customer(s) given back")


def _public_hook(name: str) -> str:
    from django.conf import settings
    from django.urls import reverse

    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse(f"twilio-hooks:{name}")


def _serve(args, run_lock: RunLock) -> int:
    port = choose_port(args.host, args.port)
    if port is None:
        _say(f"port {args.port} and the {PORT_SEARCH} after it are in use; "
             "choose another with JAGCALL_DEV_PORT=... make run")
        return 1
    if port != args.port:
        _say(f"port {args.port} is in use{_listener(args.port)}, not by JagCall of this checkout; "
             f"serving on port {port} instead (JAGCALL_DEV_PORT=... make run chooses another)")
    base_url = f"http://{_browser_host(args.host)}:{port}"
    if not os.environ.get("SITE_URL"):
        os.environ["SITE_URL"] = base_url  # links in emails and SAML metadata point at this server
    run_lock.write({"pid": os.getpid(), "url": base_url, "serving": False, "children": {}})

    embedded_db = not os.environ.get("DATABASE_URL")
    embedded_redis = not os.environ.get("REDIS_URL")

    import django

    django.setup()  # settings start the embedded servers when needed
    from django.conf import settings

    from jagcall.kernel.embedded import EmbeddedPostgres, EmbeddedRedis

    embedded = []
    if embedded_db:
        embedded.append(("PostgreSQL 18 + pgvector", EmbeddedPostgres(settings.DATA_DIR / "pg"),
                         settings.EMBEDDED_POSTGRES_STARTED))
    if embedded_redis:
        embedded.append(("Redis", EmbeddedRedis(settings.DATA_DIR / "redis"), settings.EMBEDDED_REDIS_STARTED))

    children: dict[str, subprocess.Popen] = {}
    simulated = None
    stopping = False

    def stop(signum=None, frame=None):
        nonlocal stopping
        stopping = True

    exit_code = 0
    try:
        for label, server, started in embedded:
            if started:
                status = "started (this run stops it when it ends)"
            elif server.adopt():
                status = "already running, reused; left by a run that has ended, so this run stops it when it ends"
            else:
                status = (f"already running, reused; started by pid {server.owner() or '?'}, "
                          "so it stays running when this run ends")
            _say(f"{label} (embedded, {server.root}): {status}")

        from django.core.management import call_command

        from jagcall.kernel.crypto.keys import master

        _say(f"encryption: master keyset from {master.source}"
             + (" (generated for development; keep it with the data)" if settings.JAGCALL_GENERATE_DEV_KEYS else ""))
        call_command("migrate", interactive=False, verbosity=0)
        _say("database migrated")
        call_command("seed_demo")

        env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL, "REDIS_URL": settings.REDIS_URL}
        if settings.SIMULATED_PROVIDERS:
            simulated = _start_simulated_providers()
            env.update(simulated.environment())
        python = sys.executable
        web = [python, "-m", "uvicorn", "jagcall.asgi:application", "--host", args.host, "--port", str(port)]
        if not args.no_reload:
            web += ["--reload", "--reload-dir", str(BASE_DIR / "jagcall"), "--reload-dir", str(BASE_DIR / "accounts"),
                    "--reload-dir", str(BASE_DIR / "compliance"), "--reload-dir", str(BASE_DIR / "integrations"),
                    "--reload-dir", str(BASE_DIR / "telephony"), "--reload-dir", str(BASE_DIR / "knowledge"),
                    "--reload-include", "*.html"]
        commands = {
            "web": web,
            "worker": [python, "-m", "celery", "-A", "jagcall", "worker", "-Q",
                       "default,transcription,embeddings,webhooks", "--concurrency", "2", "--loglevel", "INFO",
                       "--hostname", f"dev-{os.getpid()}@%h"],
            "beat": [python, "-m", "celery", "-A", "jagcall", "beat", "--loglevel", "INFO", "--pidfile=",
                     "--schedule", str(settings.DATA_DIR / "celerybeat-schedule")],
        }
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGHUP, stop)  # the terminal closed: the children would outlive us otherwise
        for name, command in commands.items():
            # Own process group: Ctrl-C reaches us, and we stop the children in order.
            children[name] = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        run_lock.write({
            "pid": os.getpid(), "url": base_url, "serving": True,
            "children": {name: process_identity(child.pid) or {"pid": child.pid, "started": 0}
                         for name, child in children.items()},
        })
        _say(f"serving {base_url}/ (portal) and {base_url}/{settings.ADMIN_URL} (back office)")
        _say("Ctrl-C stops everything")
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    _say(f"{name} exited with status {child.returncode}; stopping the rest")
                    exit_code = child.returncode or 1
                    stopping = True
                    break
            time.sleep(0.3)
    finally:
        _say("stopping...")
        for child in children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        if simulated is not None:
            simulated.stop()
        # [!!] Only servers this run started or adopted: another live process may be serving them.
        for label, server, _started in reversed(embedded):
            if not server.stop_if_owned():
                owner = server.owner()
                _say(f"{label} left running: " + (f"pid {owner} started it" if owner else "this run did not start it"))
        _say("stopped; data kept in " + str(settings.DATA_DIR))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
