"""An inbound text answered by the number's agent: the same LLM and knowledge as its calls.

When a text arrives (inbound.message_receive) and is not a keyword, ``agent_reply_queue`` queues
a reply (Celery, on commit) if:

- the number answers texts (``NumberMessaging.agent_replies``) and has an agent;
- no member has taken the thread over (``Conversation.taken_over_at``);
- the loop guard allows it: fewer than MESSAGING_AGENT_MAX_CONSECUTIVE_REPLIES automatic replies
  in a row in this conversation (a member's message resets the count), and fewer than
  MESSAGING_AGENT_REPLIES_PER_WINDOW in the last MESSAGING_AGENT_REPLY_WINDOW_SECONDS. Another bot
  answering every reply stops within a few messages; a guard that stops replying says so on the
  timeline (``agent_reply.skipped`` in the log) and leaves the thread to the team.

``agent_reply_send`` (the task) reads the conversation's last messages, retrieves the agent's
knowledge for the text, asks the agent's LLM and sends the answer through ``message_send``: the
pre-send gate applies (an opt-out in between stops it). The conditions are checked again there,
since a member may have taken over while the reply was queued.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.principals import Principal
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import ProviderError
from messaging.models import Conversation, Direction, Message, SenderType
from messaging.selectors import number_messaging

logger = logging.getLogger("jagcall.messaging")

AGENT_REPLY_TASK = "messaging.tasks.agent_reply"

SMS_INSTRUCTIONS = (
    "You are answering by text message (SMS), not on a phone call. Reply in plain text, briefly "
    "(at most three short sentences), without markdown. If you cannot help, say a person from the team "
    "will follow up."
)


def agent_principal(agent) -> Principal:
    return Principal.system(f"agent:{agent.name}"[:80], organization=agent.organization)


_UNREAD = object()


def _refusal(conversation: Conversation, *, now: dt.datetime | None = None, settings_row=_UNREAD) -> str | None:
    """Why the agent may not answer this conversation now, or None. ``settings_row``: the number's
    NumberMessaging when the caller has read it already."""
    now = now or timezone.now()
    phone_number = conversation.phone_number
    if settings_row is _UNREAD:
        settings_row = number_messaging(phone_number)
    if settings_row is None or not settings_row.agent_replies:
        return "agent replies are off for this number"
    if phone_number.agent_id is None:
        return "the number has no agent"
    if conversation.taken_over_at is not None:
        return "a member has taken the conversation over"
    if conversation.consecutive_auto_replies >= settings.MESSAGING_AGENT_MAX_CONSECUTIVE_REPLIES:
        return f"{conversation.consecutive_auto_replies} automatic replies in a row"
    since = now - dt.timedelta(seconds=settings.MESSAGING_AGENT_REPLY_WINDOW_SECONDS)
    recent = Message.objects.for_org(conversation.organization_id).filter(
        conversation=conversation, sender_type=SenderType.AGENT, created_at__gte=since
    ).count()
    if recent >= settings.MESSAGING_AGENT_REPLIES_PER_WINDOW:
        return f"{recent} automatic replies in the last {settings.MESSAGING_AGENT_REPLY_WINDOW_SECONDS} s"
    return None


def agent_reply_queue(*, message: Message, conversation: Conversation) -> bool:
    """Queue the agent's reply to ``message`` on commit, when the agent may answer. True: queued."""
    settings_row = number_messaging(conversation.phone_number)
    reason = _refusal(conversation, settings_row=settings_row)
    if reason is not None:
        if settings_row is not None:
            logger.info("agent_reply.skipped conversation=%s: %s", conversation.id, reason)
        return False
    # By name: the task module calls this one (tasks stay thin wrappers of services).
    message_id = str(message.id)
    transaction.on_commit(lambda: current_app.send_task(AGENT_REPLY_TASK, args=[message_id]))
    return True


def _history(conversation: Conversation, limit: int) -> list[dict]:
    messages = list(
        Message.objects.for_org(conversation.organization_id)
        .filter(conversation=conversation)
        .order_by("-created_at", "-id")[:limit]
    )
    history = []
    for item in reversed(messages):
        if not (item.body or "").strip():
            continue
        role = "user" if item.direction == Direction.INBOUND else "assistant"
        history.append({"role": role, "content": item.body})
    return history


def _instructions(agent, passages: list) -> str:
    parts = [agent.system_prompt.strip(), SMS_INSTRUCTIONS]
    if passages:
        quoted = "\n\n".join(f"[{hit.document_name}] {hit.text}" for hit in passages)
        parts.append(f"Passages from the organization's knowledge base that may help:\n{quoted}")
    return "\n\n".join(part for part in parts if part)


def agent_reply_send(*, message_id) -> Message | None:
    """Answer the inbound ``message`` as the number's agent (see the module). None when it may not now."""
    from messaging.services.sending import message_send
    from telephony.providers.llm import chat_reply
    from telephony.selectors.agents import agent_knowledge_search

    message = (
        Message.objects.unscoped("a queued reply names its message by id; everything after is the message's organization")
        .select_related("conversation__phone_number__agent__organization", "conversation__contact")
        .filter(pk=message_id, direction=Direction.INBOUND)
        .first()
    )
    if message is None:
        return None
    conversation = message.conversation
    newer = Message.objects.for_org(conversation.organization_id).filter(
        conversation=conversation, direction=Direction.INBOUND, created_at__gt=message.created_at
    )
    if newer.exists():
        return None  # a later text will be answered, with this one in its history
    reason = _refusal(conversation)
    if reason is not None:
        logger.info("agent_reply.skipped conversation=%s: %s", conversation.id, reason)
        return None
    agent = conversation.phone_number.agent
    passages = agent_knowledge_search(agent, message.body, k=4) if message.body.strip() else []
    history = _history(conversation, settings.MESSAGING_AGENT_HISTORY)
    if not history or history[-1]["role"] != "user":
        return None
    try:
        text = chat_reply(
            organization=agent.organization,
            provider=agent.llm_provider,
            model=agent.llm_model,
            instructions=_instructions(agent, passages),
            history=history,
            temperature=agent.temperature,
        )
    except ProviderError as error:
        logger.warning("agent reply in conversation %s failed: %s", conversation.id, error.message)
        raise
    try:
        return message_send(
            organization=agent.organization,
            actor=agent_principal(agent),
            sender=conversation.phone_number,
            to=conversation.contact.phone,
            body=text[:1600],
            sender_label=agent.name,
            automatic=True,
        )
    except ApplicationError as error:
        logger.info("agent reply in conversation %s not sent: %s", conversation.id, error.message)
        return None
