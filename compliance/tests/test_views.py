"""The portal's audit log page and its exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from compliance.models import AuditEvent
from compliance.tests.conftest import record

pytestmark = pytest.mark.django_db


def page_url(organization, **query):
    from urllib.parse import urlencode

    url = reverse("audit:event-list", kwargs={"org_slug": organization.slug})
    return f"{url}?{urlencode(query)}" if query else url


def export_url(organization, fmt, **query):
    from urllib.parse import urlencode

    url = reverse(f"audit:event-export-{fmt}", kwargs={"org_slug": organization.slug})
    return f"{url}?{urlencode(query)}" if query else url


def body(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def test_owner_sees_the_table_and_the_nav_link(owner_client, organization, owner):
    record(organization, action="member.role_changed", actor=owner, resource_type="membership", resource_id="m-1")
    response = owner_client.get(page_url(organization))
    assert response.status_code == 200
    page = response.content.decode()
    assert "member.role_changed" in page and "owner@acme.test" in page and "m-1" in page
    assert 'href="/o/acme-dental/audit/"' in page and "Audit log" in page
    assert "Export CSV" in page and "Export JSON Lines" in page


def test_members_get_no_page_and_no_link(client, organization, member):
    client.force_login(member)
    assert client.get(page_url(organization)).status_code == 403
    assert client.get(export_url(organization, "csv")).status_code == 403
    dashboard = client.get(reverse("accounts:dashboard", kwargs={"org_slug": organization.slug})).content.decode()
    assert "/audit/" not in dashboard


def test_another_organizations_page_is_a_404(owner_client, other_organization):
    record(other_organization, action="member.removed")
    assert owner_client.get(page_url(other_organization)).status_code == 404
    assert owner_client.get(export_url(other_organization, "jsonl")).status_code == 404


def test_empty_state_explains_what_appears(client, organization, owner):
    client.force_login(owner)
    AuditEvent.objects.unscoped("test: inspects rows directly").all()  # nothing recorded for the organization yet (sign-ins are platform events)
    response = client.get(page_url(organization))
    page = response.content.decode()
    # Viewing is itself recorded, but only after the page's query ran.
    assert "No events yet" in page and "appear here" in page


def test_filters_and_their_empty_state(owner_client, organization, owner):
    record(organization, action="member.invited", resource_type="invitation", resource_id="i-1")
    record(organization, action="api_key.created", outcome="success")
    record(organization, action="api_key.rejected", outcome="denied")
    page = owner_client.get(page_url(organization, action="member.")).content.decode()
    assert "member.invited" in page and "api_key.created" not in page
    page = owner_client.get(page_url(organization, outcome="denied")).content.decode()
    assert "api_key.rejected" in page and "api_key.created" not in page
    page = owner_client.get(page_url(organization, action="billing.")).content.decode()
    assert "No events match these filters" in page


def test_invalid_filters_are_a_400_with_the_form_errors(owner_client, organization):
    response = owner_client.get(page_url(organization, ip="not-an-ip", since="2025-02-01", until="2025-01-01"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "Enter a valid IPv4 or IPv6 address" in page
    assert "Correct the filters" in page


def test_keyset_paging_next_and_previous(owner_client, organization):
    events = [record(organization, resource_type="thing", resource_id=f"r-{n:03d}") for n in range(120)]
    newest_first = [e.resource_id for e in reversed(events)]
    first = owner_client.get(page_url(organization, resource_type="thing"))
    first_page = first.context["events"]
    assert [e.resource_id for e in first_page] == newest_first[:50]
    assert first.context["page"].previous_cursor is None
    second = owner_client.get(page_url(organization, resource_type="thing", after=first.context["page"].next_cursor))
    assert [e.resource_id for e in second.context["events"]] == newest_first[50:100]
    assert "resource_type=thing&amp;after=" in second.content.decode()  # filters kept in the links
    third = owner_client.get(page_url(organization, resource_type="thing", after=second.context["page"].next_cursor))
    assert [e.resource_id for e in third.context["events"]] == newest_first[100:]
    assert third.context["page"].next_cursor is None
    back = owner_client.get(page_url(organization, resource_type="thing", before=third.context["page"].previous_cursor))
    assert [e.resource_id for e in back.context["events"]] == newest_first[50:100]
    garbage = owner_client.get(page_url(organization, resource_type="thing", after="!!not-a-cursor"))
    assert [e.resource_id for e in garbage.context["events"]] == newest_first[:50]


def test_viewing_is_recorded_once_per_filter_set(owner_client, organization, owner):
    record(organization)
    owner_client.get(page_url(organization))
    owner_client.get(page_url(organization))  # a reload
    owner_client.get(page_url(organization, action="member."))
    viewed = list(AuditEvent.objects.for_org(organization).filter(action="audit.viewed").order_by("seq"))
    assert len(viewed) == 2
    assert viewed[0].actor_id == owner.id and viewed[0].metadata == {"filters": {}, "via": "portal"}
    assert viewed[1].metadata["filters"] == {"action": "member."}


def test_csv_export_streams_the_filtered_events_and_is_recorded(owner_client, organization, owner):
    record(organization, action="member.invited", metadata={"email": "new@acme.test"})
    record(organization, action="member.removed", resource_type="membership", resource_id="=HYPERLINK(\"x\")")
    record(organization, action="api_key.created")
    response = owner_client.get(export_url(organization, "csv", action="member."))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-log-acme-dental-')
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert [r["action"] for r in rows] == ["member.removed", "member.invited"]
    assert rows[0]["resource_id"] == "'=HYPERLINK(\"x\")"  # never a formula in a spreadsheet
    assert json.loads(rows[1]["metadata"]) == {"email": "new@acme.test"}
    exported = AuditEvent.objects.for_org(organization).get(action="audit.exported")
    assert exported.metadata == {"filters": {"action": "member."}, "format": "csv"} and exported.actor_id == owner.id


def test_jsonl_export_matches_the_api_shape(owner_client, organization, api_client, owner):
    from compliance.tests.conftest import jwt_for

    record(organization, action="member.invited", changes={"role": {"before": None, "after": "admin"}})
    response = owner_client.get(export_url(organization, "jsonl", action="member.invited"))
    assert response["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in body(response).splitlines()]
    assert len(lines) == 1 and lines[0]["changes"] == {"role": {"before": None, "after": "admin"}}
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {jwt_for(owner, organization)}")
    item = api_client.get("/api/v1/audit-events", {"action": "member.invited"}).json()["results"][0]
    assert set(item) == set(lines[0])
    assert item["hash"] == lines[0]["hash"] and item["actor"] == lines[0]["actor"]


def test_export_reads_in_keyset_batches(owner_client, organization, monkeypatch):
    from compliance import selectors

    for n in range(7):
        record(organization, metadata={"n": n})
    monkeypatch.setattr(selectors, "EXPORT_BATCH_SIZE", 3)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = owner_client.get(export_url(organization, "jsonl", action="member.invited"))
    with CaptureQueriesContext(connection) as queries:
        lines = body(response).splitlines()
    assert len(lines) == 7
    selects = [q["sql"] for q in queries.captured_queries if "compliance_auditevent" in q["sql"]]
    assert len(selects) == 3  # 3 + 3 + 1 rows, each batch after the last row of the one before
    assert all("OFFSET" not in sql for sql in selects)
    assert all("LIMIT 3" in sql for sql in selects)


def test_date_range_filter_includes_the_whole_last_day(owner_client, organization):
    event = record(organization)
    today = timezone.now().date()
    page = owner_client.get(page_url(organization, since=str(today), until=str(today))).content.decode()
    assert str(event.id) in page
    page = owner_client.get(page_url(organization, until=str(today - timedelta(days=1)))).content.decode()
    assert str(event.id) not in page


@pytest.mark.django_db(transaction=True)
async def test_export_streams_under_asgi_without_buffering(async_client, organization, owner):
    from asgiref.sync import sync_to_async

    for n in range(3):
        await sync_to_async(record)(organization, metadata={"n": n})
    await async_client.aforce_login(owner)
    response = await async_client.get(export_url(organization, "csv"))
    assert response.status_code == 200 and response.is_async
    chunks = [chunk async for chunk in response.streaming_content]
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert len([r for r in rows if r["action"] == "member.invited"]) == 3
    from django.db import connections

    await sync_to_async(connections.close_all)()  # the worker thread's connection, so the test database can go
