"""API rate limits: a sliding-window log per caller in Redis.

Contract:
- Two budgets per caller and window (API_RATE_LIMIT_WINDOW_SECONDS):
  reads (GET, HEAD, OPTIONS) and writes (everything else), each with its own
  limit from ``limits_for(request)``, the one place a plan may raise them
  (through a resolver an app registers: ``register_limits_resolver``).
- The caller is the credential's ``rate_limit_key`` (one API key), else the
  user (JWT and session: one person across their tokens). Requests with
  neither (the token endpoints, which carry the credential in the body and
  have their own sign-in limits) are not counted here.
- The organization has a ceiling of its own over all its callers together
  (API_RATE_LIMIT_ORGANIZATION_MULTIPLIER times the caller's budget), so
  that creating more keys cannot multiply an organization's share. A request
  is counted in both windows or in neither.
- [!!] The check and the count are one Lua script, so Redis runs them as one
  step: with N concurrent requests exactly ``limit`` of them get in. Time is
  Redis's own (``TIME``), so clocks of web processes do not matter. Refused
  requests are not counted: a client that keeps retrying is let in as soon
  as its oldest counted request leaves the window.
- Every counted response carries RateLimit-Limit, RateLimit-Remaining and
  RateLimit-Reset (whole seconds until the oldest counted request leaves the
  window, so until a slot frees); a refusal is a 429 in the API's error
  shape with Retry-After. The throttle leaves its decision on the request;
  ``RateLimitHeadersMiddleware`` writes the headers.
- If Redis cannot be reached, requests are let through (and logged): the
  limiter protects capacity, it is not an authorization check.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
from dataclasses import dataclass

import redis
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from rest_framework.throttling import BaseThrottle

from jagcall.kernel.redis import cache_redis

logger = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEY_PREFIX = "jc:ratelimit"
REQUEST_ATTRIBUTE = "jagcall_rate_limit"

# KEYS: the sorted sets of the windows a request counts in (the caller's, then the organization's),
# each holding its counted requests (score: microseconds).
# ARGV: window in milliseconds, a random suffix that makes the member unique, then one limit per key.
# A request fits only if it fits every window, and is then counted in all of them.
# Returns {allowed (1/0), remaining, microseconds until a slot frees, limit} of the window that
# refused it, or else of the window with the fewest slots left.
SLIDING_WINDOW_LUA = """
local window_ms = tonumber(ARGV[1])
local window_us = window_ms * 1000
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local counts = {}
local refused = 0
for i = 1, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window_us)
    counts[i] = redis.call('ZCARD', KEYS[i])
    if refused == 0 and counts[i] >= tonumber(ARGV[i + 2]) then
        refused = i
    end
end
local allowed = 0
local report = refused
if refused == 0 then
    allowed = 1
    report = 1
    for i = 1, #KEYS do
        redis.call('ZADD', KEYS[i], now, now .. '-' .. ARGV[2])
        redis.call('PEXPIRE', KEYS[i], window_ms)
        counts[i] = counts[i] + 1
        if tonumber(ARGV[i + 2]) - counts[i] < tonumber(ARGV[report + 2]) - counts[report] then
            report = i
        end
    end
end
local limit = tonumber(ARGV[report + 2])
local reset = window_us
local oldest = redis.call('ZRANGE', KEYS[report], 0, 0, 'WITHSCORES')
if oldest[2] then
    reset = tonumber(oldest[2]) + window_us - now
end
local remaining = limit - counts[report]
if remaining < 0 then
    remaining = 0
end
return {allowed, remaining, reset, limit}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the oldest counted request leaves the window (>= 1)

    @property
    def retry_after(self) -> int | None:
        return None if self.allowed else self.reset_seconds


_scripts: dict[int, object] = {}
_scripts_lock = threading.Lock()


def _script():
    """The registered sliding-window script on the current cache Redis (one per client and process)."""
    client = cache_redis()
    script = _scripts.get(id(client))
    if script is None:
        with _scripts_lock:
            script = _scripts.setdefault(id(client), client.register_script(SLIDING_WINDOW_LUA))
    return script


def hit(key: str, *, limit: int, window_seconds: float) -> Decision:
    """Count one request against ``key`` if it fits in the window; say whether it did."""
    return hit_all([(key, limit)], window_seconds=window_seconds)


