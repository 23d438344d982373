"""Sending a text: the pre-send gate, then Twilio, then the message stored and announced.

``message_send`` is the one way a text leaves (the inbox's composer, ``POST
/api/v1/messages``, the agent's send-SMS tool and its replies). Order, and why:

1. The actor's right (``product.use``), the body and the media are checked, then the pre-send
   gate (messaging/services/gate.py). [!!] A refusal writes nothing and Twilio is never asked.
2. Twilio is asked through the SDK from the account that holds the sending number, with the
   status hook of ``/hooks/twilio/sms-status/``. A refusal by Twilio for an unsubscribed recipient
   (21610) is recorded as an opt-out of the pair (the person texted STOP where Twilio saw it) and
   answered as the gate's ``opted_out``; any other Twilio error is answered with what it means and
   nothing is stored.
3. The message (body encrypted), its first status, the conversation's order and the sender (the
   actor as the audit log names it) are stored in one statement, with its segments in billing's
   usage ledger (``message_store_metered``), audited (``message.sent``, without the body or the recipient
   in clear) and announced live and as ``message.sent``. Twilio's status callbacks may arrive
   before this commit: they wait for the row (see inbound.message_status_update).

Every text we send is stored and metered once, by ``message_store_metered``: the ones sent here and the automatic
answers to keywords sent in the SMS webhook's TwiML (inbound._store_reply). Texts received are not.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from accounts.principals import Kind, as_principal
from billing.models import UsageKind
from billing.services.usage import usage_record_with
from compliance.actors import resolve_actor
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import ProviderError, provider_operation
from messaging.errors import UNSUBSCRIBED_RECIPIENT, twilio_error_meaning
from messaging.models import (
    ChangeVia, Conversation, Direction, Message, MessageStatus, MessageStatusEvent, SenderType,
)  # fmt: skip
from messaging.segments import count_segments
from messaging.services.contacts import contact_for_number
from messaging.services.events import announce_message, masked
from messaging.services.gate import SendRefused, pre_send_gate
from telephony.models import PhoneNumber
from telephony.services.twilio_accounts import twilio_for_account
from telephony.services.urls import public_url

logger = logging.getLogger("jagcall.messaging")

MAX_BODY = 1600  # Twilio's limit for one message (10 segments of 160)
MAX_MEDIA = 10


class MessageNotSent(ApplicationError):
    """Twilio did not take the text; nothing was stored."""

    def __init__(self, message: str, *, code: str = "provider_error", retryable: bool = False):
        super().__init__(message, code=code, status=503 if retryable else 502)
        self.retryable = retryable


def clean_body(body, media_urls) -> tuple[str, list[str]]:
    body = "" if body is None else str(body)
    if not isinstance(media_urls, (list, tuple)):
        raise ApplicationError("media_urls must be a list of https URLs.", field="media_urls")
    media = [str(url).strip() for url in media_urls if str(url).strip()]
    if not body.strip() and not media:
        raise ApplicationError("Write a message (or attach media) before sending.", code="empty_message", field="body")
    if len(body) > MAX_BODY:
        raise ApplicationError(
            f"The message is {len(body)} characters long; Twilio sends at most {MAX_BODY}.", field="body"
        )
    if len(media) > MAX_MEDIA:
        raise ApplicationError(f"Attach at most {MAX_MEDIA} media files.", field="media_urls")
    for url in media:
        if not url.startswith("https://") or len(url) > 2000:
            raise ApplicationError(f"Media must be a public https URL: {url[:80]!r} is not.", field="media_urls")
    return body, media


def message_store_metered(message: Message, *rows, organization) -> None:
    """Store ``message``, a text we sent (a new instance), with ``rows`` (its first status, a change of its
    conversation: see ``jagcall.kernel.rows.save``) and its segments in billing's usage ledger, in one
    statement of the caller's transaction: the message and its usage are stored together, once."""
    usage_record_with(
        message,
        *rows,
        organization=organization,
        kind=UsageKind.SMS_SEGMENTS,
        quantity=message.segments,
        source=f"message:{message.id}",
        occurred_at=message.created_at,
    )


