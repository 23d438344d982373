"""A change in messaging, announced twice on commit: live to the organization's members, and as an event."""

from __future__ import annotations

from django.db import transaction

from accounts.events import publish_org_event
from messaging.models import Conversation, Message
from messaging.signals import message_event
from telephony.services.calls import masked_number


def message_payload(message: Message, *, body: bool = True) -> dict:
    payload = {
        "id": str(message.id),
        "conversation": str(message.conversation_id),
        "direction": message.direction,
        "status": message.status,
        "error_code": message.error_code,
        "error": message.error_meaning,
        "segments": message.segments,
        "encoding": message.encoding,
        "sender_type": message.sender_type,
        "sender": message.sender_label,
        "created_at": message.created_at.isoformat(),
        "twilio_sid": message.twilio_sid or "",
    }
    if body:
        payload["body"] = message.body
        payload["media_urls"] = list(message.media_urls or [])
    return payload


def conversation_payload(conversation: Conversation) -> dict:
    contact = conversation.contact
    return {
        "id": str(conversation.id),
        "contact": {"id": str(contact.id), "name": contact.name, "phone": contact.phone},
        "phone_number": conversation.phone_number.number,
        "unread_count": conversation.unread_count,
        "last_message_at": conversation.last_message_at.isoformat(),
        "agent_paused": conversation.agent_paused,
    }


def announce(organization_id, event: str, payload: dict, *, live: dict | None = None) -> None:
    """``event`` to the organization's websocket (``live``, else ``payload``) and to ``message_event``, on commit."""
    publish_org_event(organization_id, event, live if live is not None else payload)
    transaction.on_commit(
        lambda: message_event.send(sender=Message, organization_id=organization_id, event=event, payload=payload)
    )


def announce_message(message: Message, event: str) -> None:
    conversation = message.conversation
    live = {"message": message_payload(message), "conversation": conversation_payload(conversation)}
    payload = message_payload(message, body=event in ("message.received", "message.sent"))
    payload["from"] = conversation.phone_number.number if message.direction == "outbound" else conversation.contact.phone
    payload["to"] = conversation.contact.phone if message.direction == "outbound" else conversation.phone_number.number
    announce(message.organization_id, event, payload, live=live)


def masked(number: str) -> str:
    return masked_number(number)
