"""Contacts: one per phone number in an organization, created by hand, by import or by the first text."""

from __future__ import annotations

from zoneinfo import available_timezones

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.principals import as_principal
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.phone import InvalidPhoneNumber, parse_e164, time_zones_of
from telephony.services.calls import masked_number as masked
from messaging.models import Contact, Conversation
from messaging.selectors import contact_by_number

MAX_CUSTOM_FIELDS = 30
MAX_CUSTOM_NAME = 64
MAX_CUSTOM_VALUE = 500
MAX_NOTES = 5000
_ZONES = None


def _zones() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones()
    return _ZONES


def clean_phone(value, field: str = "phone") -> str:
    try:
        return parse_e164(str(value or "").strip())
    except InvalidPhoneNumber as error:
        message = str(error)
        if "+14155550100" not in message:
            message = f"{message} Use international format, e.g. +14155550100."
        raise ApplicationError(message, code="invalid_number", field=field) from None


def clean_time_zone(value) -> str:
    value = str(value or "").strip()
    if value and value not in _zones():
        raise ApplicationError(
            f"{value[:64]!r} is not a time zone: use an IANA name such as America/New_York or Europe/London.",
            code="invalid_time_zone",
            field="time_zone",
        )
    return value


def clean_custom_fields(value) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ApplicationError("Custom fields must be an object of names and text values.", field="custom_fields")
    if len(value) > MAX_CUSTOM_FIELDS:
        raise ApplicationError(f"Give at most {MAX_CUSTOM_FIELDS} custom fields.", field="custom_fields")
    cleaned = {}
    for name, item in value.items():
        name = str(name).strip()
        if not name or len(name) > MAX_CUSTOM_NAME:
            raise ApplicationError(
                f"Custom field names must be 1 to {MAX_CUSTOM_NAME} characters long.", field="custom_fields"
            )
        if item is None:
            item = ""
        if not isinstance(item, (str, int, float, bool)):
            raise ApplicationError(f"The value of custom field {name!r} must be text.", field="custom_fields")
        item = str(item)
        if len(item) > MAX_CUSTOM_VALUE:
            raise ApplicationError(
                f"The value of custom field {name!r} is longer than {MAX_CUSTOM_VALUE} characters.",
                field="custom_fields",
            )
        cleaned[name] = item
    return cleaned


def clean_contact(data: dict, *, partial: bool = False) -> dict:
    """The contact fields of ``data``, checked; ApplicationError (400) names the first wrong field."""
    cleaned = {}
    if "phone" in data or not partial:
        cleaned["phone"] = clean_phone(data.get("phone"))
    if "name" in data:
        name = str(data.get("name") or "").strip()
        if len(name) > 120:
            raise ApplicationError("The name is longer than 120 characters.", field="name")
        cleaned["name"] = name
    if "time_zone" in data:
        cleaned["time_zone"] = clean_time_zone(data.get("time_zone"))
    if "custom_fields" in data:
        cleaned["custom_fields"] = clean_custom_fields(data.get("custom_fields"))
    if "notes" in data:
        notes = str(data.get("notes") or "")
        if len(notes) > MAX_NOTES:
            raise ApplicationError(f"Notes are limited to {MAX_NOTES} characters.", field="notes")
        cleaned["notes"] = notes
    return cleaned


def contact_time_zone(contact: Contact) -> str:
    """The contact's time zone: as set, else the number's when it has exactly one, else ""."""
    if contact.time_zone:
        return contact.time_zone
    zones = time_zones_of(contact.phone)
    return zones[0] if len(zones) == 1 else ""


def contact_for_number(*, organization, number: str) -> tuple[Contact, bool]:
    """The organization's contact for ``number`` (E.164), created with no name when there is none."""
    existing = contact_by_number(organization=organization, number=number)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return Contact.objects.create(organization=organization, phone=number), True
    except IntegrityError:  # created a moment ago by a concurrent request
        return contact_by_number(organization=organization, number=number), False


@transaction.atomic
def contact_create(*, organization, actor, data: dict) -> Contact:
    principal = as_principal(actor, organization)
    principal.require("product.use")
    cleaned = clean_contact(data)
    if contact_by_number(organization=organization, number=cleaned["phone"]) is not None:
        raise ApplicationError(
            f"{cleaned['phone']} is already one of your contacts.", code="duplicate_contact", field="phone", status=409
        )
    contact = Contact.objects.create(organization=organization, **cleaned)
    audit_record(
        action="contact.created", organization=organization, actor=principal, resource=contact,
        metadata={"phone": masked(contact.phone)},
    )  # fmt: skip
    return contact


@transaction.atomic
def contact_update(*, organization, actor, contact: Contact, data: dict) -> Contact:
    principal = as_principal(actor, organization)
    principal.require("product.use")
    cleaned = clean_contact(data, partial=True)
    if "phone" in cleaned and cleaned["phone"] != contact.phone:
        other = contact_by_number(organization=organization, number=cleaned["phone"])
        if other is not None and other.pk != contact.pk:
            raise ApplicationError(
                f"{cleaned['phone']} is already another contact's number.", code="duplicate_contact", field="phone",
                status=409,
            )  # fmt: skip
    changed = sorted(name for name, value in cleaned.items() if getattr(contact, name) != value)
    for name, value in cleaned.items():
        setattr(contact, name, value)
    contact.updated_at = timezone.now()
    contact.save()
    if changed:
        audit_record(
            action="contact.updated", organization=organization, actor=principal, resource=contact,
            metadata={"fields": changed},
        )  # fmt: skip
    return contact


@transaction.atomic
def contact_delete(*, organization, actor, contact: Contact) -> None:
    """Delete a contact and its conversations (their messages with them)."""
    principal = as_principal(actor, organization)
    principal.require("product.use")
    audit_record(
        action="contact.deleted", organization=organization, actor=principal, resource=contact,
        metadata={
            "phone": masked(contact.phone),
            "conversations": Conversation.objects.for_org(organization).filter(contact=contact).count(),
        },
    )  # fmt: skip
    contact.delete()
