"""Retention: events past AUDIT_RETENTION_DAYS go, nothing newer does, and the chain still verifies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from compliance.models import AuditChainCheckpoint, AuditEvent
from compliance.selectors import audit_chain_verify
from compliance.services import audit_purge_expired
from compliance.tests.conftest import record
from compliance.tests.superuser import as_superuser, set_database_retention, tamper

pytestmark = pytest.mark.django_db

EVENTS = AuditEvent._meta.db_table


def backdate(events, when):
    """Move events into the past, as if written then (rehash_chain makes the chain valid again)."""
    for event in events:
        tamper(f"UPDATE {EVENTS} SET occurred_at = %s WHERE id = %s", [when(event), event.id])


def rehash_chain(organization_id):
    from compliance.chain import GENESIS_HASH, event_hash

    previous = GENESIS_HASH
    for event in AuditEvent.objects.for_chain(organization_id).order_by("seq"):
        event.prev_hash = previous
        event.hash = event_hash(event)
        tamper(f"UPDATE {EVENTS} SET prev_hash = %s, hash = %s WHERE id = %s", [event.prev_hash, event.hash, event.id])
        previous = event.hash


def keep_for(settings, days):
    """AUDIT_RETENTION_DAYS, and the floor the database enforces (migrate keeps them equal)."""
    settings.AUDIT_RETENTION_DAYS = days
    set_database_retention(days)


def aged_chain(organization, ages):
    """One event per age (a timedelta before now), oldest first, with a valid chain."""
    now = timezone.now()
    events = [record(organization, metadata={"n": n}) for n in range(len(ages))]
    by_id = {e.pk: age for e, age in zip(events, ages)}
    backdate(events, lambda event: now - by_id[event.pk])
    rehash_chain(organization.id if organization else None)
    assert audit_chain_verify(organization_id=organization.id if organization else None).ok
    return now, events


def test_the_retention_boundary(organization, settings):
    keep_for(settings, 30)
    retention = timedelta(days=30)
    now, events = aged_chain(
        organization,
        [retention + timedelta(days=3), retention + timedelta(minutes=1), retention - timedelta(minutes=1), timedelta(0)],
    )
    last_purged_hash = AuditEvent.objects.unscoped("test: inspects rows directly").get(pk=events[1].pk).hash
    result = audit_purge_expired(now=now)
    remaining = list(AuditEvent.objects.for_org(organization).order_by("seq").values_list("seq", flat=True))
    assert remaining == [3, 4]  # retention+1 minute is purged, retention-1 minute is kept
    assert result.events_deleted == 2
    checkpoint = AuditChainCheckpoint.objects.for_org(organization).get()
    assert (checkpoint.seq, checkpoint.hash, checkpoint.events_purged) == (2, last_purged_hash, 2)
    report = audit_chain_verify(organization_id=organization.id)
    assert report.ok and report.resumed_from_checkpoint == 2 and report.events == 2
    # Running again changes nothing.
    assert audit_purge_expired(now=now).events_deleted == 0


def test_nothing_newer_than_the_cutoff_goes_even_out_of_order(organization, settings):
    """A clock step back can put a newer event before an older one; the purge stops at the first newer one."""
    keep_for(settings, 10)
    now, _events = aged_chain(
        organization, [timedelta(days=20), timedelta(days=5), timedelta(days=15), timedelta(days=1)]
    )
    audit_purge_expired(now=now)
    assert list(AuditEvent.objects.for_org(organization).order_by("seq").values_list("seq", flat=True)) == [2, 3, 4]
    assert audit_chain_verify(organization_id=organization.id).ok


def test_batches_leave_a_checkpoint_each_and_verification_still_passes(organization, other_organization, settings, capsys):
    keep_for(settings, 7)
    now, _events = aged_chain(organization, [timedelta(days=30 - n) for n in range(12)] + [timedelta(hours=1)])
    record(other_organization)
    result = audit_purge_expired(now=now, batch_size=5)
    assert result.events_deleted == 12
    assert result.checkpoints == 3  # 5 + 5 + 2
    assert list(AuditChainCheckpoint.objects.for_org(organization).order_by("seq").values_list("seq", flat=True)) == [5, 10, 12]
    assert AuditEvent.objects.for_org(organization).count() == 1
    call_command("verify_audit_chain")
    assert "resumed from the purge checkpoint at seq 12" in capsys.readouterr().out


def test_a_fully_purged_chain_continues_from_its_checkpoint(organization, settings):
    keep_for(settings, 1)
    now, events = aged_chain(organization, [timedelta(days=3), timedelta(days=2)])
    audit_purge_expired(now=now)
    assert not AuditEvent.objects.for_org(organization).exists()
    following = record(organization)
    assert following.seq == 3 and following.prev_hash == AuditChainCheckpoint.objects.for_org(organization).get().hash
    assert audit_chain_verify(organization_id=organization.id).ok


def test_the_platform_chain_is_purged_too(settings):
    keep_for(settings, 1)
    now, _events = aged_chain(None, [timedelta(days=5), timedelta(hours=2)])
    audit_purge_expired(now=now)
    assert list(AuditEvent.objects.platform().values_list("seq", flat=True)) == [2]
    assert audit_chain_verify(organization_id=None).ok


def test_the_purge_flag_does_not_outlive_the_purge(organization, settings):
    from django.db.utils import DatabaseError

    keep_for(settings, 1)
    now, _events = aged_chain(organization, [timedelta(days=5), timedelta(hours=2)])
    audit_purge_expired(now=now)  # inside the test's transaction
    with pytest.raises(DatabaseError, match="append-only"):
        as_superuser(f"DELETE FROM {EVENTS} WHERE organization_id = %s", [organization.id])


def test_time_budget_stops_between_batches(organization, settings):
    keep_for(settings, 1)
    now, _events = aged_chain(organization, [timedelta(days=5)] * 3)
    result = audit_purge_expired(now=now, batch_size=1, time_budget_seconds=0)
    assert result.finished is False and result.events_deleted == 0
    assert audit_purge_expired(now=now, batch_size=1).events_deleted == 3


def test_the_beat_tasks(organization, settings):
    from compliance import tasks

    keep_for(settings, 1)
    aged_chain(organization, [timedelta(days=5), timedelta(hours=1)])
    assert tasks.purge_expired_events() == {"events_deleted": 1, "checkpoints": 1, "finished": True}
    outcome = tasks.verify_chain(str(organization.id))
    assert outcome == {"chain": organization.slug, "events": 1, "broken": False}
    assert tasks.verify_chain(None)["broken"] is False  # the platform's chain


def test_the_daily_verification_runs_one_task_per_chain(organization, other_organization, monkeypatch):
    from compliance import tasks

    queued = []
    monkeypatch.setattr(tasks.verify_chain, "delay", lambda organization_id: queued.append(organization_id))
    assert tasks.verify_chains() == {"chains": 3}
    assert sorted(queued, key=str) == sorted([None, str(organization.id), str(other_organization.id)], key=str)


def test_verify_chains_logs_and_emits_a_security_event_when_broken(organization, events, caplog):
    from compliance import tasks

    first = record(organization)
    record(organization)
    tamper(f"UPDATE {EVENTS} SET actor_label = 'someone else' WHERE id = %s", [first.id])
    with caplog.at_level("ERROR", logger="jagcall.audit"):
        outcome = tasks.verify_chain(str(organization.id))
    assert outcome["broken"] is True and outcome["chain"] == "acme-dental"
    assert any("audit chain broken" in r.getMessage() and str(first.id) in r.getMessage() for r in caplog.records)
    alert = [e for e in events if e["event"] == "audit.chain_broken"]
    assert len(alert) == 1 and alert[0]["organization_id"] == str(organization.id) and alert[0]["seq"] == 1
    # The alert itself is in the log, as a failure.
    recorded = AuditEvent.objects.for_org(organization).get(action="audit.chain_broken")
    assert recorded.outcome == "failed" and recorded.metadata["event_id"] == str(first.id)


def test_retention_defaults_to_a_year(settings):
    from jagcall.kernel.env import env

    assert settings.AUDIT_RETENTION_DAYS == env("AUDIT_RETENTION_DAYS", default=365, cast=int)


# --- the purge runs through a guarded function -------------------------------------------


def test_the_application_role_deletes_only_through_the_guarded_function(organization, settings):
    """The role has no DELETE; the function it may call deletes only what the database's retention allows."""
    from django.db.utils import DatabaseError

    settings.AUDIT_RETENTION_DAYS = 365  # and the database's floor, as migrate set it
    now, events = aged_chain(organization, [timedelta(days=400), timedelta(days=3), timedelta(0)])
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == settings.DATABASE_APP_ROLE
    # Asking the function for everything up to now is refused, and says what to do.
    with pytest.raises(DatabaseError, match="newer than the 365 days of retention") as refusal:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT * FROM audit_purge_batch(%s, %s, 100)", [organization.id, now])
    assert "manage.py migrate" in str(refusal.value.__cause__.diag.message_hint)
    # A lower AUDIT_RETENTION_DAYS that migrate has not applied yet: the purge is refused, nothing goes.
    settings.AUDIT_RETENTION_DAYS = 1
    with pytest.raises(DatabaseError, match="audit purge refused"):
        with transaction.atomic():
            audit_purge_expired(now=now)
    assert AuditEvent.objects.for_org(organization).count() == 3
    # Within the floor it purges, as the application's role.
    settings.AUDIT_RETENTION_DAYS = 365
    assert audit_purge_expired(now=now).events_deleted == 1
    assert list(AuditEvent.objects.for_org(organization).values_list("seq", flat=True).order_by("seq")) == [2, 3]


def test_a_bad_batch_size_is_refused(organization):
    from django.db.utils import DatabaseError

    with pytest.raises(DatabaseError, match="batch size"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT * FROM audit_purge_batch(%s, now() - interval '400 days', 0)", [organization.id])


@pytest.mark.django_db(databases=["default", "owner"])
def test_migrate_sets_the_databases_retention_floor_from_the_setting(settings):
    from django.db import connections

    from compliance.roles import grant_app_role

    settings.AUDIT_RETENTION_DAYS = 42
    assert grant_app_role(using="owner") is True
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT proconfig FROM pg_proc WHERE proname = 'audit_purge_batch'")
        assert "jagcall.audit_retention_days=42" in cursor.fetchone()[0]
        cursor.execute(
            "SELECT has_function_privilege(%s, 'audit_purge_batch(uuid, timestamptz, integer)', 'EXECUTE'), "
            "has_function_privilege('public', 'audit_purge_batch(uuid, timestamptz, integer)', 'EXECUTE')",
            [settings.DATABASE_APP_ROLE],
        )
        assert cursor.fetchone() == (True, False)
