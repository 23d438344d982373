"""Settings of the server that bench/api.py measures: the real ones, production-shaped.

The project's settings on the benchmark's embedded servers and scratch
database, DEBUG off, persistent database connections as in production, the
limiter's budget raised so that it is measured on every request but never
refuses one, and one extra route (bench/api_urls.py) serving the same
listing with no security layers for comparison.
"""

import os

from jagcall.settings_test import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "bench.api_urls"
DATABASES["default"]["NAME"] = os.environ["BENCH_DATABASE_NAME"]  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = 60  # noqa: F405
API_RATE_LIMIT_READS = 10**9
API_RATE_LIMIT_WRITES = 10**9
BENCH_ORGANIZATION_ID = os.environ["BENCH_ORGANIZATION_ID"]
