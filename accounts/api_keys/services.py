"""API key services: create, revoke, and record use.

[!!] A key's secret leaves ``api_key_create`` once, in its return value;
the database holds only the prefix and a SHA-256 of the whole key.
Authority is a set of scopes (accounts/scopes.py): whoever grants a key
(a member through the portal or the API, another API key, the operator's
command) passes the scopes they hold; creating needs ``api_keys:write``,
and a key gets no scope its grantor lacks.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.api_keys.models import API_KEY_PREFIX, ApiKey
from accounts.hashing import secret_digest
from accounts.models import Organization, User
from accounts.scopes import SCOPES, unknown_scopes
from accounts.security_events import emit
from jagcall.kernel.errors import ApplicationError, PermissionDenied

PREFIX_LENGTH = 10
# No "_" in the prefix: the key splits on the first "_" after API_KEY_PREFIX.
_PREFIX_ALPHABET = string.ascii_letters + string.digits
LAST_USED_RESOLUTION = timedelta(minutes=1)
MANAGE_SCOPE = "api_keys:write"


def api_key_parse(raw_key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    prefix, sep, secret = raw_key[len(API_KEY_PREFIX):].partition("_")
    if not sep or len(prefix) != PREFIX_LENGTH or not secret or any(c not in _PREFIX_ALPHABET for c in prefix):
        return None
    return prefix


def _generate() -> tuple[str, str]:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    # 32 random bytes: 256 bits of secret.
    return prefix, f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


def _clean_scopes(scopes: Iterable[str], *, grantor_scopes: Collection[str]) -> list[str]:
    scopes = [s.strip() for s in (scopes or []) if s and s.strip()]
    if not scopes:
        raise ApplicationError("Choose at least one scope.", field="scopes")
    unknown = unknown_scopes(scopes)
    if unknown:
        raise ApplicationError(
            f"Unknown scope(s): {', '.join(unknown)}. Known scopes: {', '.join(SCOPES)}.", field="scopes"
        )
    beyond = sorted(set(scopes) - set(grantor_scopes))
    if beyond:
        raise ApplicationError(
            f"You cannot grant scope(s) your role does not allow: {', '.join(beyond)}.",
            field="scopes",
            code="scope_not_allowed",
        )
    return [s for s in SCOPES if s in set(scopes)]  # registry order, no duplicates


@transaction.atomic
def api_key_create(
    *,
    organization: Organization,
    created_by: User | None,
    grantor_scopes: Collection[str],
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None = None,
    request=None,
) -> tuple[ApiKey, str]:
    """A new key and its secret (returned once, never stored)."""
    if MANAGE_SCOPE not in grantor_scopes:
        raise PermissionDenied(f"Creating API keys needs the scope {MANAGE_SCOPE}.")
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the key a name, e.g. where it is used.", field="name")
    if len(name) > 100:
        raise ApplicationError("Keep the name under 100 characters.", field="name")
    cleaned = _clean_scopes(scopes, grantor_scopes=grantor_scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("The expiry must be in the future.", field="expires_at")
    prefix, raw_key = _generate()
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name,
        prefix=prefix,
        key_hash=secret_digest(raw_key),
        scopes=cleaned,
        created_by=created_by,
        expires_at=expires_at,
    )
    emit(
        "api_key.created",
        request=request,
        user=created_by,
        organization=organization,
        api_key_id=str(api_key.id),
        prefix=prefix,
        scopes=cleaned,
    )
    return api_key, raw_key


@transaction.atomic
def api_key_revoke(
    *, organization: Organization, api_key: ApiKey, actor: User | None, grantor_scopes: Collection[str], request=None
) -> ApiKey:
    """Revoke at once; revoking a revoked key changes nothing."""
    if MANAGE_SCOPE not in grantor_scopes:
        raise PermissionDenied(f"Revoking API keys needs the scope {MANAGE_SCOPE}.")
    if api_key.organization_id != organization.id:
        raise ApplicationError("Not found.", code="not_found", status=404)
    if api_key.revoked_at is not None:
        return api_key
    api_key.revoked_at = timezone.now()
    api_key.revoked_by = actor
    api_key.save(update_fields=["revoked_at", "revoked_by"])
    emit(
        "api_key.revoked",
        request=request,
        user=actor,
        organization=organization,
        api_key_id=str(api_key.id),
        prefix=api_key.prefix,
    )
    return api_key


def api_key_record_use(*, api_key: ApiKey, ip: str | None) -> None:
    """Last use (time and address), written at most once per LAST_USED_RESOLUTION per key."""
    now = timezone.now()
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    # The condition repeats in SQL: concurrent requests write once between them.
    ApiKey.objects.unscoped().filter(pk=api_key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now, last_used_ip=ip)
    api_key.last_used_at, api_key.last_used_ip = now, ip
