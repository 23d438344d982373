"""The portal's calls list and call page: filters, pages of 50, masked numbers, timeline, other organizations' 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from telephony.models import Call, CallDirection, CallEvent
from telephony.tests.outbound_support import make_agent

pytestmark = pytest.mark.django_db


def _call(organization, *, direction=CallDirection.INBOUND, other="+14155550111", status="completed", agent=None,
          created_at=None) -> Call:  # fmt: skip
    ours = "+14155550123"
    return Call.objects.create(
        organization=organization, direction=direction, agent=agent, status=status,
        from_number=other if direction == CallDirection.INBOUND else ours,
        to_number=ours if direction == CallDirection.INBOUND else other,
        created_at=created_at or timezone.now(),
    )  # fmt: skip


def _list(client, organization, **query):
    return client.get(reverse("telephony:call-list", kwargs={"org_slug": organization.slug}), query)


def test_an_organization_without_calls_says_what_to_do(client, organization, member):
    client.force_login(member)
    response = _list(client, organization)
    assert response.status_code == 200
    assert "No calls yet: buy a number and call it, or place a call" in response.content.decode()


def test_the_list_shows_masked_numbers_only(client, organization, member):
    agent = make_agent(organization, name="Front desk")
    _call(organization, agent=agent)
    _call(organization, direction=CallDirection.OUTBOUND, other="+14155550177", status="no-answer")
    client.force_login(member)
    html = _list(client, organization).content.decode()
    assert "+1 415 ••• 0111" in html and "+1 415 ••• 0177" in html and "Front desk" in html
    assert "4155550111" not in html and "4155550177" not in html
    assert "No answer" in html and "Completed" in html


def test_filters_narrow_the_list_and_the_number_is_found_by_its_blind_index(client, organization, member):
    agent = make_agent(organization, name="Sales")
    wanted = _call(organization, other="+14155550142", agent=agent, status="busy")
    _call(organization, other="+14155550143")
    _call(organization, direction=CallDirection.OUTBOUND, other="+14155550142", status="completed")
    client.force_login(member)
    ids = lambda response: {str(row["id"]) for row in response.context["rows"]}  # noqa: E731
    assert ids(_list(client, organization, number="+1 (415) 555-0142")) == {
        str(wanted.id), *(str(c.id) for c in Call.objects.for_org(organization).filter(direction="outbound"))
    }
    assert ids(_list(client, organization, number="+14155550142", direction="inbound")) == {str(wanted.id)}
    assert ids(_list(client, organization, status="busy")) == {str(wanted.id)}
    assert ids(_list(client, organization, agent=str(agent.id))) == {str(wanted.id)}
    today = timezone.localdate()
    assert len(ids(_list(client, organization, date_from=today.isoformat(), date_to=today.isoformat()))) == 3
    assert ids(_list(client, organization, date_to=(today - timedelta(days=1)).isoformat())) == set()


def test_bad_filters_say_what_to_fix(client, organization, member):
    client.force_login(member)
    response = _list(client, organization, number="555", status="exploded")
    assert response.status_code == 400
    html = response.content.decode()
    assert "whole number with its country code" in html and "Select a valid choice" in html



@pytest.mark.parametrize("field,value", [("date_to", "9999-12-31"), ("date_from", "0001-01-01"), ("date_to", "1999-12-31")])
def test_dates_out_of_range_are_refused_at_their_field(client, organization, member, field, value):
    client.force_login(member)
    response = _list(client, organization, **{field: value})
    assert response.status_code == 400
    assert "Choose a date between 2000-01-01 and 9998-12-31." in response.content.decode()

def test_pages_of_fifty_follow_a_cursor(client, organization, member):
    start = timezone.now()
    Call.objects.bulk_create(
        [
            Call(organization=organization, direction=CallDirection.INBOUND, from_number=f"+1415555{i:04d}",
                 to_number="+14155550123", created_at=start - timedelta(minutes=i))  # fmt: skip
            for i in range(120)
        ]
    )
    client.force_login(member)
    seen, cursor, pages = [], None, 0
    while True:
        response = _list(client, organization, **({"after": cursor} if cursor else {}))
        rows = response.context["rows"]
        assert len(rows) <= 50
        seen += [row["id"] for row in rows]
        pages += 1
        cursor = response.context["page"].next_cursor
        if not cursor:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 120
    assert _list(client, organization, after="not-a-cursor").status_code == 200  # back to the newest


def test_a_call_page_shows_its_timeline(client, organization, member):
    call = _call(organization, status="completed")
    for kind in ("ringing", "in-progress", "stream.started", "completed"):
        CallEvent.objects.create(organization=organization, call=call, kind=kind)
    client.force_login(member)
    response = client.get(reverse("telephony:call-detail", kwargs={"org_slug": organization.slug, "call_id": call.id}))
    assert response.status_code == 200
    html = response.content.decode()
    for kind in ("ringing", "in-progress", "stream.started", "completed"):
        assert kind in html
    assert "+1 415 ••• 0111" in html and "4155550111" not in html


def test_another_organizations_call_is_not_found(client, organization, other_organization, member):
    theirs = _call(other_organization)
    client.force_login(member)
    url = reverse("telephony:call-detail", kwargs={"org_slug": organization.slug, "call_id": theirs.id})
    assert client.get(url).status_code == 404
    assert str(theirs.id) not in _list(client, organization).content.decode()


def test_the_live_panel_lists_calls_going_on(client, organization, member):
    ringing = _call(organization, status="ringing")
    _call(organization, status="completed")
    client.force_login(member)
    response = client.get(reverse("telephony:call-live-panel", kwargs={"org_slug": organization.slug}))
    assert [row["id"] for row in response.context["rows"]] == [str(ringing.id)]
    dashboard = client.get(reverse("accounts:dashboard", kwargs={"org_slug": organization.slug})).content.decode()
    assert reverse("telephony:call-live-panel", kwargs={"org_slug": organization.slug}) in dashboard


def test_support_sees_calls_read_only_with_masked_numbers(staff_client, organization):
    call = _call(organization)
    CallEvent.objects.create(organization=organization, call=call, kind="ringing")
    listing = staff_client.get(reverse("admin:telephony_call_changelist"))
    page = staff_client.get(reverse("admin:telephony_call_change", args=[call.id]))
    assert listing.status_code == page.status_code == 200
    for html in (listing.content.decode(), page.content.decode()):
        assert "+1 415 ••• 0111" in html and "4155550111" not in html
    assert "ringing" in page.content.decode()
