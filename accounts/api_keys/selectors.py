"""API key reads."""

from __future__ import annotations

from accounts.api_keys.models import ApiKey
from django.db.models import OuterRef, Subquery

from accounts.models import Membership, Organization
from accounts.tenancy import get_for_org_or_404


def api_key_list(*, organization: Organization):
    return ApiKey.objects.for_org(organization).select_related("created_by")


def api_key_get(*, organization: Organization, id):
    return get_for_org_or_404(ApiKey.objects.select_related("created_by"), organization=organization, id=id)


def api_key_live_counts_by_creator(*, organization: Organization) -> dict:
    """user id -> how many live (not revoked) keys they created in ``organization``: the team page's removal choice."""
    from django.db.models import Count

    rows = (
        ApiKey.objects.for_org(organization)
        .filter(revoked_at__isnull=True, created_by__isnull=False)
        .values("created_by")
        .annotate(n=Count("id"))
    )
    return {row["created_by"]: row["n"] for row in rows}


def api_key_for_authentication(*, prefix: str):
    """The key with this prefix, whatever its organization (the credential names it), with
    ``creator_role``: its creator's current role in that organization (None when they are not a member).

    On every API request, in one query: the organization comes along, and the
    creator's role is a subquery. The prefix is unique, so no ORDER BY.
    """
    creator_role = Membership.objects.unscoped("the creator's role in the key's own organization").filter(
        organization=OuterRef("organization"), user=OuterRef("created_by")
    ).values("role")[:1]
    queryset = (
        ApiKey.objects.unscoped("a key found by its prefix names its own organization")
        .select_related("organization")
        .annotate(creator_role=Subquery(creator_role))
        .filter(prefix=prefix)
    )
    return next(iter(queryset[:1]), None)


def api_key_effective_role(api_key: ApiKey) -> str | None:
    """The role whose rights the key acts within now: a service key's own, else its creator's current one."""
    if api_key.service_role:
        return api_key.service_role
    if api_key.created_by_id is None:
        return None
    if hasattr(api_key, "creator_role"):
        return api_key.creator_role
    membership = Membership.objects.for_org(api_key.organization).filter(user_id=api_key.created_by_id).first()
    return membership.role if membership else None
