"""Reads of the organization's phone numbers."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.tenancy import get_for_org_or_404
from telephony.models import PhoneNumber


def phone_number_list(*, organization, include_released: bool = False) -> QuerySet[PhoneNumber]:
    """The organization's numbers (held ones only unless ``include_released``), with their agents."""
    queryset = PhoneNumber.objects.for_org(organization).select_related("agent")
    if not include_released:
        queryset = queryset.filter(released_at__isnull=True)
    return queryset.order_by("number", "created_at")


def phone_number_get(*, organization, id) -> PhoneNumber:
    """One held number of the organization; 404 for a released one, another organization's or an unknown id."""
    return get_for_org_or_404(
        PhoneNumber.objects.select_related("agent").filter(released_at__isnull=True), organization=organization, id=id
    )


def number_agent_choices(*, organization) -> list[tuple[str, str]]:
    """(id, name) of the organization's agents, for a number's "answered by" choice."""
    from telephony.models import Agent

    return [(str(pk), name) for pk, name in Agent.objects.for_org(organization).order_by("name").values_list("id", "name")]
