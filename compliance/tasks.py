"""Periodic audit-log jobs (scheduled in CELERY_BEAT_SCHEDULE): retention purge, chain verification and summaries of floods of failures."""

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
    """Daily: one verification task per chain (the platform's and each organization's).

    Each chain is recomputed from its start (or its purge checkpoint) in a task
    of its own, so the run grows with the largest organization's log, not with
    the sum of all of them, and stays inside the task time limits.
    """
    from compliance.services import audit_chain_ids

    chains = audit_chain_ids()
    for organization_id in chains:
        verify_chain.delay(str(organization_id) if organization_id is not None else None)
    return {"chains": len(chains)}


@shared_task(name="compliance.tasks.verify_chain")
def verify_chain(organization_id: str | None) -> dict:
    from compliance.services import audit_chain_verify_and_alert

    report = audit_chain_verify_and_alert(organization_id=organization_id)
    return {"chain": report.chain_label, "events": report.events, "broken": report.broken is not None}


@shared_task(name="compliance.tasks.record_failure_summaries")
def record_failure_summaries() -> dict:
    """Every minute: one summary record per window of failures that were counted, not recorded one by one."""
    from compliance.services import audit_record_failure_summaries

    return {"summaries": audit_record_failure_summaries()}


@shared_task(name="compliance.tasks.write_chain_digests")
def write_chain_digests() -> dict:
    """Daily: sign every chain's head and write it outside the table (compliance/digests.py)."""
    from compliance.services.digests import audit_digests_write

    return {"digests": len(audit_digests_write())}
