"""Settings of the server that bench/voice_webhook.py measures: the real ones, production-shaped.

The project's settings on the benchmark's embedded servers and scratch
database, DEBUG off, JSON logs at INFO as in production (the benchmark sends
them to a file), an https PUBLIC_BASE_URL (given in the environment, so the
settings' own checks see it) that Twilio's signatures are computed over, and
the web process's database connections as production has them: the pool
(DB_POOL_MAX_SIZE, DB_POOL_MIN_SIZE, DB_POOL_TIMEOUT from the environment, as
jagcall/settings/services.py reads them), or with BENCH_DB_POOL=0 one
connection per thread kept BENCH_CONN_MAX_AGE seconds.
"""

import os

from jagcall.settings_test import *  # noqa: F403

DEBUG = False
DATABASES["default"]["NAME"] = os.environ["BENCH_DATABASE_NAME"]  # noqa: F405
if os.environ.get("BENCH_DB_POOL", "1") != "0" and DATABASE_POOL_OPTIONS:  # noqa: F405
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = dict(DATABASE_POOL_OPTIONS)  # noqa: F405
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
else:
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("BENCH_CONN_MAX_AGE", "60"))  # noqa: F405
