"""A conversation as the team handles it: read, taken over from the agent, handed back.

- ``conversation_mark_read``: the thread was opened; its unread count goes to 0. Reading is not a
  change of the organization's state, so it is not audited; it is announced live
  (``conversation.read``) so every member's inbox and unread badge follow.
- ``conversation_take_over``: a member answers this thread themselves; the number's agent stops
  replying to it (messaging/services/agent_replies.py reads ``taken_over_at``) until
  ``conversation_release`` hands it back. Both are audited and announced
  (``conversation.taken_over`` / ``conversation.released``).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.events import publish_org_event
from accounts.principals import Kind, as_principal
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from messaging.models import Conversation
from messaging.selectors import number_messaging, unread_total
from messaging.services.events import announce, conversation_payload, masked

PERMISSION = "product.use"


def _locked(organization, conversation: Conversation) -> Conversation:
    return (
        Conversation.objects.for_org(organization)
        .select_related("contact", "phone_number", "phone_number__agent", "taken_over_by")
        .select_for_update(of=("self",))
        .get(pk=conversation.pk)
    )


def agent_answers(conversation: Conversation) -> bool:
    """Does the number's agent answer texts (so there is something to take over)?"""
    phone_number = conversation.phone_number
    if phone_number.agent_id is None:
        return False
    settings_row = number_messaging(phone_number)
    return bool(settings_row and settings_row.agent_replies)


@transaction.atomic
def conversation_mark_read(*, organization, actor, conversation: Conversation) -> bool:
    """Set the unread count to 0; True when it was not already (then announced live). Idempotent."""
    principal = as_principal(actor, organization)
    principal.require(PERMISSION)
    # Locked, so a text arriving meanwhile is counted after this (inbound.message_receive locks the row too).
    unread = (
        Conversation.objects.for_org(organization)
        .select_for_update()
        .filter(pk=conversation.pk)
        .values_list("unread_count", flat=True)
        .first()
    )
    conversation.unread_count = 0
    if not unread:
        return False
    Conversation.objects.for_org(organization).filter(pk=conversation.pk).update(unread_count=0)
    # ``read``: how many it had; ``unread_total``: the organization's unread texts now (the navigation's badge).
    payload = {"conversation": conversation_payload(conversation), "read": unread}
    payload["unread_total"] = unread_total(organization)
    publish_org_event(organization.id, "conversation.read", payload)
    return True


def _announce(organization, event: str, conversation: Conversation, label: str) -> None:
    at = (conversation.taken_over_at or timezone.now()).isoformat()
    announce(
        organization.id,
        event,
        {
            "conversation": str(conversation.id),
            "phone_number": conversation.phone_number.number,
            "contact_phone": conversation.contact.phone,
            "by": label,
            "at": at,
        },
        live={"conversation": {**conversation_payload(conversation), "taken_over_by": label}},
    )


@transaction.atomic
def conversation_take_over(*, organization, actor, conversation: Conversation) -> Conversation:
    """A member answers the thread from now on: the agent pauses for it (audited, announced).

    Raises ApplicationError 409 when no agent answers texts on the number (nothing to take over).
    Taking over a thread already taken over changes nothing.
    """
    principal = as_principal(actor, organization)
    principal.require(PERMISSION)
    if principal.kind != Kind.MEMBER or principal.user is None:
        raise ApplicationError("Only a member of the team can take a conversation over.", code="not_a_member",
                               status=403)  # fmt: skip
    conversation = _locked(organization, conversation)
    if conversation.taken_over_at is not None:
        return conversation
    if not agent_answers(conversation):
        raise ApplicationError(
            f"No agent answers texts on {conversation.phone_number.number}, so there is nothing to take over: "
            "replies here are already yours.",
            code="no_agent_replies",
            status=409,
        )
    conversation.taken_over_by = principal.user
    conversation.taken_over_at = timezone.now()
    conversation.save(update_fields=["taken_over_by", "taken_over_at"])
    audit_record(
        action="conversation.taken_over",
        organization=organization,
        actor=principal,
        resource=conversation,
        metadata={"number": conversation.phone_number.number, "contact": masked(conversation.contact.phone)},
    )
    _announce(organization, "conversation.taken_over", conversation, principal.label)
    return conversation


@transaction.atomic
def conversation_release(*, organization, actor, conversation: Conversation) -> Conversation:
    """Hand the thread back to the agent (audited, announced). A thread nobody took over changes nothing."""
    principal = as_principal(actor, organization)
    principal.require(PERMISSION)
    conversation = _locked(organization, conversation)
    if conversation.taken_over_at is None:
        return conversation
    held_by = conversation.taken_over_by.email if conversation.taken_over_by else ""
    held_since = conversation.taken_over_at
    conversation.taken_over_by = None
    conversation.taken_over_at = None
    conversation.save(update_fields=["taken_over_by", "taken_over_at"])
    audit_record(
        action="conversation.released",
        organization=organization,
        actor=principal,
        resource=conversation,
        metadata={
            "number": conversation.phone_number.number,
            "contact": masked(conversation.contact.phone),
            "taken_over_by": held_by,
            "taken_over_at": held_since.isoformat(),
        },
    )
    _announce(organization, "conversation.released", conversation, "")
    return conversation
