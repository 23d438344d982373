"""The audit log in a real browser: an owner changes things, finds them in the log,
filters by action and downloads exactly the filtered events as CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone

import pytest

from accounts.models import Membership
from compliance.exports import CSV_COLUMNS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    # Static files reach the live server through WhiteNoise, whose file iterators are synchronous.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def event_rows(page) -> list[dict[str, str]]:
    """The events table as the person reads it: one dict per row, keyed by column heading."""
    rows = []
    for row in page.locator("table.audit-events tbody tr").all():
        cells = row.locator(":scope > th, :scope > td").all()
        time_, actor, action, resource, outcome, ip = (cell.inner_text().strip() for cell in cells)
        rows.append(
            {
                "time": time_,
                "actor": actor,
                "action": row.locator("td[data-label='Action'] > code").inner_text().strip(),
                "resource": resource,
                "outcome": outcome,
                "ip": ip,
            }
        )
    return rows


def test_owner_finds_filters_and_exports_changes_in_the_audit_log(
    asgi_live_server, browser, shot, organization, owner, member, password
):
    base = asgi_live_server
    slug = organization.slug
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, password)
        page.wait_for_url(f"{base}/o/{slug}/")
        org_nav = page.locator("nav.org-nav")
        started = datetime.now(timezone.utc).replace(microsecond=0)

        # Two recorded changes: rename the organization, make the member an admin.
        org_nav.get_by_role("link", name="Settings").click()
        page.wait_for_url(f"{base}/o/{slug}/settings/")
        page.get_by_label("Organization name").fill("Acme Family Dental")
        page.get_by_role("button", name="Save changes").click()
        page.get_by_text("Settings saved.").wait_for()

        org_nav.get_by_role("link", name="Team").click()
        page.wait_for_url(f"{base}/o/{slug}/team/")
        membership = Membership.objects.for_org(organization).get(user=member)
        row = page.locator(f"#member-{membership.id}")
        row.get_by_label(f"Role for {member.email}").select_option("admin")
        row.get_by_role("button", name="Save role").click()
        page.get_by_text(f"{member.email} now has the Admin role.").wait_for()
        assert Membership.objects.for_org(organization).get(user=member).role == "admin"

        # The audit log, from the navigation: both changes, with who, when and from where.
        org_nav.get_by_role("link", name="Audit log").click()
        page.wait_for_url(f"{base}/o/{slug}/audit/")
        page.locator("table.audit-events").wait_for()
        # All six columns, IP address included, fit the page: no sideways scrolling to find where it came from.
        assert page.locator(".table-wrap").evaluate("wrap => wrap.scrollWidth <= wrap.clientWidth")
        rows = event_rows(page)
        by_action = {r["action"]: r for r in rows}
        assert {"organization.updated", "member.role_changed"} <= set(by_action), rows
        for action in ("organization.updated", "member.role_changed"):
            event = by_action[action]
            assert event["actor"].startswith(owner.email), event
            assert event["ip"] == "127.0.0.1", event
            assert event["outcome"] == "Success", event
            shown = datetime.strptime(event["time"], "%d %b %Y, %H:%M:%S").replace(tzinfo=timezone.utc)
            assert started - timedelta(seconds=5) <= shown <= datetime.now(timezone.utc) + timedelta(seconds=5), event
        assert by_action["member.role_changed"]["resource"].startswith("membership")
        # The details say what changed, in the person's words.
        role_row = page.locator("table.audit-events tbody tr", has=page.locator("code", has_text="member.role_changed"))
        role_row.get_by_text("Details").first.click()
        assert "role: member → admin" in role_row.inner_text()
        shot(page, "audit-log")

        # Filter by action prefix: only the team's events remain.
        page.get_by_text("Filter events").click()
        page.get_by_label("Action").fill("member.")
        page.get_by_role("button", name="Apply filters").click()
        page.wait_for_url(re.compile(r".*/audit/\?.*action=member\..*"))
        page.get_by_text("(filters on)").wait_for()
        filtered = event_rows(page)
        assert filtered, "the filter hid every event"
        assert all(r["action"].startswith("member.") for r in filtered), filtered
        assert [r["action"] for r in filtered] == ["member.role_changed"]
        assert page.get_by_label("Action").input_value() == "member."
        shot(page, "audit-log-filtered")

        # The CSV export carries the same filter: a header, then the filtered events only.
        export = page.get_by_role("link", name="Export CSV")
        assert "action=member." in export.get_attribute("href")
        with page.expect_download() as info:
            export.click()
        download = info.value
        assert re.fullmatch(rf"audit-log-{slug}-\d{{8}}-\d{{6}}\.csv", download.suggested_filename)
        with open(download.path(), encoding="utf-8", newline="") as handle:
            exported = list(csv.reader(io.StringIO(handle.read())))
        assert tuple(exported[0]) == CSV_COLUMNS
        records = [dict(zip(exported[0], line)) for line in exported[1:]]
        assert [r["action"] for r in records] == [r["action"] for r in filtered]
        role_change = records[0]
        assert role_change["actor"] == owner.email
        assert role_change["ip"] == "127.0.0.1"
        assert role_change["resource_type"] == "membership" and role_change["resource_id"] == str(membership.id)
        assert "organization.updated" not in {r["action"] for r in records}
    finally:
        context.close()
