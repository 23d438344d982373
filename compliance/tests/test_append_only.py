"""The database refuses to change or delete audit rows; verification finds what a superuser changed."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from accounts.tests.factories import UserFactory
from compliance.models import AuditChainCheckpoint, AuditEvent
from compliance.selectors import audit_chain_verify
from compliance.tests.conftest import record

pytestmark = pytest.mark.django_db

EVENTS = AuditEvent._meta.db_table
CHECKPOINTS = AuditChainCheckpoint._meta.db_table


def refused(statement, params=None):
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            if callable(statement):
                statement()
            else:
                with connection.cursor() as cursor:
                    cursor.execute(statement, params or [])


def test_orm_update_and_delete_are_refused(organization):
    event = record(organization)
    event.action = "member.removed"
    refused(event.save)
    refused(lambda: AuditEvent.objects.filter(pk=event.pk).update(outcome="failed"))
    refused(event.delete)
    refused(lambda: AuditEvent.objects.all().delete())
    event.refresh_from_db()
    assert event.action == "member.invited"


def test_raw_sql_update_delete_and_truncate_are_refused(organization):
    event = record(organization)
    refused(f"UPDATE {EVENTS} SET metadata = '{{\"x\": 1}}' WHERE id = %s", [event.id])
    refused(f"UPDATE {EVENTS} SET actor_id = NULL, action = 'member.removed' WHERE id = %s", [event.id])
    refused(f"DELETE FROM {EVENTS} WHERE id = %s", [event.id])
    # The test settings allow TRUNCATE for the harness (settings_test.py); a real session does not.
    # (SET CONSTRAINTS: no deferred FK checks may be pending for TRUNCATE to be tried at all.)
    refused(f"SET CONSTRAINTS ALL IMMEDIATE; SET LOCAL jagcall.audit_allow_truncate = 'off'; TRUNCATE {EVENTS}")
    refused(f"SET CONSTRAINTS ALL IMMEDIATE; SET LOCAL jagcall.audit_allow_truncate = 'off'; TRUNCATE {CHECKPOINTS}")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_purge_flag_allows_delete_but_never_update(organization):
    event = record(organization)
    refused(f"SET LOCAL jagcall.audit_purge = 'on'; UPDATE {EVENTS} SET action = 'x.y' WHERE id = %s", [event.id])
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jagcall.audit_purge = 'on'")
            cursor.execute(f"DELETE FROM {EVENTS} WHERE id = %s", [event.id])
            cursor.execute("SET LOCAL jagcall.audit_purge = 'off'")
        assert not AuditEvent.objects.filter(pk=event.pk).exists()
    other = record(organization)
    refused(f"DELETE FROM {EVENTS} WHERE id = %s", [other.id])


def test_checkpoints_are_append_only(organization):
    from django.utils import timezone

    checkpoint = AuditChainCheckpoint.objects.create(
        organization=organization, seq=5, hash="a" * 64, occurred_at=timezone.now(), events_purged=5
    )
    refused(lambda: AuditChainCheckpoint.objects.filter(pk=checkpoint.pk).update(seq=6))
    refused(checkpoint.delete)
    refused(f"SET LOCAL jagcall.audit_purge = 'on'; DELETE FROM {CHECKPOINTS}")


def test_deleting_a_person_keeps_their_events_and_the_chain(organization):
    person = UserFactory(email="leaver@acme.test")
    person_id = person.pk
    event = record(organization, actor=person)
    record(organization)
    person.delete()  # Django sets actor_id to NULL: the one update the trigger allows
    event.refresh_from_db()
    assert event.actor_id is None
    assert (event.actor_label, event.actor_key) == ("leaver@acme.test", f"user:{person_id}")
    assert audit_chain_verify(organization_id=organization.id).ok


# --- tampering and verify_audit_chain -----------------------------------------------------


def tamper(sql, params):
    """What someone with the table's ownership could do: switch the guard off, edit, switch it on."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred FK checks pending before ALTER TABLE
        cursor.execute(f"ALTER TABLE {EVENTS} DISABLE TRIGGER audit_event_append_only")
        cursor.execute(sql, params)
        cursor.execute(f"ALTER TABLE {EVENTS} ENABLE TRIGGER audit_event_append_only")


def test_a_clean_chain_verifies(organization, other_organization, capsys):
    for _ in range(3):
        record(organization)
    record(other_organization)
    record(None, action="user.login_failed", outcome="failed")
    call_command("verify_audit_chain")
    out = capsys.readouterr().out
    assert "acme-dental: 3 events (seq 1..3)" in out
    assert "no broken link" in out
    call_command("verify_audit_chain", "--org", "acme-dental")
    assert "1 chain(s) verified" in capsys.readouterr().out


def test_an_edited_payload_is_reported_with_org_seq_and_event(organization, other_organization, capsys):
    events = [record(organization, metadata={"n": n}) for n in range(5)]
    record(other_organization)
    tamper(f"UPDATE {EVENTS} SET metadata = '{{\"n\": 99}}' WHERE id = %s", [events[2].id])
    with pytest.raises(CommandError) as error:
        call_command("verify_audit_chain")
    message = str(error.value)
    assert "acme-dental" in message and "seq 3" in message and str(events[2].id) in message
    out = capsys.readouterr().out
    assert f"BROKEN  acme-dental: first broken link at seq 3, event {events[2].id}" in out
    assert "hash does not match" in out
    call_command("verify_audit_chain", "--org", "globex-sales")  # the other chain is intact: exit 0


def test_a_recomputed_hash_still_breaks_the_next_link(organization):
    from compliance.chain import event_hash

    events = [record(organization) for _ in range(3)]
    forged = AuditEvent.objects.get(pk=events[1].pk)
    forged.action = "member.removed"
    tamper(f"UPDATE {EVENTS} SET action = %s, hash = %s WHERE id = %s", [forged.action, event_hash(forged), forged.id])
    report = audit_chain_verify(organization_id=organization.id)
    assert (report.broken.seq, report.broken.event_id) == (3, str(events[2].id))
    assert "prev_hash" in report.broken.reason


def test_a_deleted_row_is_a_gap(organization):
    events = [record(organization) for _ in range(4)]
    tamper(f"DELETE FROM {EVENTS} WHERE id = %s", [events[1].id])
    report = audit_chain_verify(organization_id=organization.id)
    assert report.broken.seq == 3 and "seq 2 is missing" in report.broken.reason
    tamper(f"DELETE FROM {EVENTS} WHERE id = %s", [events[0].id])
    report = audit_chain_verify(organization_id=organization.id)
    assert report.broken.seq == 3 and "no purge checkpoint" in report.broken.reason


def test_unknown_organization_is_an_error():
    with pytest.raises(CommandError, match="No organization"):
        call_command("verify_audit_chain", "--org", "nope")


def test_the_command_exits_non_zero(organization, monkeypatch):
    """CommandError is what makes manage.py exit 1; check that path end to end."""
    from django.core.management import ManagementUtility
    from django.db import connections

    monkeypatch.setattr(connections, "close_all", lambda: None)  # keep the test's transaction open
    record(organization)
    tamper(f"UPDATE {EVENTS} SET resource_id = 'x' WHERE organization_id = %s", [organization.id])
    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", "verify_audit_chain", "--org", organization.slug]).execute()
    assert exit_info.value.code == 1