def hit_all(windows: list[tuple[str, int]], *, window_seconds: float) -> Decision:
    """Count one request in every (key, limit) window if it fits them all; say whether it did."""
    window_ms = max(1, int(window_seconds * 1000))
    allowed, remaining, reset_us, limit = _script()(
        keys=[f"{KEY_PREFIX}:{key}" for key, _limit in windows],
        args=[window_ms, secrets.token_hex(8), *(int(limit) for _key, limit in windows)],
    )
    return Decision(
        allowed=bool(allowed),
        limit=int(limit),
        remaining=int(remaining),
        reset_seconds=max(1, math.ceil(int(reset_us) / 1_000_000)),
    )


# ``resolver(request) -> (reads, writes) | None``: the budgets per window of the request's caller, or None
# to leave them to the next resolver and then to the settings. The kernel knows no plans: the app that
# does (accounts) registers its resolver from its AppConfig.ready().
LIMITS_RESOLVERS: list = []


def register_limits_resolver(resolver) -> None:
    """Add ``resolver`` (see LIMITS_RESOLVERS); registering the same one again changes nothing."""
    if resolver not in LIMITS_RESOLVERS:
        LIMITS_RESOLVERS.append(resolver)


def limits_for(request) -> tuple[int, int]:
    """(reads, writes) per window for this request's caller.

    The one place limits are chosen: the first registered resolver that answers (an organization's plan,
    from ``request.organization``), else API_RATE_LIMIT_READS / API_RATE_LIMIT_WRITES.
    """
    for resolver in LIMITS_RESOLVERS:
        limits = resolver(request)
        if limits is not None:
            reads, writes = limits
            return max(1, int(reads)), max(1, int(writes))
    return settings.API_RATE_LIMIT_READS, settings.API_RATE_LIMIT_WRITES


def organization_limits_for(request) -> tuple[int, int]:
    """(reads, writes) per window for all of an organization's callers together."""
    reads, writes = limits_for(request)
    multiplier = settings.API_RATE_LIMIT_ORGANIZATION_MULTIPLIER
    return reads * multiplier, writes * multiplier


def caller_key(request) -> str | None:
    """The API key's own key, else the user; None when the request has no caller."""
    key = getattr(request.auth, "rate_limit_key", None)
    if key:
        return str(key)
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False) and user.pk is not None:
        return f"user:{user.pk}"
    return None


class SlidingWindowThrottle(BaseThrottle):
    """Reads and writes per caller, counted in Redis (see the module docstring)."""

    def allow_request(self, request, view) -> bool:
        self.decision = None
        key = caller_key(request)
        if key is None:
            return True
        reads, writes = limits_for(request)
        kind = "read" if request.method.upper() in READ_METHODS else "write"
        windows = [(f"{kind}:{key}", reads if kind == "read" else writes)]
        organization = getattr(request, "organization", None)
        if organization is not None:
            org_reads, org_writes = organization_limits_for(request)
            windows.append((f"{kind}:org:{organization.pk}", org_reads if kind == "read" else org_writes))
        try:
            decision = hit_all(windows, window_seconds=settings.API_RATE_LIMIT_WINDOW_SECONDS)
        except redis.RedisError:
            logger.exception("rate limiter unavailable; request let through", extra={"rate_limit_key": key})
            return True
        self.decision = decision
        # On the Django request, where RateLimitHeadersMiddleware finds it.
        setattr(getattr(request, "_request", request), REQUEST_ATTRIBUTE, decision)
        return decision.allowed

    def wait(self):
        return self.decision.retry_after if self.decision is not None else None


def _apply(request, response):
    decision = getattr(request, REQUEST_ATTRIBUTE, None)
    if decision is None:
        return response
    response["RateLimit-Limit"] = str(decision.limit)
    response["RateLimit-Remaining"] = str(decision.remaining)
    response["RateLimit-Reset"] = str(decision.reset_seconds)
    if response.status_code == 429 and decision.retry_after is not None:
        response["Retry-After"] = str(decision.retry_after)
    return response


class RateLimitHeadersMiddleware:
    """Adds the RateLimit-* headers (and Retry-After on 429) to responses the throttle counted."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return _apply(request, self.get_response(request))

    async def __acall__(self, request):
        return _apply(request, await self.get_response(request))
