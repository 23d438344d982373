"""The post-call steps' shared bookkeeping: each step's row moves pending -> running -> done, or failed.

See services/recordings.py for the pipeline as a whole. Tasks are queued by name
on commit: telephony/tasks.py imports the services, never the other way round.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from accounts.events import publish_org_event
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import ProviderError
from telephony.models import Call, CallAnalysis, CallEvent, CallRecording, StepStatus, Transcript

logger = logging.getLogger("jagcall.telephony")

# The steps in order: name -> model. The name is what the call page, events and the retry use.
STEPS = {"recording": CallRecording, "transcript": Transcript, "analysis": CallAnalysis}
STEP_LABELS = {"recording": "Recording", "transcript": "Transcript", "analysis": "Summary and analysis"}

# The tasks by step, named (not imported: tasks import the services, the services only name the tasks).
TASKS = {
    "recording": "telephony.tasks.recording_download_task",
    "transcript": "telephony.tasks.transcript_create_task",
    "analysis": "telephony.tasks.analysis_create_task",
}


def queue_on_commit(task_name: str, *args: str) -> None:
    """Send the task named ``task_name`` once the transaction commits (routed like any task of that name)."""
    from celery import current_app

    transaction.on_commit(lambda: current_app.send_task(task_name, args=list(args)))


def queue_step(step: str, call: Call) -> None:
    queue_on_commit(TASKS[step], str(call.organization_id), str(call.id))


def call_event(call: Call, kind: str, **details) -> None:
    CallEvent.objects.create(organization_id=call.organization_id, call=call, kind=kind, source="pipeline", details=details)
    publish_org_event(call.organization_id, "call.post_call", {"id": str(call.id), "step": kind})


# --- step bookkeeping (shared by the three steps) -----------------------------------------


def step_begin(model, call: Call):
    """Mark ``call``'s step running and return it; None when it is done already (nothing to do) or missing."""
    with transaction.atomic():
        step = model.objects.for_org(call.organization).select_for_update().filter(call=call).first()
        if step is None or step.status == StepStatus.DONE:
            return None
        step.status = StepStatus.RUNNING
        step.attempts += 1
        step.save(update_fields=["status", "attempts", "updated_at"])
    return step


def step_name(model) -> str:
    return next(name for name, candidate in STEPS.items() if candidate is model)


def step_retrying(*, call: Call, step: str, reason: str, attempt: int) -> None:
    """A retryable failure: the step waits for its next attempt; the reason shows meanwhile."""
    STEPS[step].objects.for_org(call.organization).filter(call=call).exclude(status=StepStatus.DONE).update(
        status=StepStatus.PENDING, failure_reason=f"Retrying after: {reason}"[:500], updated_at=timezone.now()
    )
    logger.info("call %s: %s attempt %s failed, retrying: %s", call.id, step, attempt, reason)


@transaction.atomic
def step_failed(*, call: Call, step: str, reason: str) -> None:
    """A permanent failure: shown on the call with its reason and a retry button."""
    updated = (
        STEPS[step].objects.for_org(call.organization).filter(call=call).exclude(status=StepStatus.DONE)
        .update(status=StepStatus.FAILED, failure_reason=reason[:500], updated_at=timezone.now())
    )  # fmt: skip
    if updated:
        call_event(call, f"{step}.failed", reason=reason[:500])
        logger.warning("call %s: %s failed: %s", call.id, step, reason)


def step_done(step, call: Call, *, update_fields: list[str], next_step: str | None, event: str, **details) -> None:
    """Store the step's result as done and queue the next step, in one transaction."""
    with transaction.atomic():
        step.status = StepStatus.DONE
        step.failure_reason = ""
        step.completed_at = timezone.now()
        step.save(update_fields=[*update_fields, "status", "failure_reason", "completed_at", "updated_at"])
        call_event(call, event, **details)
        if next_step is not None:
            _, created = STEPS[next_step].objects.get_or_create(organization_id=call.organization_id, call=call)
            if created:
                queue_step(next_step, call)


def failure_reason_of(error: Exception) -> str:
    """What the call page says about a failure: the provider's actionable message, or the app's."""
    if isinstance(error, ProviderError):
        return str(error)
    if isinstance(error, ApplicationError):
        return error.message
    return "An internal error stopped this step; it was logged. Retry, or contact support if it fails again."
