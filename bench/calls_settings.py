"""Settings of bench/calls_list.py (in-process, through Django's test client): the real ones, production-shaped.

The project's settings on the benchmark's embedded servers, DEBUG off,
persistent database connections as in production (DB_CONN_MAX_AGE's
default; in-process every request runs on the same thread, so the
connection really persists), the API's limiter counting every request but
refusing none, and the comparison route of bench/calls_urls.py.
"""

from jagcall.settings_test import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "bench.calls_urls"
DATABASES["default"]["CONN_MAX_AGE"] = 60  # noqa: F405
API_RATE_LIMIT_READS = 10**9
API_RATE_LIMIT_WRITES = 10**9
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]  # noqa: F405
