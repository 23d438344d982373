"""Retention (the daily purge, leaving checkpoints) and the alerts of chain verification."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connections, router, transaction
from django.utils import timezone

from compliance.models import AuditEvent

logger = logging.getLogger("jagcall.audit")

PURGE_BATCH_SIZE = 5000


# --- retention -----------------------------------------------------------------------------


@dataclass
class PurgeResult:
    cutoff: object
    events_deleted: int = 0
    checkpoints: int = 0
    chains: list = field(default_factory=list)
    finished: bool = True


def _chains_with_events() -> list:
    """Every chain key: None (platform) and each organization's id."""
    from accounts.models import Organization

    return [None, *Organization.objects.order_by("created_at", "id").values_list("id", flat=True)]


def _purge_batch(*, organization_id, cutoff, batch_size: int) -> tuple[int, bool]:
    """Delete the oldest expired run of one chain, at most ``batch_size`` events.

    Returns (events deleted, whether more may follow). [!!] The application's
    database role has no DELETE on the audit tables: this calls
    ``audit_purge_batch`` (migration 0003), a function owned by the tables'
    owner that deletes only a leading run of the chain (lowest seq) whose
    every event is older than ``cutoff`` and than the database's own retention
    floor, writing the checkpoint verification resumes from in the same
    transaction. Writers are not held up: they take the chain's head (the
    newest row, else the newest checkpoint), and the checkpoint and the DELETE
    commit together, so a writer sees either the rows or their checkpoint.
    """
    using = router.db_for_write(AuditEvent)
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT events_deleted, more FROM audit_purge_batch(%s, %s, %s)", [organization_id, cutoff, batch_size]
        )
        deleted, more = cursor.fetchone()
    return deleted, more


def audit_purge_expired(
    *, now=None, retention_days: int | None = None, batch_size: int = PURGE_BATCH_SIZE, time_budget_seconds: float | None = None
) -> PurgeResult:
    """Delete events older than the retention (AUDIT_RETENTION_DAYS), chain by chain, in batches.

    Each batch is its own transaction: checkpoint first, then the DELETE (``_purge_batch``).
    With ``time_budget_seconds`` it stops between batches when the budget is
    spent (``finished`` False); the next run carries on.
    """
    from django.conf import settings

    now = now or timezone.now()
    retention_days = settings.AUDIT_RETENTION_DAYS if retention_days is None else retention_days
    if retention_days < 1:
        raise ValueError("AUDIT_RETENTION_DAYS must be at least 1.")
    result = PurgeResult(cutoff=now - timedelta(days=retention_days))
    started = time.monotonic()
    for organization_id in _chains_with_events():
        more = True
        chain_deleted = 0
        while more:
            if time_budget_seconds is not None and time.monotonic() - started > time_budget_seconds:
                result.finished = False
                break
            deleted, more = _purge_batch(organization_id=organization_id, cutoff=result.cutoff, batch_size=batch_size)
            if deleted:
                chain_deleted += deleted
                result.checkpoints += 1
        if chain_deleted:
            result.events_deleted += chain_deleted
            result.chains.append((str(organization_id) if organization_id else None, chain_deleted))
        if not result.finished:
            break
    logger.info(
        "audit purge: %s events deleted older than %s, %s checkpoints",
        result.events_deleted, result.cutoff.isoformat(), result.checkpoints,
        extra={"events_deleted": result.events_deleted, "finished": result.finished},
    )
    return result


# --- verification alerts ---------------------------------------------------------------------


def audit_chains_verify_and_alert(*, organization=None) -> list:
    """Verify chains (all, or one organization's); log and emit a security event for each broken one."""
    from compliance.selectors import audit_chains_verify

    reports = audit_chains_verify(organization=organization)
    for report in reports:
        _alert_if_broken(report)
    return reports


def audit_chain_verify_and_alert(*, organization_id):
    """Verify one chain (``None``: the platform's) and its head against the latest signed digest;
    log and alert if it is broken. Returns its report."""
    from accounts.models import Organization
    from compliance.selectors import audit_chain_verify

    label = "platform"
    if organization_id is not None:
        label = Organization.objects.filter(pk=organization_id).values_list("slug", flat=True).first() or str(organization_id)
    report = audit_chain_verify(organization_id=organization_id, chain_label=label)
    if report.ok:
        # A tail cut off or rewritten links up; its head against the latest signed digest shows it.
        from compliance.digests import audit_digest_verify
        from compliance.selectors import ChainBreak

        problems = audit_digest_verify(organization_id=organization_id)
        if problems:
            report.broken = ChainBreak(problems[0].seq, "", problems[0].reason)
    _alert_if_broken(report)
    return report


def _alert_if_broken(report) -> None:
    from accounts.models import Organization
    from accounts.security_events import emit

    broken = report.broken
    if broken is None:
        return
    logger.error(
        "audit chain broken: organization=%s seq=%s event=%s: %s",
        report.chain_label, broken.seq, broken.event_id, broken.reason,
        extra={"organization_id": report.organization_id, "seq": broken.seq, "event_id": broken.event_id},
    )
    chain_organization = Organization.objects.filter(pk=report.organization_id).first() if report.organization_id else None
    emit("audit.chain_broken", organization=chain_organization, seq=broken.seq, event_id=broken.event_id, reason=broken.reason)


def audit_chain_ids() -> list:
    """Every chain: None (the platform's) and each organization's id."""
    return _chains_with_events()
