"""API key reads."""

from __future__ import annotations

from accounts.api_keys.models import ApiKey
from accounts.models import Organization
from accounts.tenancy import get_for_org_or_404


def api_key_list(*, organization: Organization):
    return ApiKey.objects.for_org(organization).select_related("created_by")


def api_key_get(*, organization: Organization, id):
    return get_for_org_or_404(ApiKey.objects.select_related("created_by"), organization=organization, id=id)


def api_key_for_authentication(*, prefix: str):
    """The key with this prefix, whatever its organization: the credential names it."""
    # On every API request: the organization comes along (one query), the creator only when a write needs it.
    # The prefix is unique, so no ORDER BY (``first()`` would add one).
    return next(iter(ApiKey.objects.unscoped().select_related("organization").filter(prefix=prefix)[:1]), None)
