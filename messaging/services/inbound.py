"""Texts that reach our numbers, and what Twilio reports about the texts we sent.

``message_receive`` (Twilio's signed SMS webhook, messaging/webhooks.py):

1. The sender becomes (or is found as) a contact; the conversation is the pair (our number,
   theirs). The message is stored (body and media URLs encrypted), the conversation moves to
   the top with one more unread, and it is announced live and as ``message.received``. A
   delivery seen before (same MessageSid) changes nothing.
2. What it asks (messaging/keywords.py) is honoured at once:
   - an opt-out keyword, or Twilio's ``OptOutType=STOP``: the pair is unsubscribed (STOPALL:
     every number of the organization) and the sender is put on the organization's do-not-call
     list, so calls stop too (the FCC's revocation rule covers calls and texts alike);
   - a free-text revocation ("please stop texting me"): the pair is unsubscribed and flagged
     for a member to review (one click undoes a false positive);
   - START / YES / UNSTOP (or ``OptOutType=START``) from an unsubscribed pair: re-subscribed.
     From a subscribed pair, "YES" is an ordinary answer and nothing changes;
   - HELP / INFO: answered with the organization's help text.
   Exactly one confirmation is sent per change, and none when nothing changed (a second STOP).
   When Twilio says it handled the keyword (``OptOutType`` present: Advanced Opt-Out sends its
   own reply), we record the change and do not answer, so the person gets one confirmation.
3. Otherwise, when the number's agent answers texts and no member has taken the thread over, an
   agent reply is queued (messaging/services/agent_replies.py, behind its loop guard).

The answer is the TwiML for Twilio: an empty ``<Response/>`` or one ``<Message>``. The automatic
reply is stored in the thread too (sender: JagCall), and metered like any text we send
(sending.message_store_metered); the text received is not.

``message_status_update`` (the status hook): the status moves forward only (a late "sent" after
"delivered" is kept in the timeline but does not change the status), with Twilio's error code
and its meaning; a 21610 on a sent text is recorded as an opt-out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone
from twilio.twiml.messaging_response import MessagingResponse

from compliance.models import DoNotCallEntry, DoNotCallReason, DoNotCallSource
from compliance.services import audit_record, do_not_call_ensure
from jagcall.kernel import rows
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.phone import InvalidPhoneNumber, parse_e164
from messaging.errors import UNSUBSCRIBED_RECIPIENT
from messaging.keywords import Intent, intent_of
from messaging.models import (
    STATUS_RANK, ChangeVia, Contact, Conversation, Direction, Message, MessageStatus, MessageStatusEvent, MessagingProfile,
    SenderType, Subscription,
)  # fmt: skip
from messaging.segments import count_segments
from messaging.services.contacts import contact_for_number
from messaging.services.events import announce_message
from messaging.services.sending import message_store_metered
from messaging.services.subscriptions import subscription_set, unsubscribe_everywhere, webhook_actor
from telephony.models import PhoneNumber

logger = logging.getLogger("jagcall.messaging")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_INBOUND_MEDIA = 10


def help_text(organization) -> str:
    profile = MessagingProfile.objects.for_org(organization).first()
    if profile is not None and profile.help_text.strip():
        return profile.help_text.strip()
    return f"{organization.name}: reply STOP to unsubscribe, START to subscribe again. Msg & data rates may apply."


def opt_out_confirmation(organization, phone_number: PhoneNumber, *, everywhere: bool = False) -> str:
    which = "any of our numbers" if everywhere else "this number"
    return (
        f"{organization.name}: you are unsubscribed and will get no more texts from {which}. "
        "Reply START to subscribe again."
    )


def opt_in_confirmation(organization) -> str:
    return f"{organization.name}: you are subscribed again. Reply STOP to unsubscribe, HELP for help."


@dataclass
class Received:
    """What ``message_receive`` did: the message (None for a duplicate) and the TwiML answer."""

    message: Message | None
    twiml: str
    intent: Intent = Intent.NONE


def _twiml(reply: str | None) -> str:
    if not reply:
        return EMPTY_TWIML
    response = MessagingResponse()
    response.message(reply)
    return str(response)


def _clean_sender(from_number: str) -> str:
    try:
        return parse_e164(from_number)
    except InvalidPhoneNumber:
        raise ApplicationError(
            "From is not a phone number in international format (e.g. +14155550100).",
            code="invalid_number", field="From",
        ) from None  # fmt: skip


def _list_do_not_call(
    *, phone_number: PhoneNumber, sender: str, keyword: str, message_sid: str, actor, listed=rows.UNREAD
) -> None:
    """A keyword opt-out stops calls too: the sender goes on the do-not-call list (once). ``listed``: whether
    this transaction read them there already (``UNREAD``: not asked)."""
    organization = phone_number.organization
    entry = do_not_call_ensure(
        organization=organization, actor=actor, number=sender,
        reason=DoNotCallReason.CONSENT_REVOKED, source=DoNotCallSource.SMS, listed=listed,
    )  # fmt: skip
    if entry is None:  # listed already
        return
    audit_record(
        action="phone_number.opt_out_received",
        organization=organization,
        actor=actor,
        resource=phone_number,
        metadata={
            "reason": f"Texted {keyword} to {phone_number.number}",
            "keyword": keyword,
            "do_not_call_entry": str(entry.id),
            "message_sid": message_sid,
        },
    )


def _store_reply(conversation: Conversation, text: str, *, organization) -> None:
    """The automatic answer sent in the TwiML, kept in the thread and metered (Twilio bills it).

    Twilio sends it as its answer to the webhook, without a SID we could follow: it is shown as sent
    (handed to Twilio), and no later status reaches it."""
    segments = count_segments(text)
    now = timezone.now()
    message = Message(
        organization_id=conversation.organization_id,
        conversation=conversation,
        direction=Direction.OUTBOUND,
        body=text,
        status=MessageStatus.SENT,
        segments=segments.segments,
        encoding=segments.encoding,
        sender_type=SenderType.SYSTEM,
        sender_label="Automatic reply",
        created_at=now,
        updated_at=now,
    )
    status = MessageStatusEvent(
        organization_id=conversation.organization_id, message=message, status=message.status, occurred_at=now
    )
    message_store_metered(message, status, organization=organization)
    announce_message(message, "message.sent")


@dataclass
class _Standing:
    """Read with a keyword's conversation, in the same statement: the pair's subscription (locked; None when
    it never changed) and whether the sender is on the do-not-call list. ``UNREAD`` where it was not asked."""

    subscription: object = rows.UNREAD
    listed: object = rows.UNREAD


def _returning_conversation_locked(
    phone_number: PhoneNumber, sender: str, candidates: list[str], *, subscription: bool = False,
    listing: bool = False,
) -> tuple[Conversation, _Standing] | None:  # fmt: skip
    """The pair's conversation with its contact, locked (FOR UPDATE of the conversation), or None; with the
    pair's subscription (locked too) and the sender's do-not-call listing when asked.

    Plain SQL in one statement (``jagcall.kernel.rows``): every inbound text asks, and the ORM's query
    building cost more than the read. A keyword's own reads (``subscription``, ``listing``) ride along in
    LATERAL sub-selects, each by its unique index as when read alone: two round trips fewer for a STOP.

    [!!] The order of the lookups is fixed by the statement: the contact by its blind index first (a
    sub-select that only the unique (phone_index, organization) index can serve), then the conversation
    of the pair by its unique index. Left to choose, the planner, on statistics taken before a burst of
    new contacts, joined every conversation of the number with every contact of the organization: 40 ms
    a text after a few thousand texts. No condition names the organization in SQL: each one let the
    planner, on such statistics, pick an index by organization and read the whole organization. The
    contact's index value is keyed by the organization's own key, the number is the organization's,
    and both rows' organization is checked here. The keyword's sub-selects do name it: each reads one
    row by a unique index that starts with it.
    """
    organization_id = phone_number.organization_id
    matches, lookup = rows.equals_any("phone_index", candidates)
    select, joins, params = [], [], []
    if subscription:
        pair_matches, pair = rows.equals_any(
            "s.recipient_index",
            Subscription._meta.get_field("recipient_index").candidates(sender, organization_id=organization_id),
        )
        select.append(rows.columns(Subscription, "sx"))
        joins.append(
            f"LEFT JOIN LATERAL (SELECT {rows.columns(Subscription, 's')} "  # noqa: S608 (the model's table)
            f"FROM {Subscription._meta.db_table} AS s WHERE s.organization_id = %s AND s.phone_number_id = %s "
            f"AND {pair_matches} LIMIT 1 FOR UPDATE) AS sx ON true"
        )
        params += [organization_id, phone_number.pk, pair]
    if listing:
        entry_matches, entry = rows.equals_any(
            "d.number_index",
            DoNotCallEntry._meta.get_field("number_index").candidates(sender, organization_id=organization_id),
        )
        select.append("dx.listed")
        joins.append(
            f"LEFT JOIN LATERAL (SELECT true AS listed FROM {DoNotCallEntry._meta.db_table} AS d "  # noqa: S608
            f"WHERE d.organization_id = %s AND {entry_matches} LIMIT 1) AS dx ON true"
        )
        params += [organization_id, entry]
    sql = (
        f"SELECT {rows.columns(Conversation, 'c')}, {rows.columns(Contact, 'p')} "  # noqa: S608 (the models' tables)
        f"FROM {Conversation._meta.db_table} AS c JOIN {Contact._meta.db_table} AS p ON p.id = c.contact_id "
        f"WHERE c.contact_id = (SELECT id FROM {Contact._meta.db_table} WHERE {matches} LIMIT 1) "
        "AND c.phone_number_id = %s LIMIT 1 FOR UPDATE OF c"
    )
    if joins:
        # The conversation is locked first, then the subscription, in the order every text takes them (STOPALL
        # locks the conversation, then each number's subscription): the CTE is read before each sub-select.
        sql = f"WITH cx AS ({sql}) SELECT cx.*, {', '.join(select)} FROM cx {' '.join(joins)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [lookup, phone_number.pk, *params])
        row = cursor.fetchone()
    if row is None:
        return None
    split = rows.width(Conversation)
    conversation = rows.instance(Conversation, row[:split], using=connection.alias)
    rest = row[split:]
    conversation.contact = rows.instance(Contact, rest[: rows.width(Contact)], using=connection.alias)
    rest = rest[rows.width(Contact) :]
    if organization_id != conversation.organization_id or organization_id != conversation.contact.organization_id:
        return None
    standing = _Standing()
    if subscription:
        values, rest = rest[: rows.width(Subscription)], rest[rows.width(Subscription) :]
        standing.subscription = (
            rows.instance(Subscription, values, using=connection.alias) if values[0] is not None else None
        )
    if listing:
        standing.listed = bool(rest[0])
    return conversation, standing


def _conversation_locked(
    phone_number: PhoneNumber, sender: str, *, subscription: bool = False, listing: bool = False
) -> tuple[Conversation, _Standing]:
    """The conversation of (our number, ``sender``) with its contact, locked for this transaction, and what
    a keyword asked of it (``_Standing``).

    One read when both exist (the usual case: a returning sender); else the contact and the conversation
    are made first, and the keyword's reads are left to its services."""
    organization_id = phone_number.organization_id
    candidates = Contact._meta.get_field("phone_index").candidates(sender, organization_id=organization_id)
    found = _returning_conversation_locked(
        phone_number, sender, candidates, subscription=subscription, listing=listing
    )
    if found is not None:
        conversation, standing = found
    else:
        contact, _ = contact_for_number(organization=phone_number.organization, number=sender)
        created, _ = Conversation.objects.get_or_create(
            organization_id=organization_id, phone_number=phone_number, contact=contact
        )
        conversation = (
            Conversation.objects.for_org(organization_id)
            .select_for_update(of=("self",))
            .select_related("contact")
            .get(pk=created.pk)
        )
        standing = _Standing()
    conversation.phone_number = phone_number  # what the live event shows
    return conversation, standing


