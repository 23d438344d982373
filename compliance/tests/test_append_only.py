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
from compliance.tests.superuser import as_superuser, tamper

pytestmark = pytest.mark.django_db

EVENTS = AuditEvent._meta.db_table
CHECKPOINTS = AuditChainCheckpoint._meta.db_table


def refused(statement, params=None, match="append-only"):
    with pytest.raises(DatabaseError, match=match):
        with transaction.atomic():
            if callable(statement):
                statement()
            else:
                with connection.cursor() as cursor:
                    cursor.execute(statement, params or [])


def denied(statement, params=None):
    """Refused by PostgreSQL's privileges, before any trigger runs."""
    refused(statement, params, match="permission denied")


def test_the_application_connects_as_its_restricted_role():
    from django.conf import settings

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        user, superuser = cursor.fetchone()
        cursor.execute("SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = %s::regclass", [EVENTS])
        owner = cursor.fetchone()[0]
    assert user == settings.DATABASE_APP_ROLE and settings.MIGRATION_DATABASE == "owner"
    assert superuser is False and owner is False


def test_orm_update_and_delete_are_refused(organization):
    event = record(organization)
    event.action = "member.removed"
    denied(event.save)
    denied(lambda: AuditEvent.objects.unscoped("test: inspects rows directly").filter(pk=event.pk).update(outcome="failed"))
    denied(event.delete)
    denied(lambda: AuditEvent.objects.unscoped("test: inspects rows directly").all().delete())
    event.refresh_from_db()
    assert event.action == "member.invited"


def test_raw_sql_update_delete_and_truncate_are_refused(organization):
    """The application's role: no UPDATE, DELETE, TRUNCATE or ALTER TABLE on either audit table."""
    event = record(organization)
    as_superuser(
        f"INSERT INTO {CHECKPOINTS} (organization_id, seq, hash, occurred_at, events_purged, created_at) "
        "VALUES (%s, 0, %s, now(), 0, now())",
        [organization.id, "a" * 64],
    )
    denied(f"UPDATE {EVENTS} SET metadata = '{{\"x\": 1}}' WHERE id = %s", [event.id])
    denied(f"UPDATE {EVENTS} SET actor_id = NULL, action = 'member.removed' WHERE id = %s", [event.id])
    denied(f"DELETE FROM {EVENTS} WHERE id = %s", [event.id])
    denied(f"UPDATE {CHECKPOINTS} SET seq = 1")
    denied(f"DELETE FROM {CHECKPOINTS}")
    denied(f"INSERT INTO {CHECKPOINTS} (seq, hash, occurred_at, events_purged, created_at) VALUES (9, 'x', now(), 1, now())")
    # (SET CONSTRAINTS: no deferred FK checks may be pending for TRUNCATE to be tried at all.)
    for table in (EVENTS, CHECKPOINTS):
        # Even with the flag the test harness's flush uses, TRUNCATE needs a privilege the role lacks.
        denied(f"SET CONSTRAINTS ALL IMMEDIATE; SET LOCAL jagcall.audit_allow_truncate = 'on'; TRUNCATE {table}")
        for trigger in ("ALL", "audit_event_append_only" if table == EVENTS else "audit_checkpoint_append_only"):
            refused(f"SET CONSTRAINTS ALL IMMEDIATE; ALTER TABLE {table} DISABLE TRIGGER {trigger}", match="must be owner")
    refused(f"SET CONSTRAINTS ALL IMMEDIATE; ALTER TABLE {EVENTS} OWNER TO CURRENT_USER", match="must be owner")
    refused("RESET ROLE; SET ROLE postgres", match="permission denied to set role")
    assert AuditEvent.objects.unscoped("test: inspects rows directly").filter(pk=event.pk).exists()


def test_the_only_column_it_may_change_is_the_deleted_persons_and_only_to_null(organization):
    person = UserFactory(email="someone@acme.test")
    other = UserFactory(email="other@acme.test")
    event = record(organization, actor=person)
    refused(f"UPDATE {EVENTS} SET actor_id = %s WHERE id = %s", [other.pk, event.id])  # privilege yes, trigger no


