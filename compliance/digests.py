"""Signed digests of each chain's head, kept outside the audit table.

The hash chain shows a changed or missing row in the middle of a chain, but
not a tail cut off or rewritten (rows after some point deleted, or replaced by
re-hashed rows that link up): the shorter or rewritten chain is consistent.
So every day each chain's head is signed and written where the database's
users cannot reach it (docs/security/audit.md):

- appended to ``AUDIT_DIGEST_DIR/<chain>.jsonl`` (``<organization id>`` or
  ``platform``), one JSON object per line;
- to the structured log (logger ``jagcall.audit``, message "audit chain digest");
- into every CSV / JSON Lines export of the organization's log.

A digest: ``{"v", "organization_id", "seq", "hash", "head_occurred_at",
"signed_at", "key_id", "signature"}``. ``signature`` is Ed25519 over the
canonical JSON (compliance.chain.canonical_json) of every other field;
``key_id`` is the first 16 hex digits of SHA-256 of the raw public key.
Verifying needs only the public key (``python -m compliance.keygen --public``).

[!!] ``audit_digest_verify`` compares the latest correctly signed digest with
the chain: a head below the digested seq is a truncated tail; a different
hash at the digested seq is a rewritten chain. A line whose signature does
not verify is reported too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db.models import Q

from compliance.chain import GENESIS_HASH, canonical_json, chain_key, format_time
from compliance.models import AuditChainCheckpoint, AuditEvent

DIGEST_VERSION = 1
_FIELDS = ("v", "organization_id", "seq", "hash", "head_occurred_at", "signed_at", "key_id")


# --- keys -------------------------------------------------------------------------------


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(public)).hexdigest()[:16]


def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(settings.AUDIT_DIGEST_SIGNING_KEY))


def public_key_b64() -> str:
    return base64.b64encode(_raw_public(signing_key().public_key())).decode()


def verify_keys() -> dict[str, Ed25519PublicKey]:
    """The public keys a digest may be signed with, by key id: the current one and AUDIT_DIGEST_VERIFY_KEYS."""
    keys = [signing_key().public_key()]
    for value in settings.AUDIT_DIGEST_VERIFY_KEYS:
        try:
            keys.append(Ed25519PublicKey.from_public_bytes(base64.b64decode(value.strip(), validate=True)))
        except ValueError:
            continue  # a malformed key is skipped: a digest signed with it reads as signed by an unknown key
    return {key_id(key): key for key in keys}


# --- heads and digests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    occurred_at: object | None


def _chain_q(organization_id) -> Q:
    return Q(organization__isnull=True) if organization_id is None else Q(organization_id=organization_id)


def audit_chain_head(*, organization_id) -> Head:
    """The chain's newest event, else its newest purge checkpoint, else the empty chain (seq 0)."""
    event = AuditEvent.objects.for_chain(organization_id).order_by("-seq").values_list("seq", "hash", "occurred_at").first()
    checkpoint = (
        AuditChainCheckpoint.objects.filter(_chain_q(organization_id))
        .order_by("-seq")
        .values_list("seq", "hash", "occurred_at")
        .first()
    )
    newest = max([row for row in (event, checkpoint) if row], key=lambda row: row[0], default=None)
    if newest is None:
        return Head(seq=0, hash=GENESIS_HASH, occurred_at=None)
    return Head(seq=newest[0], hash=newest[1], occurred_at=newest[2])


def sign_head(*, organization_id, head: Head, signed_at) -> dict:
    key = signing_key()
    payload = {
        "v": DIGEST_VERSION,
        "organization_id": str(organization_id) if organization_id else None,
        "seq": int(head.seq),
        "hash": head.hash,
        "head_occurred_at": format_time(head.occurred_at) if head.occurred_at else None,
        "signed_at": format_time(signed_at),
        "key_id": key_id(key.public_key()),
    }
    signature = key.sign(canonical_json(payload))
    return {**payload, "signature": base64.b64encode(signature).decode()}


