"""Settings of the uvicorn server that jagcall/tests/test_db_pool.py starts: production's pool rule, test services.

The test settings (embedded servers, the test database named in
POOL_TEST_DATABASE_NAME) with the web process's pool as jagcall/settings/services.py
decides it: on when jagcall.asgi marked the process as web and DB_POOL_MAX_SIZE is
above 0. The test settings take the pool out; this puts production's rule back.
"""

import os

from jagcall.settings_test import *  # noqa: F403

DEBUG = False
DATABASES["default"]["NAME"] = os.environ["POOL_TEST_DATABASE_NAME"]  # noqa: F405
if WEB_PROCESS and DATABASE_POOL_OPTIONS:  # noqa: F405
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = dict(DATABASE_POOL_OPTIONS)  # noqa: F405
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
ROOT_URLCONF = "jagcall.tests.dbpool.urls"