@transaction.atomic(savepoint=False)  # an error ends the caller's transaction too: no savepoint to pay for
def message_receive(
    *,
    phone_number: PhoneNumber,
    from_number: str,
    body: str,
    media_urls: list[str] | None = None,
    message_sid: str = "",
    opt_out_type: str = "",
) -> Received:
    """A text reached ``phone_number`` (see the module's steps). Raises ApplicationError (400) for a sender
    that is not a phone number."""
    organization = phone_number.organization
    sender = _clean_sender(from_number)
    intent, keyword = intent_of(body or "", opt_out_type=opt_out_type)
    # A delivery seen before is answered by the webhook base (its event id); one racing it meets the unique
    # MessageSid below. So no read here. A keyword's own reads come with the conversation's.
    conversation, standing = _conversation_locked(
        phone_number, sender,
        # An opt-out's row only: a row written meanwhile by another text of the pair (the statement's snapshot
        # is older than the conversation's lock) is an opt-out too, and its unique index tells (subscription_set).
        # START must see it, so it reads its row after the conversation's lock; STOPALL locks every number's.
        subscription=intent == Intent.OPT_OUT_FREE_TEXT or (intent == Intent.OPT_OUT and keyword != "STOPALL"),
        listing=intent == Intent.OPT_OUT,
    )  # fmt: skip
    contact = conversation.contact
    now = timezone.now()
    segments = count_segments(body or "")
    message = Message(
        organization=organization,
        conversation=conversation,
        direction=Direction.INBOUND,
        body=body or "",
        media_urls=list(media_urls or [])[:MAX_INBOUND_MEDIA],
        twilio_sid=message_sid or None,
        status=MessageStatus.RECEIVED,
        segments=segments.segments,
        encoding=segments.encoding,
        sender_type=SenderType.CONTACT,
        sender_label=contact.name,
        created_at=now,
        updated_at=now,
    )
    # An inbound text has one status, "received", on the row itself: no timeline to keep. The message and
    # the conversation's move to the top are one statement, written only if the MessageSid is new: a
    # concurrent delivery stored it a moment ago, or Twilio retried after its dedupe record was purged.
    conversation.last_message_at = now
    conversation.unread_count += 1
    if not rows.save_new(message, (conversation, ["last_message_at", "unread_count"])):
        return Received(None, EMPTY_TWIML)
    message.conversation = conversation
    announce_message(message, "message.received")

    twilio_replied = bool((opt_out_type or "").strip())
    actor = webhook_actor(organization)
    reply = None
    if intent in (Intent.OPT_OUT, Intent.OPT_OUT_FREE_TEXT):
        free_text = intent == Intent.OPT_OUT_FREE_TEXT
        via = ChangeVia.FREE_TEXT if free_text else (ChangeVia.TWILIO_OPT_OUT if twilio_replied else ChangeVia.KEYWORD)
        if keyword == "STOPALL":
            changed = unsubscribe_everywhere(
                organization=organization, recipient=sender, via=via, actor=actor, keyword=keyword, message=message
            )
        else:
            changed = subscription_set(
                phone_number=phone_number, recipient=sender, subscribed=False, via=via, actor=actor,
                keyword=keyword, message=message, flagged=free_text, locked=standing.subscription,
            ) is not None  # fmt: skip
        if not free_text:
            _list_do_not_call(
                phone_number=phone_number, sender=sender, keyword=keyword, message_sid=message_sid, actor=actor,
                listed=standing.listed,
            )  # fmt: skip
        if changed and not twilio_replied:
            reply = opt_out_confirmation(organization, phone_number, everywhere=keyword == "STOPALL")
    elif intent == Intent.OPT_IN:
        change = subscription_set(
            phone_number=phone_number, recipient=sender, subscribed=True,
            via=ChangeVia.TWILIO_OPT_OUT if twilio_replied else ChangeVia.KEYWORD,
            actor=actor, keyword=keyword, message=message,
        )  # fmt: skip
        if change is None:
            intent = Intent.NONE  # "YES" from a subscribed person: an ordinary answer
        elif not twilio_replied:
            reply = opt_in_confirmation(organization)
    elif intent == Intent.HELP and not twilio_replied:
        reply = help_text(organization)

    if reply:
        _store_reply(conversation, reply, organization=organization)
    elif intent == Intent.NONE:
        from messaging.services.agent_replies import agent_reply_queue

        agent_reply_queue(message=message, conversation=conversation)
    return Received(message, _twiml(reply), intent)


