"""audit_record: who, from where, what changed (redacted), and the hash chain it appends to."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from django.db import connection, transaction

from accounts.tests.factories import UserFactory
from compliance.actors import Actor
from compliance.chain import GENESIS_HASH, REDACTED, event_hash
from compliance.models import ActorType, AuditEvent, Outcome
from compliance.services import audit_changes, audit_record, audit_snapshot
from compliance.tests.conftest import api_key_for, record

pytestmark = pytest.mark.django_db


def test_a_person_acting_in_the_portal_is_recorded_with_address_browser_and_request_id(organization, owner, rf_request):
    request = rf_request(user=owner)
    request.organization = organization
    event = audit_record(action="organization.updated", request=request)
    event.refresh_from_db()
    assert event.organization_id == organization.id  # taken from the request
    assert (event.actor_type, event.actor_id, event.actor_label, event.actor_key) == (
        ActorType.USER, owner.id, "owner@acme.test", f"user:{owner.id}",
    )
    assert event.ip == "203.0.113.7"
    assert event.user_agent == "Mozilla/5.0 (Audit test)"
    assert event.request_id == "req-12345678"
    assert event.outcome == Outcome.SUCCESS
    assert event.id.version == 7  # time-ordered


def test_an_api_key_credential_is_the_actor(organization, rf_request):
    api_key, _raw = api_key_for(organization)
    request = rf_request()
    request.user = None
    request.auth = SimpleNamespace(organization=organization, scopes=frozenset(), api_key=api_key)
    event = record(organization, request=request)
    assert event.actor_type == ActorType.API_KEY
    assert event.actor_label == f"jc_live_{api_key.prefix}"
    assert event.api_key_prefix == api_key.prefix
    assert event.actor_key == f"api_key:{api_key.prefix}"
    assert event.actor_id is None


def test_an_oauth_application_acting_for_a_person(organization, owner, rf_request):
    application = SimpleNamespace(pk=42, name="Zapier", client_id="abc")
    request = rf_request(user=owner)
    request.auth = SimpleNamespace(organization=organization, application=application, scopes=frozenset())
    event = record(organization, request=request)
    assert (event.actor_type, event.actor_label, event.actor_key) == (ActorType.OAUTH_APPLICATION, "Zapier", "oauth_application:42")
    assert event.actor_id == owner.id
    assert event.metadata["on_behalf_of"] == owner.email


def test_staff_in_the_back_office_are_support(organization, rf_request, settings):
    staff = UserFactory(email="support@jagcall.test", is_staff=True)
    event = record(organization, request=rf_request(user=staff, path=f"/{settings.ADMIN_URL}accounts/organization/"))
    assert event.actor_type == ActorType.SUPPORT
    assert record(organization, request=rf_request(user=staff)).actor_type == ActorType.USER  # in the portal: a person


def test_without_a_request_the_system_acts(organization):
    event = record(organization)
    assert (event.actor_type, event.actor_key, event.ip, event.user_agent) == (ActorType.SYSTEM, "system", None, "")


def test_anonymous_request(organization, rf_request):
    assert record(organization, request=rf_request()).actor_type == ActorType.ANONYMOUS


def test_explicit_actor_wins(organization, owner, member, rf_request):
    event = record(organization, request=rf_request(user=owner), actor=member)
    assert event.actor_id == member.id
    assert record(organization, actor=Actor.system("retention job")).actor_label == "retention job"


def test_resource_from_a_model_and_same_organization_guard(organization, other_organization, member):
    membership = member.memberships.unscoped("test: the member has one membership").get()
    event = record(organization, resource=membership)
    assert (event.resource_type, event.resource_id) == ("membership", str(membership.id))
    with pytest.raises(ValueError, match="does not belong"):
        record(other_organization, resource=membership)


@pytest.mark.parametrize("action", ["Member.Removed", "member", "member.", ".removed", "member removed", "member.re-moved"])
def test_action_must_be_resource_dot_verb(organization, action):
    with pytest.raises(ValueError, match="resource.verb"):
        record(organization, action=action)


def test_outcome_must_be_known(organization):
    with pytest.raises(ValueError):
        record(organization, outcome="maybe")


# --- change sets ---------------------------------------------------------------------


def test_model_changes_come_from_the_model_diff_and_hide_secrets(organization):
    from accounts.models import Invitation

    from accounts.tests.factories import InvitationFactory

    invitation = InvitationFactory(organization=organization, email="a@acme.test", role="member")
    before = audit_snapshot(invitation)
    invitation.role = "admin"
    invitation.token_hash = "f" * 64
    invitation.save()
    changes = audit_changes(before, invitation)
    assert changes["role"] == {"before": "member", "after": "admin"}
    assert changes["token_hash"] == {"before": REDACTED, "after": REDACTED}
    assert "email" not in changes  # unchanged
    assert "f" * 64 not in str(changes)
    created = audit_changes(None, Invitation.objects.unscoped("test: inspects rows directly").get(pk=invitation.pk), fields=["email", "role", "token_hash"])
    assert created == {
        "email": {"before": None, "after": "a@acme.test"},
        "role": {"before": None, "after": "admin"},
        "token_hash": {"before": None, "after": REDACTED},
    }


def test_encrypted_fields_are_never_decrypted_nor_recorded(organization, monkeypatch):
    from jagcall.kernel.crypto.fields import EncryptedFieldMixin
    from tests.crypto_example.models import SecretNote

    note = SecretNote(organization=organization, title="Call notes", body="the patient's diagnosis")
    note.save()
    loaded = SecretNote.objects.unscoped("test: inspects rows directly").get(pk=note.pk)

    def refuse(*args, **kwargs):
        raise AssertionError("decrypted while computing a change set")

    monkeypatch.setattr(EncryptedFieldMixin, "decrypt", refuse)
    before = audit_snapshot(loaded)
    loaded.title = "Call notes (edited)"
    loaded.body = "another secret"
    changes = audit_changes(before, loaded)
    assert changes["title"] == {"before": "Call notes", "after": "Call notes (edited)"}
    assert changes["body"] == {"before": "[encrypted]", "after": "[encrypted]"}
    assert "diagnosis" not in str(changes) and "another secret" not in str(changes)
    unchanged = audit_changes(audit_snapshot(before), before)
    assert unchanged == {}


def test_dict_changes_and_metadata_are_redacted_by_name(organization):
    changes = audit_changes(
        {"name": "Old", "webhook_secret": "s1", "password": "p"}, {"name": "New", "webhook_secret": "s2", "password": "p"}
    )
    assert changes == {"name": {"before": "Old", "after": "New"}, "webhook_secret": {"before": REDACTED, "after": REDACTED}}
    event = record(
        organization,
        changes={"api_token": {"before": "tok1", "after": "tok2"}},
        metadata={"reason": "rotation", "nested": {"client_secret": "xyz", "list": [{"password": "p"}]}},
    )
    event.refresh_from_db()
    assert event.changes == {"api_token": REDACTED}
    assert event.metadata == {"reason": "rotation", "nested": {"client_secret": REDACTED, "list": [{"password": REDACTED}]}}


def test_auditlog_itself_never_writes_a_row(organization):
    from auditlog.models import LogEntry
    from auditlog.registry import auditlog

    from accounts.tests.factories import InvitationFactory

    invitation = InvitationFactory(organization=organization)
    audit_changes(audit_snapshot(invitation), invitation)  # registers the model in auditlog's (silent) registry
    assert auditlog.contains(type(invitation))
    invitation.role = "admin"
    invitation.save()
    invitation.delete()
    UserFactory().delete()
    assert LogEntry.objects.count() == 0
    auditlog.register(type(invitation))  # even a later registration connects nothing
    InvitationFactory(organization=organization).save()
    assert LogEntry.objects.count() == 0


# --- the chain -----------------------------------------------------------------------


def test_events_chain_per_organization(organization, other_organization):
    first = record(organization)
    second = record(organization, action="member.removed")
    elsewhere = record(other_organization)
    platform = record(None, action="user.login_failed", outcome=Outcome.FAILED)
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert (elsewhere.seq, elsewhere.prev_hash) == (1, GENESIS_HASH)
    assert (platform.seq, platform.organization_id) == (1, None)
    for event in (first, second, elsewhere, platform):
        stored = AuditEvent.objects.unscoped("test: inspects rows directly").get(pk=event.pk)
        assert stored.hash == event.hash == event_hash(stored)  # what the database gives back hashes the same


def test_values_hash_the_same_after_the_jsonb_round_trip(organization):
    import datetime as dt
    from decimal import Decimal

    odd = {
        "big": 1e16, "huge": 1.5e300, "tiny": 1e-7, "third": 1 / 3, "nan": float("nan"), "neg_zero": -0.0,
        "int": 2**70, "nul": "a\x00b", "unicode": "café ✓ \U0001F600", "when": dt.datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc),
        "day": dt.date(2025, 1, 2), "money": Decimal("10.50"), "id": uuid.UUID(int=5), "set": {3, 1, 2},
        "nested": [{"b": 1, "a": [True, None]}], 7: "int key",
    }
    event = record(organization, metadata=odd, changes={"name": {"before": 1.0, "after": 10**20 + 0.0}})
    stored = AuditEvent.objects.unscoped("test: inspects rows directly").get(pk=event.pk)
    assert event_hash(stored) == stored.hash == event.hash


@pytest.mark.parametrize(
    "given,stored",
    [
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::1"),
        ("192.0.2.1", "192.0.2.1"),
        ("not an address", None),
    ],
)
def test_addresses_are_stored_as_postgresql_prints_them(organization, rf_request, given, stored):
    event = record(organization, request=rf_request(ip=given))
    loaded = AuditEvent.objects.unscoped("test: inspects rows directly").get(pk=event.pk)
    assert (str(loaded.ip) if loaded.ip else None) == stored
    assert event_hash(loaded) == loaded.hash


def test_recording_inside_a_transaction_rolls_back_with_it(organization):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            record(organization)
            raise RuntimeError("the change failed")
    assert not AuditEvent.objects.for_org(organization).exists()
    assert record(organization).seq == 1  # the rolled-back event left no gap


def test_writing_takes_the_chains_advisory_lock(organization):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        record(organization)
    sql = [q["sql"] for q in queries.captured_queries]
    assert any("pg_advisory_xact_lock" in s for s in sql)
    assert len(sql) == 2, sql  # lock + head in one round trip, then the insert


def test_a_second_event_of_a_chain_in_one_transaction_is_one_insert(organization, other_organization):
    from django.test.utils import CaptureQueriesContext

    import copy

    same_by_text = copy.copy(organization)
    same_by_text.pk = str(organization.pk)  # an instance may hold its id as text: the same chain
    with transaction.atomic():
        first = record(organization)
        with CaptureQueriesContext(connection) as queries:
            second = record(same_by_text, action="member.removed")
        sql = [q["sql"] for q in queries.captured_queries]
        assert len(sql) == 1 and sql[0].startswith("INSERT"), sql  # the lock is held: its head is the event just written
        with CaptureQueriesContext(connection) as queries:
            elsewhere = record(other_organization)
        assert len(queries.captured_queries) == 2  # another chain: its own lock and head
    assert (second.seq, second.prev_hash) == (first.seq + 1, first.hash)
    assert (elsewhere.seq, elsewhere.prev_hash) == (1, GENESIS_HASH)
    for event in (first, second):
        stored = AuditEvent.objects.unscoped("test: inspects rows directly").get(pk=event.pk)
        assert stored.hash == event_hash(stored) and stored.prev_hash == event.prev_hash


def test_an_event_rolled_back_with_its_savepoint_is_not_the_next_ones_head(organization):
    first = record(organization)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            record(organization, action="member.removed")
            raise RuntimeError("the change failed")
    after = record(organization, action="member.role_changed")
    assert (after.seq, after.prev_hash) == (first.seq + 1, first.hash)
    assert list(AuditEvent.objects.for_org(organization).order_by("seq").values_list("action", flat=True)) == [
        "member.invited", "member.role_changed",
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_new_transaction_reads_the_head_again(organization):
    """Between two transactions of this connection another one appended: the next event follows it."""
    import threading

    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    mine = record(organization)

    def other_connection():
        try:
            record(organization, action="member.removed")
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_connection)
    thread.start()
    thread.join(timeout=30)
    theirs = AuditEvent.objects.for_org(organization).get(action="member.removed")
    with CaptureQueriesContext(connection) as queries:
        after = record(organization, action="member.role_changed")
    assert any("pg_advisory_xact_lock" in q["sql"] for q in queries.captured_queries)
    assert (mine.seq, theirs.seq, after.seq) == (1, 2, 3) and after.prev_hash == theirs.hash
