"""Telephony's Celery tasks: thin wrappers that load the rows and call a service.

Post-call pipeline (services/recordings.py): each step's task takes
``(organization_id, call_id)``. A retryable ProviderError (timeouts, 429, 5xx)
is retried with exponential backoff and jitter, up to POST_CALL_MAX_RETRIES;
a permanent error, or the last retry, marks the step failed with its reason
(shown on the call page with a retry button). Routing: the transcription task
goes to the "transcription" queue (CELERY_TASK_ROUTES), the others to "default".
"""

from __future__ import annotations

import logging
import random

from celery import shared_task
from django.conf import settings

from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import ProviderError

logger = logging.getLogger("jagcall.telephony")

POST_CALL_MAX_RETRIES = 5


def _backoff(retries: int) -> float:
    """Seconds before retry ``retries + 1``: base * 2**retries, capped, with up to 25% jitter."""
    base = float(getattr(settings, "POST_CALL_RETRY_BASE_SECONDS", 15))
    delay = min(base * (2**retries), float(getattr(settings, "POST_CALL_RETRY_MAX_SECONDS", 900)))
    return delay * (1 + random.random() * 0.25)  # noqa: S311 (jitter, not a secret)


def _call(organization_id: str, call_id: str):
    from accounts.models import Organization
    from telephony.models import Call

    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return None
    return Call.objects.for_org(organization).select_related("organization", "agent").filter(pk=call_id).first()


def _run_step(task, step: str, organization_id: str, call_id: str, service) -> str:
    from telephony.services.pipeline import failure_reason_of, step_failed, step_retrying

    call = _call(organization_id, call_id)
    if call is None:
        logger.info("post-call %s: call %s of organization %s is gone", step, call_id, organization_id)
        return "gone"
    try:
        result = service(call=call)
    except ProviderError as error:
        if error.retryable and task.request.retries < POST_CALL_MAX_RETRIES:
            step_retrying(call=call, step=step, reason=str(error), attempt=task.request.retries + 1)
            raise task.retry(exc=error, countdown=_backoff(task.request.retries), max_retries=POST_CALL_MAX_RETRIES)
        reason = str(error)
        if error.retryable:
            reason = f"{reason} (gave up after {task.request.retries + 1} attempts)"
        step_failed(call=call, step=step, reason=reason)
        return "failed"
    except ApplicationError as error:
        step_failed(call=call, step=step, reason=failure_reason_of(error))
        return "failed"
    except Exception as error:
        logger.exception("post-call %s of call %s failed", step, call_id)
        step_failed(call=call, step=step, reason=failure_reason_of(error))
        return "failed"
    return "done" if result is not None else "skipped"


@shared_task(bind=True, acks_late=True, max_retries=POST_CALL_MAX_RETRIES)
def recording_download_task(self, organization_id: str, call_id: str) -> str:
    from telephony.services.recordings import recording_download

    return _run_step(self, "recording", organization_id, call_id, recording_download)


@shared_task(bind=True, acks_late=True, max_retries=POST_CALL_MAX_RETRIES)
def transcript_create_task(self, organization_id: str, call_id: str) -> str:
    from telephony.services.transcripts import transcript_create

    return _run_step(self, "transcript", organization_id, call_id, transcript_create)


@shared_task(bind=True, acks_late=True, max_retries=POST_CALL_MAX_RETRIES)
def analysis_create_task(self, organization_id: str, call_id: str) -> str:
    from telephony.services.analysis import analysis_create

    return _run_step(self, "analysis", organization_id, call_id, analysis_create)


@shared_task(bind=True, acks_late=True, max_retries=POST_CALL_MAX_RETRIES)
def recording_discard_task(self, organization_id: str, call_id: str, recording_sid: str) -> str:
    """Delete at Twilio a second recording of a call that keeps its first."""
    from telephony.services.recordings import recording_discard

    call = _call(organization_id, call_id)
    if call is None:
        return "gone"
    try:
        recording_discard(call=call, recording_sid=recording_sid)
    except ProviderError as error:
        if error.retryable:
            raise self.retry(exc=error, countdown=_backoff(self.request.retries)) from None
        logger.error("call %s: extra recording %s could not be deleted at Twilio: %s", call_id, recording_sid, error)
        return "failed"
    return "done"