def _wait_for_message(message_sid: str) -> Message | None:
    return (
        Message.objects.unscoped("a status callback names only the message's SID; the hook checked its account")
        .select_related("conversation__phone_number", "conversation__contact")
        .filter(twilio_sid=message_sid)
        .first()
    )


@transaction.atomic
def message_status_update(*, message_sid: str, status: str, error_code: str | int | None = None) -> Message | None:
    """Twilio reported ``status`` for one of our texts: timeline kept, status moved forward only.

    Returns None when the text is not ours (yet): the hook answers 404 so Twilio retries later."""
    message = _wait_for_message(message_sid)
    if message is None:
        return None
    status = str(status or "").lower()
    if status == "accepted":
        status = MessageStatus.QUEUED
    if status not in STATUS_RANK or status == MessageStatus.RECEIVED:
        raise ApplicationError(f"Unknown message status {status[:20]!r}.", code="invalid_status", field="MessageStatus")
    code = None
    if error_code not in (None, ""):
        try:
            code = int(error_code)
        except (TypeError, ValueError):
            code = None
    message = Message.objects.for_org(message.organization_id).select_for_update().get(pk=message.pk)
    MessageStatusEvent.objects.create(
        organization_id=message.organization_id, message=message, status=status, error_code=code
    )
    if STATUS_RANK[status] > STATUS_RANK.get(message.status, 0):
        message.status = status
        message.error_code = code
        message.updated_at = timezone.now()
        message.save(update_fields=["status", "error_code", "updated_at"])
        message.conversation = (
            Conversation.objects.for_org(message.organization_id)
            .select_related("phone_number", "contact")
            .get(pk=message.conversation_id)
        )
        announce_message(message, "message.status_changed")
    if code == UNSUBSCRIBED_RECIPIENT:
        conversation = message.conversation
        subscription_set(
            phone_number=conversation.phone_number, recipient=conversation.contact.phone, subscribed=False,
            via=ChangeVia.CARRIER_REFUSAL, actor=webhook_actor(conversation.phone_number.organization),
            message=message,
        )  # fmt: skip
    return message