def test_the_triggers_still_refuse_the_owner(organization):
    """Defence in depth: a session of the owner (here a superuser) meets the triggers too."""
    event = record(organization)
    refused(lambda: as_superuser(f"UPDATE {EVENTS} SET metadata = '{{\"x\": 1}}' WHERE id = %s", [event.id]))
    refused(lambda: as_superuser(f"DELETE FROM {EVENTS} WHERE id = %s", [event.id]))
    for table in (EVENTS, CHECKPOINTS):
        refused(lambda: as_superuser(f"SET CONSTRAINTS ALL IMMEDIATE; SET LOCAL jagcall.audit_allow_truncate = 'off'; TRUNCATE {table}"))
    assert AuditEvent.objects.unscoped("test: inspects rows directly").filter(pk=event.pk).exists()


def test_the_purge_flag_allows_the_owner_to_delete_but_never_update(organization):
    event = record(organization)
    refused(lambda: as_superuser(f"SET LOCAL jagcall.audit_purge = 'on'; UPDATE {EVENTS} SET action = 'x.y' WHERE id = %s", [event.id]))
    with transaction.atomic():
        as_superuser(f"SET LOCAL jagcall.audit_purge = 'on'; DELETE FROM {EVENTS} WHERE id = %s; SET LOCAL jagcall.audit_purge = 'off'", [event.id])
        assert not AuditEvent.objects.unscoped("test: inspects rows directly").filter(pk=event.pk).exists()
    other = record(organization)
    refused(lambda: as_superuser(f"DELETE FROM {EVENTS} WHERE id = %s", [other.id]))
    # The flag does nothing for the application's role: it has no DELETE at all.
    denied(f"SET LOCAL jagcall.audit_purge = 'on'; DELETE FROM {EVENTS} WHERE id = %s", [other.id])


def test_checkpoints_are_append_only(organization):
    as_superuser(
        f"INSERT INTO {CHECKPOINTS} (organization_id, seq, hash, occurred_at, events_purged, created_at) "
        "VALUES (%s, 5, %s, now(), 5, now())",
        [organization.id, "a" * 64],
    )
    checkpoint = AuditChainCheckpoint.objects.for_org(organization).get()
    denied(lambda: AuditChainCheckpoint.objects.unscoped("test: inspects rows directly").filter(pk=checkpoint.pk).update(seq=6))
    denied(checkpoint.delete)
    refused(lambda: as_superuser(f"UPDATE {CHECKPOINTS} SET seq = 6"))
    refused(lambda: as_superuser(f"SET LOCAL jagcall.audit_purge = 'on'; DELETE FROM {CHECKPOINTS}"))


def test_deleting_a_person_keeps_their_events_and_the_chain(organization):
    person = UserFactory(email="leaver@acme.test")
    person_id = person.pk
    event = record(organization, actor=person)
    record(organization)
    person.delete()  # Django sets actor_id to NULL: the one update the role may make and the trigger allows
    event.refresh_from_db()
    assert event.actor_id is None
    assert (event.actor_label, event.actor_key) == ("leaver@acme.test", f"user:{person_id}")
    assert audit_chain_verify(organization_id=organization.id).ok


@pytest.mark.django_db(databases=["default", "owner"])
def test_the_start_up_check_accepts_the_application_role_and_refuses_the_owner():
    from compliance.roles import app_role_problems, check_app_role, grant_app_role

    assert app_role_problems(using="default") == []
    assert check_app_role(databases=["default"]) == []
    problems = app_role_problems(using="owner")  # what connecting as the owner would allow
    assert any("superuser" in p for p in problems) and any("may DELETE audit events" in p for p in problems)
    # The application's own connection never grants (a flush between tests sends post_migrate on it).
    assert grant_app_role(using="default") is False


def test_the_start_up_check_is_an_error_with_debug_off(monkeypatch, settings):
    from compliance import roles

    settings.DEBUG = False
    monkeypatch.setattr(roles, "app_role_problems", lambda using: ["the role x is a superuser"])
    [error] = roles.check_app_role(databases=["default"])
    assert error.id == "compliance.E001" and error.level == 40 and "DATABASE_OWNER_URL" in error.hint


# --- tampering and verify_audit_chain -----------------------------------------------------


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
    forged = AuditEvent.objects.unscoped("test: inspects rows directly").get(pk=events[1].pk)
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
