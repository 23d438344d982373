"""One Redis client (and connection pool) per server URL and process, for code that talks to Redis directly.

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
