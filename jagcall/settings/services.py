"""Backing services: PostgreSQL, Redis (cache, sessions, broker and channel
layer databases). Without DATABASE_URL / REDIS_URL, development and tests start
embedded servers (jagcall/kernel/embedded/)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env, is_set
from jagcall.settings.core import DATA_DIR, _require_in_production

# --- backing services ----------------------------------------------------
_require_in_production("DATABASE_URL")
_require_in_production("REDIS_URL")
EMBEDDED_POSTGRES_STARTED = EMBEDDED_REDIS_STARTED = False
DATABASE_OWNER_URL = ""
if is_set("DATABASE_URL"):
    DATABASE_URL = env("DATABASE_URL")
    DATABASE_OWNER_URL = env("DATABASE_OWNER_URL", default="")
else:
    from jagcall.kernel.embedded import EmbeddedPostgres

    _pg = EmbeddedPostgres(DATA_DIR / "pg")
    EMBEDDED_POSTGRES_STARTED = _pg.ensure_running()
    _pg.ensure_app_role()
    DATABASE_URL = _pg.app_url()  # the restricted role, as in production
    DATABASE_OWNER_URL = _pg.url()  # the superuser that owns the tables: migrations only
if is_set("REDIS_URL"):
    REDIS_URL = env("REDIS_URL")
else:
    from jagcall.kernel.embedded import EmbeddedRedis

    _redis = EmbeddedRedis(DATA_DIR / "redis")
    EMBEDDED_REDIS_STARTED = _redis.ensure_running()
    REDIS_URL = _redis.url()

if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...); no other database is supported.")

DATABASES = {
    "default": {
        **dj_database_url.parse(DATABASE_URL, conn_max_age=env("DB_CONN_MAX_AGE", default=60, cast=int)),
        "ATOMIC_REQUESTS": False,  # services own their transactions (STYLE.md #3)
        "CONN_HEALTH_CHECKS": True,
    }
}

# --- the web process's connection pool (docs/performance.md) -----------------------------
# Under the ASGI server every request runs its sync code in a thread of its own, so a
# connection kept open per thread (CONN_MAX_AGE > 0) is never used again and piles up until
# PostgreSQL refuses new ones; closing it after each request (CONN_MAX_AGE=0) pays a new
# connection per request. The web process (jagcall/asgi.py marks it with
# JAGCALL_PROCESS=web) borrows connections from a psycopg pool instead: at most
# DB_POOL_MAX_SIZE per process, DB_POOL_MIN_SIZE kept open, and a request waits up to
# DB_POOL_TIMEOUT seconds for one (then it fails like a database that is down).
# DB_POOL_MAX_SIZE=0 turns the pool off. Workers, beat and management commands run their
# work in one thread and keep DB_CONN_MAX_AGE; a pool there would also not survive the
# worker's fork.
DB_POOL_MAX_SIZE = env("DB_POOL_MAX_SIZE", default=10, cast=int)
DB_POOL_MIN_SIZE = env("DB_POOL_MIN_SIZE", default=2, cast=int)
DB_POOL_TIMEOUT = env("DB_POOL_TIMEOUT", default=10, cast=int)
if DB_POOL_MAX_SIZE < 0 or DB_POOL_MIN_SIZE < 0 or DB_POOL_TIMEOUT <= 0:
    raise ImproperlyConfigured("DB_POOL_MAX_SIZE and DB_POOL_MIN_SIZE must be 0 or more, DB_POOL_TIMEOUT above 0.")
# The options of Django's pool (DATABASES["default"]["OPTIONS"]["pool"]); None: no pool.
DATABASE_POOL_OPTIONS = (
    {"min_size": min(DB_POOL_MIN_SIZE, DB_POOL_MAX_SIZE), "max_size": DB_POOL_MAX_SIZE, "timeout": DB_POOL_TIMEOUT}
    if DB_POOL_MAX_SIZE
    else None
)
WEB_PROCESS = env("JAGCALL_PROCESS", default="") == "web"
if WEB_PROCESS and DATABASE_POOL_OPTIONS:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = dict(DATABASE_POOL_OPTIONS)
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django's pool refuses persistent connections
# At most this many HTTP requests inside Django at once in the web process; the others wait in
# line before it (jagcall/kernel/serving.py). 0: no bound. Default: the pool's size, so a request
# that enters finds a free connection.
WEB_MAX_CONCURRENT_REQUESTS = env("WEB_MAX_CONCURRENT_REQUESTS", default=DB_POOL_MAX_SIZE, cast=int)
if WEB_MAX_CONCURRENT_REQUESTS < 0:
    raise ImproperlyConfigured("WEB_MAX_CONCURRENT_REQUESTS must be 0 (no bound) or more.")
# Providers' signed webhooks (/hooks/) have a lane of their own with this bound instead (jagcall/kernel/serving.py):
# short and CPU-bound, one at a time in a process held to one core by the GIL is the fastest way through a burst,
# and a slow page never holds their place. 0: no bound of their own (they share WEB_MAX_CONCURRENT_REQUESTS').
WEB_MAX_CONCURRENT_WEBHOOKS = env("WEB_MAX_CONCURRENT_WEBHOOKS", default=1, cast=int)
if WEB_MAX_CONCURRENT_WEBHOOKS < 0:
    raise ImproperlyConfigured("WEB_MAX_CONCURRENT_WEBHOOKS must be 0 (no bound of their own) or more.")
# Server-Timing on every answer (time waiting at that bound, time in Django); off: it tells clients how
# long the server worked on their request.
SERVER_TIMING_HEADER = env("SERVER_TIMING_HEADER", default=False, cast=bool)
# A process that has ended a call gives the memory it freed back to the system (malloc_trim, about 2 ms in a
# worker thread), at most once per this many seconds (jagcall/kernel/memory.py). 0: never.
MEMORY_TRIM_INTERVAL_SECONDS = env("MEMORY_TRIM_INTERVAL_SECONDS", default=1.0, cast=float)
if MEMORY_TRIM_INTERVAL_SECONDS < 0:
    raise ImproperlyConfigured("MEMORY_TRIM_INTERVAL_SECONDS must be 0 (never) or more.")

# --- database roles (docs/security/audit.md, "Who can change the log") ----------
# [!!] DATABASE_URL is the application's role: web, worker and beat connect as a
# LOGIN role that owns no table, so it cannot UPDATE, DELETE or TRUNCATE audit
# rows nor disable their triggers (what it may do is granted by
# compliance/roles.py after every migrate). DATABASE_OWNER_URL is the role that
# owns the tables; only the process that runs `manage.py migrate` is given it
# (the "migrate" service of compose.yaml; the embedded server's superuser in
# development and tests), as the "owner" alias that migrate uses by default
# (compliance/management/commands/migrate.py). DATABASE_OWNER_PASSWORD_FILE,
# when set, holds the owner's password (a secret file shared with the db container).
if DATABASE_OWNER_URL:
    if not DATABASE_OWNER_URL.startswith(("postgres://", "postgresql://")):
        raise ImproperlyConfigured("DATABASE_OWNER_URL must point at PostgreSQL (postgres://...).")
    _owner = dj_database_url.parse(DATABASE_OWNER_URL, conn_max_age=0)
    if is_set("DATABASE_OWNER_PASSWORD_FILE"):
        try:
            _owner["PASSWORD"] = Path(env("DATABASE_OWNER_PASSWORD_FILE")).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"DATABASE_OWNER_PASSWORD_FILE cannot be read: {exc}") from exc
    DATABASES["owner"] = {**_owner, "ATOMIC_REQUESTS": False, "CONN_HEALTH_CHECKS": True}
# The alias `manage.py migrate` uses, and the role the migrations grant the application's rights to.
MIGRATION_DATABASE = "owner" if "owner" in DATABASES else "default"
DATABASE_APP_ROLE = DATABASES["default"]["USER"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def redis_url_for_db(url: str, db: int) -> str:
    """The same Redis server, another logical database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


REDIS_DB_OFFSET = env("REDIS_DB_OFFSET", default=0, cast=int)
REDIS_CACHE_URL = redis_url_for_db(REDIS_URL, REDIS_DB_OFFSET + 0)
REDIS_BROKER_URL = redis_url_for_db(REDIS_URL, REDIS_DB_OFFSET + 1)
REDIS_CHANNELS_URL = redis_url_for_db(REDIS_URL, REDIS_DB_OFFSET + 2)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": "jc",
        "TIMEOUT": 300,
        # One pool for the process: Django makes a cache backend per request under ASGI (jagcall/kernel/redis.py).
        "OPTIONS": {"pool_class": "jagcall.kernel.redis.SharedConnectionPool"},
    },
}

# Sessions live in Redis (C25): the cache backend, on the same server.
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "default"
SESSION_COOKIE_AGE = env("SESSION_COOKIE_AGE", default=60 * 60 * 12, cast=int)
SESSION_IDLE_TIMEOUT = env("SESSION_IDLE_TIMEOUT", default=60 * 60 * 2, cast=int)
SESSION_ABSOLUTE_TIMEOUT = env("SESSION_ABSOLUTE_TIMEOUT", default=SESSION_COOKIE_AGE, cast=int)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
