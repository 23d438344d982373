"""``make run``: the whole development stack in one terminal.

Starts (or reuses) the embedded PostgreSQL and Redis, applies migrations,
loads the demo data, then runs the ASGI server, a Celery worker and Celery
beat. Ctrl-C stops every process it started, the embedded servers included;
the data under .data/ stays for the next run. If one process dies, the rest
are stopped and the exit status says so.

Usage: python -m jagcall.devserver [--port 8000] [--no-reload]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("JAGCALL_DEV_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("JAGCALL_DEV_PORT", "8000")))
    parser.add_argument("--no-reload", action="store_true", help="do not restart the web server on code changes")
    args = parser.parse_args(argv)

    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jagcall.settings")
    embedded_db = not os.environ.get("DATABASE_URL")
    embedded_redis = not os.environ.get("REDIS_URL")

    import django

    django.setup()  # settings start the embedded servers when needed
    from django.conf import settings
    from django.core.management import call_command

    if embedded_db:
        _say(f"PostgreSQL 18 + pgvector (embedded, {settings.DATA_DIR / 'pg'}): "
             f"{'started' if settings.EMBEDDED_POSTGRES_STARTED else 'already running, reused'}")
    if embedded_redis:
        _say(f"Redis (embedded, {settings.DATA_DIR / 'redis'}): "
             f"{'started' if settings.EMBEDDED_REDIS_STARTED else 'already running, reused'}")

    from jagcall.kernel.crypto.keys import master

    _say(f"encryption: master keyset from {master.source}"
         + (" (generated for development; keep it with the data)" if settings.JAGCALL_GENERATE_DEV_KEYS else ""))
    call_command("migrate", interactive=False, verbosity=0)
    _say("database migrated")
    call_command("seed_demo")

    env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL, "REDIS_URL": settings.REDIS_URL}
    python = sys.executable
    web = [python, "-m", "uvicorn", "jagcall.asgi:application", "--host", args.host, "--port", str(args.port)]
    if not args.no_reload:
        web += ["--reload", "--reload-dir", str(BASE_DIR / "jagcall"), "--reload-dir", str(BASE_DIR / "accounts"),
                "--reload-include", "*.html"]
    commands = {
        "web": web,
        "worker": [python, "-m", "celery", "-A", "jagcall", "worker", "-Q", "default,transcription,embeddings,webhooks",
                   "--concurrency", "2", "--loglevel", "INFO", "--hostname", f"dev-{os.getpid()}@%h"],
        "beat": [python, "-m", "celery", "-A", "jagcall", "beat", "--loglevel", "INFO", "--pidfile=",
                 "--schedule", str(settings.DATA_DIR / "celerybeat-schedule")],
    }
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(signum=None, frame=None):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        for name, command in commands.items():
            # Own process group: Ctrl-C reaches us, and we stop the children in order.
            children[name] = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        _say(f"serving http://{args.host}:{args.port}/ (portal) and http://{args.host}:{args.port}/{settings.ADMIN_URL} (back office)")
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
        from jagcall.kernel.embedded import EmbeddedPostgres, EmbeddedRedis

        if embedded_redis:
            EmbeddedRedis(settings.DATA_DIR / "redis").stop()
        if embedded_db:
            EmbeddedPostgres(settings.DATA_DIR / "pg").stop()
        _say("stopped; data kept in " + str(settings.DATA_DIR))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
