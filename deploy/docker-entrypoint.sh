#!/bin/sh
# Entry point of the JagCall image (see Dockerfile and compose.yaml).
#
#   uvicorn ...          web role (the image's default command): runs
#                        `manage.py check --deploy`, waits for PostgreSQL and
#                        Redis, then serves. It never migrates.
#   migrate [ARGS...]    migrate role (the "migrate" service of compose.yaml):
#                        waits for PostgreSQL and Redis, applies migrations
#                        as the owner role (DATABASE_OWNER_URL), then exits.
#   worker [ARGS...]     celery -A jagcall worker -Q <every queue> [ARGS...]
#   beat [ARGS...]       celery -A jagcall beat [ARGS...]
#   healthcheck [PATH]   GET http://127.0.0.1:8000/PATH (default /healthz);
#                        exit 0 on 200. Used by HEALTHCHECK in the image and
#                        compose.yaml.
#   anything else        run as given (e.g. `python manage.py createsuperuser`).
#
# Worker and beat wait for PostgreSQL and Redis too, but never migrate.
# [!!] Only the migrate role is given the owner role's credentials: web,
# worker and beat connect as the restricted application role (DATABASE_URL),
# which cannot change or delete audit rows (docs/deploy.md, Database roles).
# Migrations run under a PostgreSQL advisory lock, so two migrate runs at
# once apply them one after another.
set -eu

QUEUES="default,transcription,embeddings,webhooks"

log() {
    printf '%s docker-entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

healthcheck() {
    exec python - "${1:-/healthz}" <<'PY'
import os
import sys
import urllib.error
import urllib.request

path = sys.argv[1]
# Django answers 400 to a Host outside ALLOWED_HOSTS, so ask as the first one.
hosts = [h.strip().lstrip(".") for h in os.environ.get("ALLOWED_HOSTS", "").split(",")]
hosts = [h for h in hosts if h and h != "*"]
request = urllib.request.Request(
    "http://127.0.0.1:8000" + path, headers={"Host": hosts[0] if hosts else "localhost"}
)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer, not health


try:
    with urllib.request.build_opener(NoRedirect).open(request, timeout=4) as response:
        status = response.status
except urllib.error.HTTPError as exc:
    status = exc.code
except OSError as exc:
    sys.exit(f"unhealthy: {path}: {exc}")
if status != 200:
    sys.exit(f"unhealthy: {path} answered {status}")
PY
}

wait_for_services() {
    python - <<'PY'
import os
import sys
import time

os.environ.setdefault("PGCONNECT_TIMEOUT", "5")
try:
    import django

    django.setup()
except Exception as exc:  # a missing or invalid variable: say which, do not retry
    sys.exit(f"configuration error: {type(exc).__name__}: {exc}")

import redis
from django.conf import settings
from django.db import connections

timeout = float(os.environ.get("WAIT_FOR_SERVICES_TIMEOUT") or 90)
deadline = time.monotonic() + timeout


def postgres():
    connection = connections["default"]
    try:
        connection.ensure_connection()
    finally:
        connection.close()


def redis_ping():
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    finally:
        client.close()


for name, probe in (("PostgreSQL", postgres), ("Redis", redis_ping)):
    while True:
        try:
            probe()
            break
        except Exception as exc:
            if time.monotonic() > deadline:
                sys.exit(f"{name} not reachable after {timeout:.0f}s: {type(exc).__name__}: {exc}")
            time.sleep(2)
    print(f"{name} is reachable", file=sys.stderr)
PY
}

# Runs the command given as arguments while holding a PostgreSQL advisory
# lock; exits with the command's status.
with_migration_lock() {
    python - "$@" <<'PY'
import subprocess
import sys

import django

django.setup()
from django.db import connection

LOCK_ID = 7_263_511_902  # any fixed bigint; the same in every container

with connection.cursor() as cursor:
    print("taking the migration lock", file=sys.stderr)
    cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_ID])
    try:
        status = subprocess.call(sys.argv[1:])
    finally:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_ID])
sys.exit(status)
PY
}

is_true() {
    case "$(printf '%s' "${1:-}" | tr '[:upper:]' '[:lower:]')" in
        1 | true | yes | on) return 0 ;;
        *) return 1 ;;
    esac
}

if [ "$#" -eq 0 ]; then
    log "no command given"
    exit 64
fi

case "$1" in
    healthcheck)
        shift
        healthcheck "${1:-/healthz}"
        ;;
    worker)
        shift
        set -- celery -A jagcall worker -Q "$QUEUES" --loglevel "${LOG_LEVEL:-INFO}" "$@"
        ;;
    beat)
        shift
        set -- celery -A jagcall beat --loglevel "${LOG_LEVEL:-INFO}" \
            --schedule "${JAGCALL_DATA_DIR:-/var/lib/jagcall}/celerybeat-schedule" "$@"
        ;;
    migrate)
        shift
        # migrate uses the "owner" alias (DATABASE_OWNER_URL) by default: compliance/management/commands/migrate.py
        set -- python manage.py migrate --noinput "$@"
        role=migrate
        ;;
esac

role=${role:-other}
case "$1" in
    uvicorn) role=web ;;
    celery)
        case " $* " in
            *" worker "*) role=worker ;;
            *" beat "*) role=beat ;;
        esac
        ;;
esac

if [ "$role" = web ]; then
    # The deployment checks of SECURITY.md section 3: refuse to serve with
    # an insecure configuration (weak SECRET_KEY, DEBUG on, ...).
    python manage.py check --deploy --fail-level WARNING || {
        log "manage.py check --deploy failed; fix the environment (deploy/.env) and restart"
        exit 1
    }
fi

if [ "$role" != other ]; then
    log "$role: waiting for PostgreSQL and Redis"
    wait_for_services || {
        log "$role: not starting (see the error above)"
        exit 1
    }
fi

if [ "$role" = migrate ]; then
    if [ -z "${DATABASE_OWNER_URL:-}" ]; then
        log "migrate: DATABASE_OWNER_URL is not set; migrations run as the role that owns the tables (docs/deploy.md)"
        exit 1
    fi
    log "migrate: applying migrations as the owner role"
    with_migration_lock "$@" || {
        log "migrate: migrations failed"
        exit 1
    }
    log "migrate: done"
    exit 0
fi

if [ "$role" = web ] && is_true "${RUN_MIGRATIONS:-0}"; then
    log "web: RUN_MIGRATIONS is ignored: web has no owner credentials; the migrate service applies migrations"
fi

if [ "$role" != other ]; then
    # The master keyset must open the organization keys already stored
    # (crypto.E001): a wrong key stops here instead of failing on every read.
    python manage.py check --database default --fail-level ERROR || {
        log "$role: the master keyset does not match the stored keys (JAGCALL_MASTER_KEYSET_FILE)"
        exit 1
    }
fi

log "$role: exec $1"
exec "$@"
