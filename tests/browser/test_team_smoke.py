"""A person's first minutes: sign in, open the dashboard, invite a colleague who joins.

Served by the real ASGI application, so the dashboard's live activity panel
runs over a real websocket and the Redis channel layer.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.core.management import call_command

from accounts.management.commands.seed_demo import DEMO_PASSWORD
from accounts.models import Organization

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_owner_invites_a_member_who_accepts_and_is_listed(asgi_live_server, browser, shot):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    # The demo's three people fill Starter's seats: on Pro there is room for the invitee.
    Organization.objects.filter(slug="acme-dental").update(plan_code="pro")
    base = asgi_live_server
    owner = browser.new_context(viewport={"width": 1280, "height": 900})
    invitee = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    try:
        page = owner.new_page()
        sign_in(page, base, "owner@acme-dental.test", DEMO_PASSWORD)
        page.wait_for_url(f"{base}/o/acme-dental/")
        assert page.get_by_role("heading", level=1).inner_text().strip() == "Acme Dental"
        shot(page, "dashboard-owner")

        page.get_by_role("link", name="Team").first.click()
        page.wait_for_url(f"{base}/o/acme-dental/team/")
        page.get_by_label("Email address").fill("new.hygienist@acme-dental.test")
        page.get_by_label("Role", exact=True).select_option("member")
        page.get_by_role("button", name="Send invitation").click()
        page.get_by_text("Invitation sent to new.hygienist@acme-dental.test").wait_for()
        shot(page, "team-invited")

        assert len(mail.outbox) == 1
        link = re.search(r"(https?://\S+/invitations/\S+/)", mail.outbox[0].body).group(1)
        assert link.startswith(base)

        # The owner watches the dashboard while the invitee joins.
        page.goto(f"{base}/o/acme-dental/")
        page.locator("[data-live-events][data-live-state='live']").wait_for(timeout=15000)

        other = invitee.new_page()
        other.goto(link)
        assert "Acme Dental" in other.content()
        other.get_by_label("Your name").fill("Nadia Hygienist")
        other.get_by_label("Choose a password").fill("floss every single day")
        shot(other, "invitation-accept-phone")
        other.get_by_role("button", name="Create account and join").click()
        other.wait_for_url(f"{base}/o/acme-dental/")
        assert "Welcome to Acme Dental" in other.content()
        shot(other, "dashboard-new-member-phone")

        page.locator("[data-live-events]").get_by_text("member.joined: new.hygienist@acme-dental.test").wait_for(timeout=15000)
        shot(page, "dashboard-live-event")

        page.goto(f"{base}/o/acme-dental/team/")
        members = page.locator("table.members")
        members.get_by_text("new.hygienist@acme-dental.test", exact=True).wait_for()
        assert "Nadia Hygienist" in members.inner_text()
        shot(page, "team-with-new-member")

        # The link is spent: opening it again says so instead of joining twice.
        other.goto(link)
        assert "already been used" in other.content()
    finally:
        owner.close()
        invitee.close()
