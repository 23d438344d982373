"""Messaging's Celery tasks: thin wrappers that call a service.

``agent_reply``: the number's agent answers an inbound text (services/agent_replies.py); a
retryable provider error is retried a few times with backoff. ``contact_import_run``: a large CSV
of contacts (services/imports.py), its progress saved as it goes. ``a2p_status_refresh_task``: the
A2P 10DLC registration of an organization's numbers, asked of Twilio (services/a2p.py);
``a2p_status_refresh_all_task`` starts one per organization that holds a number able to text.
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


# --- contact imports --------------------------------------------------------------------------

CONTACT_IMPORT_MAX_RETRIES = 3


@shared_task(bind=True, max_retries=CONTACT_IMPORT_MAX_RETRIES, acks_late=True)
def contact_import_run(self, organization_id: str, import_id: str) -> str:
    """Import a confirmed CSV of contacts from where it stopped; hand over to a fresh run before the time limit.

    Every batch is saved with the import's progress, so a retry or a redelivered message resumes at
    ``processed_rows``. A permanent refusal, or the last retry, marks the import failed with its reason
    (the page offers to try again, which resumes it).
    """
    from django.conf import settings

    from accounts.models import Organization
    from jagcall.kernel.errors import ApplicationError
    from messaging.models import ImportStatus
    from messaging.services.imports import RUN_SECONDS, contact_import_fail, contact_import_process

    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return "gone"
    seconds = min(RUN_SECONDS, int(settings.CELERY_TASK_SOFT_TIME_LIMIT) / 2)
    try:
        job = contact_import_process(organization=organization, import_id=import_id, seconds=seconds)
    except ApplicationError as error:
        reason = f"The import stopped: {error.message}"
        contact_import_fail(organization=organization, import_id=import_id, reason=reason)
        return "failed"
    except Exception as error:
        if self.request.retries < CONTACT_IMPORT_MAX_RETRIES:
            countdown = 2**self.request.retries * 5 * (1 + random.random() * 0.25)  # noqa: S311
            raise self.retry(exc=error, countdown=countdown) from error
        logger.exception("contact import %s given up", import_id)
        contact_import_fail(
            organization=organization, import_id=import_id,
            reason="An unexpected error stopped the import (it has been logged). The rows imported so far are kept; "
            "“Try again” goes on from where it stopped.",
        )  # fmt: skip
        return "failed"
    if job is None:
        return "gone"
    if job.status == ImportStatus.RUNNING:  # time is up for this run: a fresh one goes on from here
        self.apply_async(args=[organization_id, import_id])
        return "continues"
    return job.status


# --- A2P 10DLC registration -------------------------------------------------------------------

A2P_REFRESH_MAX_RETRIES = 3


@shared_task(bind=True, max_retries=A2P_REFRESH_MAX_RETRIES, acks_late=True)
def a2p_status_refresh_task(self, organization_id: str) -> dict:
    """Ask Twilio for the A2P 10DLC registration of each SMS-capable number of the organization
    (services/a2p.py); when Twilio could not be reached for some, the whole check runs again later.
    Returns E.164 -> the status kept, or the reason it could not be checked."""
    from accounts.models import Organization
    from messaging.services.a2p import a2p_status_refresh_numbers

    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return {}
    outcome = a2p_status_refresh_numbers(organization=organization)
    if outcome.retryable and self.request.retries < A2P_REFRESH_MAX_RETRIES:
        raise self.retry(countdown=2 ** self.request.retries * 30 * (1 + random.random() * 0.25))  # noqa: S311
    for error in outcome.failed.values():
        logger.warning("A2P check of a number of organization %s given up: %s", organization_id, error.message)
    summary = {row.phone_number.number: row.a2p_status for row in outcome.refreshed}
    summary.update({number: f"not checked: {error.message}" for number, error in outcome.failed.items()})
    return summary


@shared_task(acks_late=True)
def a2p_status_refresh_all_task() -> int:
    """The periodic check: one ``a2p_status_refresh_task`` per organization holding a number that texts."""
    from messaging.services.a2p import a2p_organizations_to_check

    organization_ids = a2p_organizations_to_check()
    for organization_id in organization_ids:
        a2p_status_refresh_task.delay(str(organization_id))
    return len(organization_ids)
