"""The audit log (compliance/, docs/security/audit.md)."""

from __future__ import annotations

import base64
import binascii
import secrets

from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env
from jagcall.settings.core import DATA_DIR, EMBEDDED_SERVICES_ALLOWED, _development_secret, _require_in_production

# --- audit log (compliance/, docs/security/audit.md) ------------------------------
# Events older than this are purged daily, leaving a checkpoint so the hash chain still verifies.
AUDIT_RETENTION_DAYS = env("AUDIT_RETENTION_DAYS", default=365, cast=int)
if AUDIT_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("AUDIT_RETENTION_DAYS must be at least 1.")

# --- signed digests of the chains' heads (compliance/digests.py, docs/security/audit.md) ---
# [!!] Each day every chain's head (organization, seq, hash, time) is signed with this
# Ed25519 key and written outside the database (AUDIT_DIGEST_DIR, the log, exports), so a
# truncated or rewritten tail is found by verify_audit_chain. Verifying needs only the
# public key. The base64 of the 32-byte private key: make one with `python -m compliance.keygen`.
_require_in_production("AUDIT_DIGEST_SIGNING_KEY")
AUDIT_DIGEST_SIGNING_KEY = env("AUDIT_DIGEST_SIGNING_KEY", default="")
if not AUDIT_DIGEST_SIGNING_KEY and EMBEDDED_SERVICES_ALLOWED:
    AUDIT_DIGEST_SIGNING_KEY = _development_secret(
        "audit_digest_signing_key", lambda: base64.b64encode(secrets.token_bytes(32)).decode()
    )
try:
    _digest_key_ok = len(base64.b64decode(AUDIT_DIGEST_SIGNING_KEY, validate=True)) == 32
except (binascii.Error, ValueError):
    _digest_key_ok = False
if not _digest_key_ok:
    raise ImproperlyConfigured(
        "AUDIT_DIGEST_SIGNING_KEY must be the base64 of a 32-byte Ed25519 private key; "
        "make one with `python -m compliance.keygen` (see docs/security/audit.md)."
    )
# Public keys of earlier signing keys (base64, comma-separated), still accepted when verifying after a rotation.
AUDIT_DIGEST_VERIFY_KEYS = env("AUDIT_DIGEST_VERIFY_KEYS", default=[], cast=list)
# Where the digests are appended, one JSON Lines file per chain. Ship it off the host too.
AUDIT_DIGEST_DIR = env("AUDIT_DIGEST_DIR", default=str(DATA_DIR / "audit-digests"))
