"""What a call's page shows of its post-call steps (recording, transcript, summary and analysis)."""

from __future__ import annotations

from telephony.models import Call, StepStatus
from telephony.services.pipeline import STEP_LABELS, STEPS
from telephony.services.transcripts import transcript_lines


def post_call_overview(*, call: Call) -> dict:
    """The post-call steps of ``call`` for its page: each step's state, the stored results, what can be retried.

    Three queries (one per step); the transcript and summary are decrypted only when done.
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
    return {
        "steps": steps,
        "started": any(rows.values()),
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
