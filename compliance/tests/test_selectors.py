"""Filters and keyset pages of the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest

from django.utils import timezone

from accounts.tests.factories import UserFactory
from compliance.actors import Actor
from compliance.forms import AuditEventFilterSet
from compliance.models import AuditEvent
from compliance.selectors import audit_event_iter, audit_event_list, audit_event_page, decode_cursor, encode_cursor
from compliance.tests.conftest import api_key_for, record
from compliance.tests.superuser import tamper

pytestmark = pytest.mark.django_db


def ids(queryset):
    return [e.resource_id for e in queryset]


def test_actor_filter_by_person_key_or_text(organization, owner, rf_request):
    api_key, _raw = api_key_for(organization)
    record(organization, actor=owner, resource_id="by-owner")
    record(organization, actor=api_key, resource_id="by-key")
    record(organization, actor=UserFactory(email="dr.smith@smile.test"), resource_id="by-smith")
    assert ids(audit_event_list(organization=organization, filters={"actor": str(owner.id)})) == ["by-owner"]
    assert ids(audit_event_list(organization=organization, filters={"actor": f"jc_live_{api_key.prefix}"})) == ["by-key"]
    assert ids(audit_event_list(organization=organization, filters={"actor": f"jc_live_{api_key.prefix}_secretpart"})) == ["by-key"]
    assert ids(audit_event_list(organization=organization, filters={"actor": "SMILE.test"})) == ["by-smith"]
    assert ids(audit_event_list(organization=organization, filters={"actor": "system"})) == [str(api_key.id)]  # api_key.created


def test_action_resource_outcome_ip_and_dates(organization, rf_request):
    record(organization, action="member.invited", resource_type="invitation", resource_id="a", request=rf_request(ip="2001:db8::7"))
    record(organization, action="member.role_changed", resource_type="membership", resource_id="b", outcome="denied")
    record(organization, action="members.exported", resource_type="report", resource_id="c")

    def run(**filters):
        return ids(audit_event_list(organization=organization, filters=filters))

    assert run(action="member.") == ["b", "a"]  # not "members."
    assert run(action="member.*") == ["b", "a"]
    assert run(action="member.invited") == ["a"]
    assert run(resource_type="membership", resource_id="b") == ["b"]
    assert run(outcome="denied") == ["b"]
    assert run(ip="2001:DB8:0::7") == ["a"]
    now = timezone.now()
    assert run(since=now - timedelta(minutes=5), until=now + timedelta(minutes=5)) == ["c", "b", "a"]
    assert run(since=now + timedelta(minutes=5)) == []


def test_the_filterset_parses_portal_and_api_input(organization):
    filterset = AuditEventFilterSet({"action": "member.*", "since": "2025-01-31", "until": "2025-01-31", "outcome": "failed"})
    assert filterset.is_valid(), filterset.errors
    cleaned = filterset.cleaned_filters()
    assert cleaned["since"].isoformat() == "2025-01-31T00:00:00+00:00"
    assert cleaned["until"].isoformat() == "2025-02-01T00:00:00+00:00"  # the whole day
    assert not AuditEventFilterSet({"action": "DROP TABLE"}).is_valid()
    assert not AuditEventFilterSet({"since": "2025-02-01", "until": "2025-01-01"}).is_valid()
    record(organization, outcome="failed")
    queryset = AuditEventFilterSet({"outcome": "failed"}, queryset=AuditEvent.objects.for_org(organization)).qs
    assert queryset.count() == 1


def test_keyset_pages_are_exact_even_when_times_tie(organization):
    events = [record(organization, resource_id=f"{n:02d}") for n in range(9)]
    # Same instant for several rows: the id breaks the tie, so no row is skipped or repeated.
    same = timezone.now()
    tamper("UPDATE compliance_auditevent SET occurred_at = %s WHERE id = ANY(%s)", [same, [e.id for e in events[2:7]]])
    queryset = audit_event_list(organization=organization)
    expected = [e.resource_id for e in queryset]
    seen, cursor_value = [], None
    while True:
        page = audit_event_page(queryset=queryset, after=cursor_value, limit=2)
        seen += [e.resource_id for e in page.events]
        if not page.next_cursor:
            break
        cursor_value = page.next_cursor
    assert seen == expected and len(seen) == 9
    assert [e.resource_id for e in audit_event_iter(queryset=queryset, batch_size=2)] == expected
    # And backwards from the last page to the first.
    last_page = [e.resource_id for e in page.events]
    back, cursor_value = [], page.previous_cursor
    while cursor_value:
        page = audit_event_page(queryset=queryset, before=cursor_value, limit=2)
        back = [e.resource_id for e in page.events] + back
        cursor_value = page.previous_cursor
    assert back + last_page == expected


def test_cursors_round_trip_and_refuse_garbage(organization):
    event = record(organization)
    assert decode_cursor(encode_cursor(event)) == (event.occurred_at, event.id)
    for bad in ("", "abc", "!!!", encode_cursor(event)[:-4]):
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_lists_are_scoped(organization, other_organization):
    record(other_organization, resource_id="theirs")
    record(None, resource_id="platform")
    assert ids(audit_event_list(organization=organization)) == []
    with pytest.raises(ValueError):
        audit_event_list(organization=None)


def test_explicit_actor_object(organization):
    event = record(organization, actor=Actor.anonymous("typed@x.test"))
    assert event.actor_type == "anonymous"
