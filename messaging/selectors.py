"""Messaging's reads: contacts by number, conversations for the inbox, a subscription for the gate."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import Prefetch, Q, QuerySet

from compliance.models import DoNotCallEntry
from compliance.selectors import DoNotCallListing
from jagcall.kernel import rows
from messaging.models import Contact, Conversation, Message, MessageStatusEvent, NumberMessaging, Subscription


def _number_candidates(model, field: str, number: str, organization_id) -> list[str]:
    return model._meta.get_field(field).candidates(number, organization_id=organization_id)


def contact_by_number(*, organization, number: str) -> Contact | None:
    """The organization's contact for ``number`` (any way of writing it), found by blind index."""
    candidates = _number_candidates(Contact, "phone_index", number, organization.id)
    return Contact.objects.for_org(organization).filter(phone_index__in=candidates).first()


def subscription_for(phone_number, number: str) -> Subscription | None:
    """The subscription of ``number`` to texts from ``phone_number`` (None: never changed, subscribed)."""
    candidates = _number_candidates(Subscription, "recipient_index", number, phone_number.organization_id)
    return (
        Subscription.objects.for_org(phone_number.organization_id)
        .filter(phone_number=phone_number, recipient_index__in=candidates)
        .first()
    )


@dataclass(frozen=True)
class SubscriptionState:
    subscribed: bool
    changed_at: dt.datetime


def subscription_state(phone_number, number: str) -> SubscriptionState | None:
    """``subscription_for`` for the pre-send gate: one read by the pair's unique index in plain SQL, no model
    built, nothing decrypted (None: never changed, subscribed)."""
    candidates = _number_candidates(Subscription, "recipient_index", number, phone_number.organization_id)
    matches, candidate = rows.equals_any("recipient_index", candidates)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT subscribed, changed_at FROM {Subscription._meta.db_table} "  # noqa: S608 (the model's own table)
            f"WHERE organization_id = %s AND phone_number_id = %s AND {matches} LIMIT 1",
            [phone_number.organization_id, phone_number.pk, candidate],
        )
        row = cursor.fetchone()
    return SubscriptionState(subscribed=row[0], changed_at=row[1]) if row else None


@dataclass(frozen=True)
class RecipientStanding:
    """What the pre-send gate reads of a recipient: their do-not-call entry and their subscription to the
    sending number (each None when there is none)."""

    do_not_call: DoNotCallListing | None
    subscription: SubscriptionState | None


def recipient_standing(*, organization, phone_number, number: str) -> RecipientStanding:
    """``do_not_call_listing`` and ``subscription_state`` in one round trip to PostgreSQL.

    [!!] Each read costs PostgreSQL a few hundredths of a millisecond, and the round trip about half a
    millisecond of the check's one-millisecond budget (bench/sms_webhook.py): so both go in one statement,
    each in its own LATERAL sub-select with its own LIMIT, served by its own unique index as when read
    apart. The subscription is the sending number's organization's, as ``subscription_state`` reads it.
    """
    entry_matches, entry_candidate = rows.equals_any(
        "d.number_index", _number_candidates(DoNotCallEntry, "number_index", number, organization.id)
    )
    pair_matches, pair_candidate = rows.equals_any(
        "s.recipient_index", _number_candidates(Subscription, "recipient_index", number, phone_number.organization_id)
    )
    sql = (
        "SELECT d.source, d.created_at, s.subscribed, s.changed_at FROM (SELECT 1) AS one "
        f"LEFT JOIN LATERAL (SELECT d.source, d.created_at FROM {DoNotCallEntry._meta.db_table} AS d "  # noqa: S608 (the models' tables)
        f"WHERE d.organization_id = %s AND {entry_matches} LIMIT 1) AS d ON true "
        f"LEFT JOIN LATERAL (SELECT s.subscribed, s.changed_at FROM {Subscription._meta.db_table} AS s "
        f"WHERE s.organization_id = %s AND s.phone_number_id = %s AND {pair_matches} LIMIT 1) AS s ON true"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [organization.id, entry_candidate, phone_number.organization_id, phone_number.pk, pair_candidate]
        )
        row = cursor.fetchone()
    return RecipientStanding(
        do_not_call=DoNotCallListing(source=row[0], created_at=row[1]) if row[0] is not None else None,
        subscription=SubscriptionState(subscribed=row[2], changed_at=row[3]) if row[2] is not None else None,
    )


def contacts_for(organization, *, query: str = "") -> QuerySet:
    """The organization's contacts, by name; ``query`` matches a name or finds a number exactly."""
    contacts = Contact.objects.for_org(organization).order_by("name", "created_at")
    query = (query or "").strip()
    if not query:
        return contacts
    condition = Q(name__icontains=query)
    digits = "".join(ch for ch in query if ch.isdigit())
    if len(digits) >= 7:
        number = query if query.startswith("+") else f"+{digits}"
        condition |= Q(phone_index__in=_number_candidates(Contact, "phone_index", number, organization.id))
    return contacts.filter(condition)


def conversations_for(organization, *, query: str = "") -> QuerySet:
    """The inbox: newest first, with each conversation's number and contact."""
    conversations = (
        Conversation.objects.for_org(organization)
        .select_related("contact", "phone_number", "taken_over_by")
        .order_by("-last_message_at", "-id")
    )
    query = (query or "").strip()
    if query:
        contact_ids = contacts_for(organization, query=query).values("id")
        conversations = conversations.filter(contact_id__in=contact_ids)
    return conversations


def conversation_messages(conversation: Conversation) -> QuerySet:
    return (
        Message.objects.for_org(conversation.organization_id)
        .filter(conversation=conversation)
        .select_related("sent_by")
        .prefetch_related(
            Prefetch("status_events", queryset=MessageStatusEvent.objects.for_org(conversation.organization_id))
        )
        .order_by("created_at", "id")
    )


def number_messaging(phone_number) -> NumberMessaging | None:
    """The number's texting settings (agent replies, A2P registration), or None: one row by its unique number,
    in plain SQL (every inbound text asks)."""
    sql = (
        f"SELECT {rows.columns(NumberMessaging, 'm')} FROM {NumberMessaging._meta.db_table} AS m "  # noqa: S608
        "WHERE m.organization_id = %s AND m.phone_number_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [phone_number.organization_id, phone_number.pk])
        row = cursor.fetchone()
    return None if row is None else rows.instance(NumberMessaging, row, using=connection.alias)


def unread_total(organization) -> int:
    from django.db.models import Sum

    return Conversation.objects.for_org(organization).aggregate(total=Sum("unread_count"))["total"] or 0
