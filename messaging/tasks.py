"""Messaging's Celery tasks: thin wrappers that call a service.

``agent_reply``: the number's agent answers an inbound text (services/agent_replies.py); a
retryable provider error is retried a few times with backoff. ``contact_import_run``: a large CSV
of contacts (services/imports.py), its progress saved as it goes.
"""

from __future__ import annotations

import logging
import random

from celery import shared_task

from jagcall.kernel.providers import ProviderError

logger = logging.getLogger("jagcall.messaging")

AGENT_REPLY_MAX_RETRIES = 3


@shared_task(bind=True, max_retries=AGENT_REPLY_MAX_RETRIES, acks_late=True)
def agent_reply(self, message_id: str):
    from messaging.services.agent_replies import agent_reply_send

    try:
        sent = agent_reply_send(message_id=message_id)
    except ProviderError as error:
        if error.retryable and self.request.retries < AGENT_REPLY_MAX_RETRIES:
            raise self.retry(countdown=2 ** self.request.retries * 5 * (1 + random.random() * 0.25)) from error  # noqa: S311
        logger.warning("agent reply to %s given up: %s", message_id, error.message)
        return None
    return str(sent.id) if sent is not None else None
