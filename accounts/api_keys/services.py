"""API key services: create, revoke, and record use.

[!!] A key's secret leaves ``api_key_create`` once, in its return value;
the database holds only the prefix and a SHA-256 of the whole key.
Authority is a set of scopes (accounts/scopes.py) within a role: whoever
grants a key (a member through the portal or the API, another API key, an
OAuth application, the operator's command) is a Principal whose effective
scopes bound what it may grant; creating needs ``api_keys:write``.
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
from accounts.permissions import Role
from accounts.principals import Kind, Principal, as_principal
from accounts.scopes import SCOPES, scopes_for_role, unknown_scopes
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


def _clean_scopes(scopes: Iterable[str], *, grantor_scopes: Collection[str], beyond_message: str) -> list[str]:
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
            f"{beyond_message}: {', '.join(beyond)}.",
            field="scopes",
            code="scope_not_allowed",
        )
    return [s for s in SCOPES if s in set(scopes)]  # registry order, no duplicates


def _grant(*, organization: Organization, actor, service_role: str) -> tuple[Collection[str], User | None, str, str]:
    """(scopes the actor may grant, the new key's creator, its service role, what to say of a scope beyond them).

    [!!] No credential creates a credential with more rights than itself: a
    person grants within their role; an API key grants within its own
    effective scopes, and the new key stands on the same footing as it (the
    same creator, or the same service role); an OAuth application within what
    it was granted. Only the operator (a system principal) makes service keys,
    each with an explicit role.
    """
    if isinstance(actor, Principal) and actor.kind == Kind.SYSTEM:
        if service_role not in Role.values:
            raise ApplicationError(
                f"A service key needs the role it acts within: one of {', '.join(Role.values)}.", field="service_role"
            )
        return (
            scopes_for_role(service_role),
            None,
            service_role,
            f"A service key acting as {service_role} cannot hold scope(s) that role does not allow",
        )
    principal = as_principal(actor, organization)
    if service_role:
        raise PermissionDenied("Only the operator creates service keys.")
    if principal.kind == Kind.API_KEY:
        parent = principal.api_key
        return (
            principal.scopes,
            parent.created_by,
            parent.service_role,
            "This API key can grant only scopes it holds itself (within the role it acts as), not",
        )
    if principal.kind == Kind.OAUTH_APPLICATION:
        return (
            principal.scopes,
            principal.user,
            "",
            "This application can grant only scopes it was given and its member's role allows, not",
        )
    return principal.scopes, principal.user, "", f"Your role ({principal.role}) does not allow granting"


@transaction.atomic
def api_key_create(
    *,
    organization: Organization,
    actor,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None = None,
    service_role: str = "",
    request=None,
) -> tuple[ApiKey, str]:
    """A new key and its secret (returned once, never stored).

    ``actor``: the Principal creating it (a User acts as their membership);
    ``Principal.system(...)`` with ``service_role`` for the operator's service keys.
    """
    grantable, created_by, service_role, beyond_message = _grant(
        organization=organization, actor=actor, service_role=service_role
    )
    if not isinstance(actor, Principal) or actor.kind != Kind.SYSTEM:
        if MANAGE_SCOPE not in grantable:
            raise PermissionDenied(f"Creating API keys needs the scope {MANAGE_SCOPE}.")
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the key a name, e.g. where it is used.", field="name")
    if len(name) > 100:
        raise ApplicationError("Keep the name under 100 characters.", field="name")
    cleaned = _clean_scopes(scopes, grantor_scopes=grantable, beyond_message=beyond_message)
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
        service_role=service_role,
        expires_at=expires_at,
    )
    emit(
        "api_key.created",
        request=request,
        actor=actor if isinstance(actor, Principal) else as_principal(actor, organization),
        user=created_by,
        organization=organization,
        api_key_id=str(api_key.id),
        prefix=prefix,
        scopes=cleaned,
        service_role=service_role or None,
    )
    return api_key, raw_key


@transaction.atomic
def api_key_revoke(*, organization: Organization, api_key: ApiKey, actor, request=None, reason: str = "") -> ApiKey:
    """Revoke at once; revoking a revoked key changes nothing."""
    principal = as_principal(actor, organization)
    if principal.kind != Kind.SYSTEM and MANAGE_SCOPE not in principal.scopes:
        raise PermissionDenied(f"Revoking API keys needs the scope {MANAGE_SCOPE}.")
    if api_key.organization_id != organization.id:
        raise ApplicationError("Not found.", code="not_found", status=404)
    return _revoke(organization=organization, api_key=api_key, principal=principal, request=request, reason=reason)


def _revoke(
    *, organization: Organization, api_key: ApiKey, principal: Principal, request=None, reason: str = ""
) -> ApiKey:
    if api_key.revoked_at is not None:
        return api_key
    api_key.revoked_at = timezone.now()
    api_key.revoked_by = principal.user
    api_key.save(update_fields=["revoked_at", "revoked_by"])
    emit(
        "api_key.revoked",
        request=request,
        actor=principal,
        user=principal.user,
        organization=organization,
        api_key_id=str(api_key.id),
        prefix=api_key.prefix,
        reason=reason or None,
    )
    return api_key


class KeyDisposition:
    """What happens to a member's API keys when they are removed or demoted (the remover chooses)."""

    REVOKE = "revoke"
    TRANSFER = "transfer"
    CHOICES = [
        (REVOKE, "Revoke their API keys"),
        (TRANSFER, "Keep their API keys working, in my name"),
    ]


@transaction.atomic
def api_keys_of_member_dispose(*, organization: Organization, member: User, disposition: str, actor) -> list[dict]:
    """Revoke ``member``'s live keys in ``organization``, or hand them to the person acting; returns what was done.

    A key handed over then acts within its new owner's role. [!!] Only a person
    can take keys over (never an API key or an application), and never beyond
    their own rights: the key's scopes are cut to the new owner's.
    """
    if disposition not in (KeyDisposition.REVOKE, KeyDisposition.TRANSFER):
        raise ApplicationError("Choose whether their API keys are revoked or handed to you.", field="api_keys")
    principal = as_principal(actor, organization)
    keys = list(
        ApiKey.objects.for_org(organization)
        .select_for_update()
        .filter(created_by=member, revoked_at__isnull=True)
        .order_by("created_at")
    )
    done = []
    if disposition == KeyDisposition.TRANSFER and keys:
        if principal.kind != Kind.MEMBER or principal.user is None:
            raise PermissionDenied("Only a person can take over API keys; choose to revoke them instead.")
        for api_key in keys:
            kept = [s for s in api_key.scopes if s in principal.scopes]
            api_key.created_by = principal.user
            api_key.scopes = kept
            api_key.save(update_fields=["created_by", "scopes"])
            if not kept:
                _revoke(organization=organization, api_key=api_key, principal=principal, reason="no_scope_left")
            done.append({"id": str(api_key.id), "prefix": api_key.prefix, "name": api_key.name, "to": "revoked" if not kept else "transferred"})
    else:
        for api_key in keys:
            # [!!] Part of the removal or demotion the caller was allowed to make (members.remove or
            # members.change_role): no separate right to manage keys is needed to end the member's.
            _revoke(organization=organization, api_key=api_key, principal=principal, reason="member_removed_or_demoted")
            done.append({"id": str(api_key.id), "prefix": api_key.prefix, "name": api_key.name, "to": "revoked"})
    return done


def api_key_record_use(*, api_key: ApiKey, ip: str | None) -> None:
    """Last use (time and address), written at most once per LAST_USED_RESOLUTION per key."""
    now = timezone.now()
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    # The condition repeats in SQL: concurrent requests write once between them.
    ApiKey.objects.unscoped("the key's own row, already authenticated").filter(pk=api_key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now, last_used_ip=ip)
    api_key.last_used_at, api_key.last_used_ip = now, ip
