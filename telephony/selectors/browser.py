"""Reads for browser calling: the organization's softphone application and the numbers it may call from."""

from __future__ import annotations

from django.db.models import QuerySet

from telephony.models import BrowserCallingApp, PhoneNumber


def browser_calling_app_get(*, organization) -> BrowserCallingApp | None:
    return BrowserCallingApp.objects.for_org(organization).first()


def browser_caller_numbers(*, organization) -> QuerySet[PhoneNumber]:
    """The numbers a member may show as caller from the softphone: the organization's held voice lines."""
    return (
        PhoneNumber.objects.for_org(organization)
        .filter(released_at__isnull=True, voice_enabled=True)
        .order_by("number")
    )


def browser_caller_number_get(*, organization, number: str) -> PhoneNumber | None:
    """One held voice line of the organization by its E.164 number; None for anything else."""
    if not number:
        return None
    return browser_caller_numbers(organization=organization).filter(number=number).first()
