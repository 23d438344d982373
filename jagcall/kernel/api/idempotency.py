"""``Idempotency-Key`` on POST: a retried request runs once.

Contract (wired into OrganizationAPIView: ``initial()`` calls ``begin()``
after authentication, permissions and throttles; ``finalize_response()``
calls ``finish()``):
- The header is optional. When present it must be 1-255 printable ASCII
  characters, else 400 ``idempotency_key_invalid``.
- Keys belong to one caller (the credential's ``rate_limit_key``): two
  clients may use the same key without meeting.
- A request is identified by a SHA-256 of its method, path, canonical body
  (JSON re-serialized with sorted keys; other bodies as sent) and caller.
- The first request holds a lock (Redis ``SET NX`` with a short TTL) while it
  runs; its 2xx response is stored for 24 hours. Errors are not stored, so a
  retry after an error runs again.
- The same key and the same request within 24 hours gets the stored response
  (status and body) with ``Idempotent-Replayed: true``; the handler does not
  run again. The same key with a different request is a 409
  ``idempotency_key_reused``.
- [!!] A response marked ``Cache-Control: no-store`` (e.g. one showing a
  secret once) is never stored: only the fact that it succeeded is, and a
  replay is a 409 ``idempotency_replay_unavailable``.
- A duplicate that arrives while the first still runs waits up to
  IDEMPOTENCY_WAIT_SECONDS for its result, then answers 409
  ``idempotency_in_progress``; it never runs the handler alongside the first.
- [!!] If Redis cannot be reached, a request carrying the header is refused
  with 503 rather than run without the guarantee it asked for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass

import redis
from django.core.exceptions import RequestDataTooBig
from django.http.request import RawPostDataException
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from jagcall.kernel.api.throttling import caller_key
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.redis import cache_redis

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PREFIX = "jc:idempotency"
RESPONSE_TTL_SECONDS = 24 * 60 * 60
LOCK_TTL_SECONDS = 30
IDEMPOTENCY_WAIT_SECONDS = 5.0
_POLL_SECONDS = 0.05
MAX_KEY_LENGTH = 255
# Response headers worth replaying besides the body (the rest are set per response).
_REPLAYED_HEADERS = ("Location",)

# Deletes the lock only if it still holds our token (a lock that expired and
# was taken by another request is not ours to release).
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

def _client() -> redis.Redis:
    return cache_redis()


@dataclass
class Claim:
    """A request that holds the lock for its key and will store its result."""

    record_key: str
    lock_key: str
    token: str
    fingerprint: str


class Replay(Exception):
    """Raised from ``initial()`` to answer with a stored response instead of running the handler."""

    def __init__(self, response: Response):
        super().__init__("idempotent replay")
        self.response = response


def _valid_key(key: str) -> bool:
    return 1 <= len(key) <= MAX_KEY_LENGTH and all(" " <= ch <= "~" for ch in key)


def _canonical_body(request) -> bytes:
    try:
        body = request._request.body
    except (RawPostDataException, RequestDataTooBig):
        # Already streamed, or too large to hold twice (uploads): hash the parsed data.
        return json.dumps(request.data, sort_keys=True, cls=JSONEncoder, default=str).encode()
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    return json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()


def _caller(request) -> str:
    """[!!] Whose keys these are: the organization *and* the credential acting in it.

    A person's key used in one organization never replays in another, and an
    API key's never as the person's session (or another key) in the same one.
    The credential names itself (``credential_key``: the API's principal);
    the kernel imports no app to work it out.
    """
    organization = getattr(request, "organization", None)
    credential = getattr(request.auth, "credential_key", None) or caller_key(request) or "anonymous"
    return f"org:{organization.id if organization is not None else '-'}|{credential}"


def _fingerprint(request, caller: str) -> str:
    digest = hashlib.sha256()
    parts = (request.method.upper().encode(), request.get_full_path().encode(), _canonical_body(request), caller.encode())
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _replay(record: dict, fingerprint: str) -> Replay:
    if record["fingerprint"] != fingerprint:
        raise ApplicationError(
            "This Idempotency-Key was already used for a different request. Use a new key for a new request.",
            code="idempotency_key_reused",
            status=409,
        )
    if record.get("no_store"):
        raise ApplicationError(
            "The original request with this Idempotency-Key succeeded, but its response held a secret that is "
            "shown only once and cannot be shown again. Do not retry: look the object up instead.",
            code="idempotency_replay_unavailable",
            status=409,
        )
    data = json.loads(record["body"]) if record.get("body") is not None else None
    response = Response(data, status=record["status"])
    for header, value in record.get("headers", {}).items():
        response[header] = value
    response[REPLAYED_HEADER] = "true"
    return Replay(response)


def begin(request) -> Claim | None:
    """Check the request's Idempotency-Key; raise Replay or an error, or return the claim to finish.

    Returns None when the request is not a POST or carries no key.
    """
    if request.method.upper() != "POST":
        return None
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _valid_key(key):
        raise ApplicationError(
            f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, e.g. a UUID.",
            code="idempotency_key_invalid",
        )
    caller = _caller(request)
    fingerprint = _fingerprint(request, caller)
    scope = hashlib.sha256(f"{caller}\n{key}".encode()).hexdigest()
    record_key, lock_key = f"{KEY_PREFIX}:response:{scope}", f"{KEY_PREFIX}:lock:{scope}"
    token = secrets.token_hex(16)
    deadline = time.monotonic() + IDEMPOTENCY_WAIT_SECONDS
    try:
        client = _client()
        while True:
            stored = client.get(record_key)
            if stored is not None:
                raise _replay(json.loads(stored), fingerprint)
            if client.set(lock_key, token, nx=True, ex=LOCK_TTL_SECONDS):
                # The holder before us may have stored its result between our GET and SET.
                stored = client.get(record_key)
                if stored is not None:
                    _release(client, lock_key, token)
                    raise _replay(json.loads(stored), fingerprint)
                return Claim(record_key=record_key, lock_key=lock_key, token=token, fingerprint=fingerprint)
            if time.monotonic() >= deadline:
                raise ApplicationError(
                    "A request with this Idempotency-Key is still being processed. Retry in a few seconds.",
                    code="idempotency_in_progress",
                    status=409,
                )
            time.sleep(_POLL_SECONDS)
    except redis.RedisError:
        logger.exception("idempotency store unavailable; request refused")
        raise ApplicationError(
            "Requests with an Idempotency-Key cannot be accepted right now. Retry shortly.",
            code="idempotency_unavailable",
            status=503,
        ) from None


def _release(client: redis.Redis, lock_key: str, token: str) -> None:
    client.eval(_RELEASE_LUA, 1, lock_key, token)


def finish(claim: Claim | None, response) -> None:
    """Store the claimed request's 2xx response (for no-store ones, only that it succeeded); release the lock."""
    if claim is None:
        return
    try:
        client = _client()
        try:
            if 200 <= response.status_code < 300:
                no_store = "no-store" in response.get("Cache-Control", "").lower()
                record = {"fingerprint": claim.fingerprint, "status": response.status_code, "no_store": no_store}
                if not no_store:
                    data = getattr(response, "data", None)
                    record["body"] = None if data is None else json.dumps(data, cls=JSONEncoder)
                    record["headers"] = {h: response[h] for h in _REPLAYED_HEADERS if response.has_header(h)}
                client.set(claim.record_key, json.dumps(record), ex=RESPONSE_TTL_SECONDS)
        finally:
            _release(client, claim.lock_key, claim.token)
    except redis.RedisError:
        # The lock expires on its own; a retry then runs again, as after an error.
        logger.exception("idempotency store unavailable; response not stored")
