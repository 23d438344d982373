"""What a call's page shows of its post-call steps (recording, transcript, summary and analysis)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from telephony.models import Call, StepStatus
from telephony.services.pipeline import STEP_LABELS, STEPS
from telephony.services.transcripts import transcript_lines


# How long after an answered, recorded call ends its page still expects Twilio's recording callback.
RECORDING_EXPECTED_WITHIN = timedelta(minutes=10)


def _recording_expected(call: Call) -> bool:
    """The call ended answered, its agent records calls, and Twilio's recording may still be on its way."""
    agent = call.agent if call.agent_id else None
    return bool(
        call.is_finished and call.answered_at and agent is not None and agent.record_calls
        and call.ended_at and timezone.now() - call.ended_at < RECORDING_EXPECTED_WITHIN
    )  # fmt: skip


def post_call_overview(*, call: Call) -> dict:
    """The post-call steps of ``call`` for its page: each step's state, the stored results, what can be retried.

    Three queries (one per step); the transcript and summary are decrypted only when done. ``pending``:
    something is still to come (the call goes on, its recording is expected, or a step waits or runs), so
    the page keeps this section up to date by itself.
    """
    organization = call.organization
    rows = {name: model.objects.for_org(organization).filter(call=call).first() for name, model in STEPS.items()}
    steps = []
    for name, row in rows.items():
        steps.append(
            {
                "name": name,
                "label": STEP_LABELS[name],
                "status": row.status if row else None,
                "status_label": row.get_status_display() if row else "Not started",
                "failure_reason": row.failure_reason if row else "",
                "failed": bool(row and row.status == StepStatus.FAILED),
                "attempts": row.attempts if row else 0,
            }
        )
    recording, transcript, analysis = rows["recording"], rows["transcript"], rows["analysis"]
    done = {name: bool(row and row.status == StepStatus.DONE) for name, row in rows.items()}
    started = any(rows.values())
    working = any(row and row.status in (StepStatus.PENDING, StepStatus.RUNNING) for row in rows.values())
    awaiting_recording = not started and _recording_expected(call)
    return {
        "steps": steps,
        "started": started,
        "working": working,
        "awaiting_recording": awaiting_recording,
        "pending": working or awaiting_recording or (not started and not call.is_finished),
        "failed": any(step["failed"] for step in steps),
        "recording": recording if done["recording"] and recording.audio else None,
        "lines": transcript_lines(transcript.utterances) if done["transcript"] else [],
        "transcript_done": done["transcript"],
        "summary": analysis.summary if done["analysis"] else None,
        "fields": [
            {"name": name, **(value if isinstance(value, dict) else {"value": value, "valid": True, "reason": ""})}
            for name, value in ((analysis.fields or {}).items() if done["analysis"] else [])
        ],
    }
