"""Periodic audit-log jobs (scheduled in CELERY_BEAT_SCHEDULE): retention purge and chain verification."""

from __future__ import annotations

from celery import shared_task

# Stop starting new purge batches after this long, well inside CELERY_TASK_SOFT_TIME_LIMIT;
# the next run carries on where this one stopped.
PURGE_TIME_BUDGET_SECONDS = 180


@shared_task(name="compliance.tasks.purge_expired_events")
def purge_expired_events() -> dict:
    from compliance.services import audit_purge_expired

    result = audit_purge_expired(time_budget_seconds=PURGE_TIME_BUDGET_SECONDS)
    return {"events_deleted": result.events_deleted, "checkpoints": result.checkpoints, "finished": result.finished}


@shared_task(name="compliance.tasks.verify_chains")
def verify_chains() -> dict:
    from compliance.services import audit_chains_verify_and_alert

    reports = audit_chains_verify_and_alert()
    broken = [r.chain_label for r in reports if not r.ok]
    return {"chains": len(reports), "events": sum(r.events for r in reports), "broken": broken}
