"""One Redis client (and connection pool) per server URL and process, for code that talks to Redis directly,
and one connection pool per URL for Django's cache (``SharedConnectionPool``).

The rate limiter, idempotency records and the audit log's failure counts use
the cache's Redis (REDIS_CACHE_URL) with short timeouts, so an unreachable
server fails fast and each caller applies its own rule (fail open or closed).
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings

TIMEOUT_SECONDS = 2

_clients: dict[tuple[str, bool], redis.Redis] = {}
_lock = threading.Lock()


def cache_redis(*, decode_responses: bool = False) -> redis.Redis:
    """The client for the current REDIS_CACHE_URL (the URL is read each call: tests point it elsewhere)."""
    key = (settings.REDIS_CACHE_URL, decode_responses)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = redis.Redis.from_url(
                    key[0],
                    socket_timeout=TIMEOUT_SECONDS,
                    socket_connect_timeout=TIMEOUT_SECONDS,
                    decode_responses=decode_responses,
                )
    return client


class SharedConnectionPool(redis.ConnectionPool):
    """Django's RedisCache ``pool_class`` (CACHES OPTIONS): one pool per URL and options in the process.

    [!!] Under ASGI, Django makes a cache backend for each request (its caches are per context), and each
    backend made its own pool: every request that touched the cache (a session, a rate limit) opened a new
    connection to Redis and dropped it at the end. Shared, the connections are reused. A pool notices a fork
    and starts afresh in the child (redis-py), so Celery's workers are safe.
    """

    _shared: dict[tuple, redis.ConnectionPool] = {}

    @classmethod
    def from_url(cls, url: str, **options):
        key = (url, tuple(sorted((name, repr(value)) for name, value in options.items())))
        pool = cls._shared.get(key)
        if pool is None:
            with _lock:
                pool = cls._shared.get(key)
                if pool is None:
                    pool = cls._shared[key] = redis.ConnectionPool.from_url(url, **options)
        return pool