def _sender_type(principal) -> str:
    if principal.kind == Kind.MEMBER:
        return SenderType.MEMBER
    if principal.kind in (Kind.API_KEY, Kind.OAUTH_APPLICATION):
        return SenderType.API_KEY
    if principal.kind == Kind.SYSTEM and principal.name.startswith("agent"):
        return SenderType.AGENT
    return SenderType.SYSTEM


def _record_carrier_opt_out(*, phone_number: PhoneNumber, recipient: str) -> None:
    from messaging.services.subscriptions import subscription_set, webhook_actor

    subscription_set(
        phone_number=phone_number,
        recipient=recipient,
        subscribed=False,
        via=ChangeVia.CARRIER_REFUSAL,
        actor=webhook_actor(phone_number.organization),
        keyword="",
    )


def message_send(
    *,
    organization,
    actor,
    sender: PhoneNumber,
    to: str,
    body: str = "",
    media_urls=(),
    marketing: bool = False,
    sender_label: str | None = None,
    automatic: bool = False,
    now=None,
) -> Message:
    """Send a text from ``sender`` to ``to`` (see the module's order). Raises SendRefused, ApplicationError
    or MessageNotSent. ``automatic``: an agent's reply, counted by the loop guard."""
    principal = as_principal(actor, organization)
    principal.require("product.use")
    body, media = clean_body(body, media_urls)
    to = pre_send_gate(organization=organization, to_number=to, sender=sender, marketing=marketing, now=now)

    params = {
        "to": to,
        "from_": sender.number,
        "status_callback": public_url("twilio-hooks:sms-status"),
    }
    if body:
        params["body"] = body
    if media:
        params["media_url"] = media
    try:
        access = twilio_for_account(organization, sender.account_sid)
        with provider_operation("twilio", "send the text"):
            sent = access.client.messages.create(**params)
    except ProviderError as error:
        if str(error.code or "") == str(UNSUBSCRIBED_RECIPIENT):
            _record_carrier_opt_out(phone_number=sender, recipient=to)
            raise SendRefused(
                "opted_out",
                f"{to} has unsubscribed from texts sent by {sender.number} (Twilio refused the send, error 21610). "
                f"Nothing can be sent from this number until they text START to {sender.number}.",
                "to",
            ) from error
        meaning = twilio_error_meaning(error.code) if error.code else ""
        reason = meaning or error.message
        logger.warning("text from %s not sent: %s", sender.number, reason)
        raise MessageNotSent(f"Twilio did not send the text: {reason}", retryable=error.retryable) from error

    segments = count_segments(body)
    status = MessageStatus.QUEUED
    reported = str(getattr(sent, "status", "") or "")
    if reported in (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.UNDELIVERED):
        status = reported
    label = sender_label if sender_label is not None else resolve_actor(principal, None).label
    with transaction.atomic():
        contact, _ = contact_for_number(organization=organization, number=to)
        conversation, _ = Conversation.objects.get_or_create(
            organization=organization, phone_number=sender, contact=contact
        )
        conversation = Conversation.objects.for_org(organization).select_for_update().get(pk=conversation.pk)
        moment = timezone.now()
        message = Message(
            organization=organization,
            conversation=conversation,
            direction=Direction.OUTBOUND,
            body=body,
            media_urls=media,
            twilio_sid=sent.sid or None,
            status=status,
            segments=int(getattr(sent, "num_segments", None) or segments.segments),
            encoding=segments.encoding,
            marketing=marketing,
            sender_type=_sender_type(principal),
            sender_label=label[:254],
            sent_by=principal.user if principal.kind == Kind.MEMBER else None,
            created_at=moment,
            updated_at=moment,
        )
        conversation.last_message_at = moment
        # The loop guard counts automatic replies since a person last wrote from our side.
        conversation.consecutive_auto_replies = conversation.consecutive_auto_replies + 1 if automatic else 0
        message_store_metered(
            message,
            MessageStatusEvent(organization=organization, message=message, status=status, occurred_at=moment),
            (conversation, ["last_message_at", "consecutive_auto_replies"]),
            organization=organization,
        )
        message.conversation = conversation
        audit_record(
            action="message.sent",
            organization=organization,
            actor=principal,
            resource=message,
            metadata={
                "from": sender.number,
                "to": masked(to),
                "segments": message.segments,
                "marketing": marketing,
                "twilio_sid": message.twilio_sid or "",
            },
        )
        announce_message(message, "message.sent")
    return message
