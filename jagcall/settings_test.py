"""Test settings: the real settings on embedded services of their own.

The suite runs against its own embedded PostgreSQL + Redis under
.data/test-<pid> (never the development data), unless DATABASE_URL / REDIS_URL
are set. Each pytest-xdist worker gets its own Redis databases, so queues,
channel layers and caches never leak between workers.
"""

import os

os.environ["JAGCALL_TESTING"] = "1"
# One data directory per run (the controlling process's pid; xdist workers inherit
# it), so two runs at once never share, or stop, each other's servers.
os.environ.setdefault(
    "JAGCALL_DATA_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".data", f"test-{os.getpid()}")
)
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw-1")
_index = int(_worker[2:]) + 1 if _worker[2:].lstrip("-").isdigit() else 0
os.environ["REDIS_DB_OFFSET"] = str(3 + 3 * max(_index, 0))  # 0-2 stay for development use

from jagcall.settings import *  # noqa: E402,F403

# Fast hashing in tests only; production order is asserted in test_settings.py.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]  # noqa: F405
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# The test client speaks plain HTTP; the redirect itself is covered by check --deploy.
SECURE_SSL_REDIRECT = False
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
# Connections opened by server threads in the browser tests close after each
# request, so the test database can be dropped at the end of the run.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# No pool in the test process (a module that imports jagcall.asgi marks the process as web): the
# test database is created under another name after the pool would have been made. The pool is
# proved on a real server (jagcall/tests/test_db_pool.py).
DATABASES["default"].get("OPTIONS", {}).pop("pool", None)  # noqa: F405
# [!!] Tests connect as the application's restricted role ("default"), as production
# does; the owner role ("owner") creates, migrates and drops the test database, and
# empties it between transactional tests, through the engine in tests/postgres/.
for _alias in DATABASES:  # noqa: F405
    DATABASES[_alias]["ENGINE"] = "tests.postgres"  # noqa: F405
if MIGRATION_DATABASE == "default":  # noqa: F405
    # One role for everything (DATABASE_URL given without DATABASE_OWNER_URL): the
    # flush between transactional tests is a plain TRUNCATE, which the audit tables
    # refuse unless the session allows it (compliance/migrations/0002). Production never sets this.
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})  # noqa: F405
    _db_options["options"] = f"{_db_options.get('options', '')} -c jagcall.audit_allow_truncate=on".strip()
# Example models for the encryption kernel's tests and benchmark.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.crypto_example"]  # noqa: F405
