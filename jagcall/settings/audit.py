"""The audit log (compliance/, docs/security/audit.md)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env

# --- audit log (compliance/, docs/security/audit.md) ------------------------------
# Events older than this are purged daily, leaving a checkpoint so the hash chain still verifies.
AUDIT_RETENTION_DAYS = env("AUDIT_RETENTION_DAYS", default=365, cast=int)
if AUDIT_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("AUDIT_RETENTION_DAYS must be at least 1.")
