"""The hash chain: canonical JSON, event hashes, chain keys and ids.

Every event carries ``seq`` (its position in its chain), ``prev_hash`` (the
hash of the event before it, or GENESIS_HASH for the first) and ``hash``:

    hash = SHA-256( canonical_json(payload) ), payload including prev_hash

where ``canonical_json`` is UTF-8 JSON with sorted keys, no whitespace and no
ASCII escaping. Changing any hashed column of a row, deleting a row or
inserting one breaks the link to the next row, which verification finds.

There is one chain per organization and one for organization-less
(platform) events. Writers append under a transaction-scoped advisory lock
on the chain's key, so two writers never take the same ``seq``.

[!!] The payload is computed from values exactly as PostgreSQL gives them
back (``json_safe`` makes JSON values stable through jsonb; IPs are stored
in the form PostgreSQL prints). A change of this format needs a new
``HASH_VERSION`` and verification that knows both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import math
import os
import re
import time
import uuid
from decimal import Decimal

HASH_VERSION = 1
GENESIS_HASH = "0" * 64
PLATFORM_CHAIN = "platform"

REDACTED = "[redacted]"
ENCRYPTED = "[encrypted]"
# [!!] A field or key whose name contains one of these never has its value recorded.
SENSITIVE_NAME = re.compile(r"secret|password|passwd|token|key_hash|hash|otp|recovery_code|private_key", re.IGNORECASE)


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): 48-bit Unix milliseconds, then 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b, 62 bits
    return uuid.UUID(int=value)


def chain_key(organization_id) -> str:
    return str(organization_id) if organization_id else PLATFORM_CHAIN


def chain_lock_id(organization_id) -> int:
    """The bigint of pg_advisory_xact_lock for a chain (signed 64 bits of SHA-256)."""
    digest = hashlib.sha256(f"jagcall.audit.chain:{chain_key(organization_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# --- values ------------------------------------------------------------------------


def is_sensitive(name: str) -> bool:
    return bool(SENSITIVE_NAME.search(str(name)))


def redact(value):
    """Replace the value of every sensitive key, at any depth."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_sensitive(k) and v is not None else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def _float(value: float):
    if not math.isfinite(value):
        return str(value)
    # jsonb keeps numbers as numeric: 1e+16 comes back as 10000000000000000, an int,
    # and numeric has no negative zero.
    if value.is_integer() and "e" in repr(value):
        return int(value)
    if value == 0:
        return 0.0
    return value


def json_safe(value):
    """``value`` as plain JSON types that come back identical from a jsonb column."""
    from django.db.models import Model

    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_safe(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True, default=str))
    if isinstance(value, dt.datetime):
        return format_time(value) if value.tzinfo else value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        from jagcall.kernel.crypto.fields import Ciphertext

        return ENCRYPTED if isinstance(value, Ciphertext) else "[binary]"
    if isinstance(value, Model):
        return str(value.pk)
    return str(value).replace("\x00", "")


def normalize_ip(value) -> str | None:
    """The address as PostgreSQL's inet prints it, or None when it is not an address."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if address.scope_id:  # inet has no zone ("fe80::1%eth0")
            return str(ipaddress.IPv6Address(str(address).split("%", 1)[0]))
    return str(address)


def clean_text(value, limit: int) -> str:
    return str(value or "").replace("\x00", "")[:limit]


def format_time(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the hash ------------------------------------------------------------------------


def canonical_json(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def event_payload(event) -> dict:
    """What the hash covers: every column but ``hash`` itself and the ``actor`` FK.

    The FK may become NULL when a person is deleted (the trigger allows
    exactly that change); ``actor_key`` keeps who it was, and is hashed.
    """
    return {
        "v": HASH_VERSION,
        "id": str(event.id),
        "occurred_at": format_time(event.occurred_at),
        "organization_id": str(event.organization_id) if event.organization_id else None,
        "seq": int(event.seq),
        "prev_hash": event.prev_hash,
        "actor_type": event.actor_type,
        "actor_key": event.actor_key,
        "actor_label": event.actor_label,
        "api_key_prefix": event.api_key_prefix,
        "ip": str(event.ip) if event.ip else None,
        "user_agent": event.user_agent,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "outcome": event.outcome,
        "changes": event.changes,
        "metadata": event.metadata,
        "request_id": event.request_id,
    }


def event_hash(event) -> str:
    return hashlib.sha256(canonical_json(event_payload(event))).hexdigest()
