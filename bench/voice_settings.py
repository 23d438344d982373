"""Settings of the server that bench/voice_webhook.py measures: the real ones, production-shaped.

The project's settings on the benchmark's embedded servers and scratch
database, DEBUG off, persistent database connections as in production
(DB_CONN_MAX_AGE's default), JSON logs at INFO as in production (the
benchmark sends them to a file and reads the webhook lines' duration_ms),
and an https PUBLIC_BASE_URL (given in the environment, so the settings'
own checks see it) that Twilio's signatures are computed over.
"""

import os

from jagcall.settings_test import *  # noqa: F403

DEBUG = False
DATABASES["default"]["NAME"] = os.environ["BENCH_DATABASE_NAME"]  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("BENCH_CONN_MAX_AGE", "60"))  # noqa: F405
