"""The API's scopes: one registry, one place.

A scope is ``<resource>:read`` or ``<resource>:write``. Each maps to the
action of the permission table (accounts/permissions.py) a person needs to
hold it, so a role's rights are still written down only once:

- a JWT (and later a session) carries every scope its member's role allows;
- an API key carries the scopes it was given, which must be among those of
  whoever created it.

The API then asks one question of any credential: "does it have scope X"
(OrganizationScopePermission).
"""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from accounts.permissions import PERMISSIONS, has_permission

# scope -> (permission-table action it needs, what it lets a client do)
SCOPES: dict[str, tuple[str, str]] = {
    "organization:read": ("organization.view", "Read the organization's details"),
    "organization:write": ("organization.update", "Change the organization's settings"),
    "members:read": ("members.view", "List the team and their roles"),
    "members:write": ("members.change_role", "Change the team's roles"),
    "api_keys:read": ("api_keys.manage", "List API keys (never their secrets)"),
    "api_keys:write": ("api_keys.manage", "Create and revoke API keys"),
    # Audit records are for the people who run the organization, not every member.
    "audit:read": ("audit.view", "Read the audit log"),
    "agents:read": ("product.use", "Read agents"),
    "agents:write": ("agents.manage", "Create, change and delete agents"),
    "numbers:read": ("product.use", "List phone numbers"),
    "numbers:write": ("numbers.manage", "Buy, assign, import and release phone numbers"),
    "calls:read": ("product.use", "Read calls, their recordings, transcripts and summaries"),
    "calls:write": ("product.use", "Place calls"),
    "contacts:read": ("product.use", "Read contacts"),
    "contacts:write": ("product.use", "Create, change and delete contacts"),
    "messages:read": ("product.use", "Read text conversations and messages"),
    "messages:write": ("product.use", "Send text messages"),
    # Anyone who places calls may read the do-not-call list and add to it; taking a number off
    # it also needs compliance.manage, which compliance.services.do_not_call_remove asks.
    "compliance:read": ("product.use", "Read the do-not-call list"),
    "compliance:write": ("product.use", "Add numbers to the do-not-call list (managers: also take them off)"),
    "knowledge:read": ("product.use", "Read knowledge bases, documents and search them"),
    "knowledge:write": ("product.use", "Create knowledge bases, upload and delete documents"),
}

for _scope, (_action, _label) in SCOPES.items():
    if _action not in PERMISSIONS:  # pragma: no cover - a typo here must stop the process
        raise KeyError(f"Scope {_scope} names unknown permission {_action!r}")

ALL_SCOPES: frozenset[str] = frozenset(SCOPES)


def scopes_for_role(role: str | None) -> frozenset[str]:
    """Every scope the role's permissions allow (empty for no role)."""
    return frozenset(scope for scope, (action, _label) in SCOPES.items() if has_permission(role, action))


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    return sorted(set(scopes) - ALL_SCOPES)


def scope_choices(allowed: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(scope, label) pairs in registry order, limited to ``allowed`` when given."""
    allowed = ALL_SCOPES if allowed is None else frozenset(allowed)
    return [(scope, label) for scope, (_action, label) in SCOPES.items() if scope in allowed]


class OrganizationScopePermission(BasePermission):
    """DRF permission asking one thing: does the credential hold the scope this method needs.

    Views declare ``required_scopes = {"GET": "api_keys:read", "POST": "api_keys:write"}``
    (HEAD and OPTIONS fall back to GET's). The credential's ``scopes`` come from
    its API key, or from its member's role (scopes_for_role above, which maps
    every scope to an action of the permission table); a credential without
    ``scopes`` gets its role's. A method the view has no handler for is let
    through, so it answers 405. [!!] A handled method with no scope declared is
    refused (fail closed).
    """

    def has_permission(self, request, view) -> bool:
        method = request.method.upper()
        if not hasattr(view, method.lower()):
            return True
        required_scopes = getattr(view, "required_scopes", None) or {}
        scope = required_scopes.get(method)
        if scope is None and method in ("HEAD", "OPTIONS"):
            scope = required_scopes.get("GET")
        if scope is None:
            return False
        held = getattr(request.auth, "scopes", None)
        if held is None:
            held = scopes_for_role(getattr(request, "membership_role", None))
        if scope not in held:
            api_key = getattr(request.auth, "api_key", None)
            if api_key is not None and scope in (api_key.scopes or []):
                # [!!] The key has the scope, but the role it acts within no longer allows it: say which.
                if api_key.service_role:
                    whose = f"this service key's role ({api_key.service_role})"
                elif request.auth.role:
                    whose = f"the current role ({request.auth.role}) of the person who created this key"
                else:
                    whose = "the person who created this key, who is no longer a member,"
                raise PermissionDenied(
                    f"This request needs the scope {scope}, which {whose} does not allow. "
                    "Ask an owner or admin to create a key with the rights it needs.",
                    code="missing_scope",
                )
            raise PermissionDenied(f"This request needs the scope {scope}.", code="missing_scope")
        return True