def signature_problem(digest) -> str | None:
    """Why ``digest`` is not a correctly signed digest; None when it is."""
    if not isinstance(digest, dict) or set(digest) != {*_FIELDS, "signature"}:
        return "not a digest (unexpected fields)"
    public = verify_keys().get(digest.get("key_id"))
    if public is None:
        return f"signed with an unknown key (key id {digest.get('key_id')!r}; add its public key to AUDIT_DIGEST_VERIFY_KEYS)"
    try:
        signature = base64.b64decode(str(digest["signature"]), validate=True)
        public.verify(signature, canonical_json({name: digest[name] for name in _FIELDS}))
    except (InvalidSignature, ValueError):
        return "bad signature (the digest was altered or not signed by this key)"
    return None


# --- the files ----------------------------------------------------------------------------


def digest_path(organization_id) -> Path:
    return Path(settings.AUDIT_DIGEST_DIR) / f"{chain_key(organization_id)}.jsonl"


def append_digest(digest: dict) -> Path:
    """Append one line (O_APPEND: never rewritten in place), flushed to disk before returning."""
    path = digest_path(digest["organization_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(digest, sort_keys=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


@dataclass
class DigestLine:
    number: int
    digest: dict | None
    problem: str | None


def read_digests(*, organization_id) -> list[DigestLine]:
    """Every line of the chain's digest file, each with its signature checked."""
    path = digest_path(organization_id)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            digest = json.loads(raw)
        except ValueError:
            lines.append(DigestLine(number, None, "not JSON"))
            continue
        problem = signature_problem(digest)
        if problem is None and digest["organization_id"] != (str(organization_id) if organization_id else None):
            problem = "names another chain"
        lines.append(DigestLine(number, digest if isinstance(digest, dict) else None, problem))
    return lines


def latest_digest(*, organization_id) -> dict | None:
    """The newest correctly signed digest of the chain, or None."""
    for line in reversed(read_digests(organization_id=organization_id)):
        if line.problem is None:
            return line.digest
    return None


# --- verification ---------------------------------------------------------------------------


@dataclass
class DigestProblem:
    seq: int | None
    reason: str


def audit_digest_verify(*, organization_id) -> list[DigestProblem]:
    """Check the chain against its digests: every line's signature, and the latest good digest's head."""
    problems = []
    lines = read_digests(organization_id=organization_id)
    for line in lines:
        if line.problem is not None:
            seq = line.digest.get("seq") if line.digest else None
            where = f"{digest_path(organization_id).name} line {line.number}"
            problems.append(DigestProblem(seq if isinstance(seq, int) else None, f"digest at {where}: {line.problem}"))
    good = [line.digest for line in lines if line.problem is None]
    if not good:
        return problems
    digest = good[-1]
    seq, signed = int(digest["seq"]), digest["signed_at"]
    if seq == 0:
        return problems  # the chain was empty when signed
    head = audit_chain_head(organization_id=organization_id)
    if head.seq < seq:
        problems.append(
            DigestProblem(
                seq,
                f"truncated tail: the chain ends at seq {head.seq} but the digest signed at {signed} "
                f"covers seq {seq} (events {head.seq + 1}..{seq} were removed)",
            )
        )
        return problems
    chain = _chain_q(organization_id)
    stored = AuditEvent.objects.for_chain(organization_id).filter(seq=seq).values_list("hash", flat=True).first()
    if stored is None:
        stored = AuditChainCheckpoint.objects.filter(chain, seq=seq).values_list("hash", flat=True).first()
    if stored is None:
        purged_past = AuditChainCheckpoint.objects.filter(chain, seq__gte=seq).exists()
        if not purged_past:
            problems.append(DigestProblem(seq, f"the event at seq {seq} signed at {signed} is missing"))
    elif stored != digest["hash"]:
        problems.append(
            DigestProblem(
                seq,
                f"rewritten chain: the event at seq {seq} has hash {stored[:16]}... but the digest signed at "
                f"{signed} holds {digest['hash'][:16]}...",
            )
        )
    return problems
