"""The one permission table.

Portal views, API views and the admin all ask ``has_permission(role,
action)``. A role's rights are written here and nowhere else.
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


ALL = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})
MANAGERS = frozenset({Role.OWNER, Role.ADMIN})
OWNERS = frozenset({Role.OWNER})

# action -> roles allowed. Keep the descriptions: the team page shows them.
PERMISSIONS: dict[str, tuple[frozenset, str]] = {
    "organization.view": (ALL, "See the organization and its data"),
    "product.use": (ALL, "Use agents, calls, messages and the knowledge base"),
    "members.view": (ALL, "See the team"),
    "organization.update": (MANAGERS, "Change organization settings"),
    "members.invite": (MANAGERS, "Invite people"),
    "members.change_role": (MANAGERS, "Change roles (admins: not owners')"),
    "members.remove": (MANAGERS, "Remove people (admins: not owners)"),
    "agents.manage": (MANAGERS, "Create and edit agents"),
    "numbers.manage": (MANAGERS, "Buy and assign phone numbers"),
    "api_keys.manage": (MANAGERS, "Create and revoke API keys"),
    "oauth_apps.manage": (MANAGERS, "Register and edit OAuth applications; disconnect connected ones"),
    "webhooks.manage": (MANAGERS, "Manage webhooks"),
    "audit.view": (MANAGERS, "See and export the audit log"),
    "compliance.manage": (MANAGERS, "Take numbers off the do-not-call list"),
    "billing.manage": (OWNERS, "Manage plan and billing"),
    "sso.manage": (OWNERS, "Configure single sign-on"),
    "security.manage": (OWNERS, "Require two-factor sign-in for everyone"),
    "organization.delete": (OWNERS, "Delete the organization"),
    "organization.transfer": (OWNERS, "Make someone an owner"),
}


def has_permission(role: str | None, action: str) -> bool:
    if action not in PERMISSIONS:
        raise KeyError(f"Unknown permission {action!r}: add it to accounts.permissions.PERMISSIONS")
    return role is not None and role in PERMISSIONS[action][0]


def can_manage_member(*, actor_role: str, target_role: str, new_role: str | None = None) -> bool:
    """May ``actor_role`` change (to ``new_role``) or remove a member holding ``target_role``?

    Admins manage the team except owners: they cannot touch an owner, nor
    make anyone an owner. Owners may do anything, including transferring
    ownership.
    """
    if actor_role == Role.OWNER:
        return True
    if actor_role == Role.ADMIN:
        return target_role != Role.OWNER and new_role != Role.OWNER
    return False


def permission_table() -> list[dict]:
    """Rows for the team page: what each role may do."""
    return [
        {"action": action, "label": label, **{role.value: role in roles for role in Role}}
        for action, (roles, label) in PERMISSIONS.items()
    ]
