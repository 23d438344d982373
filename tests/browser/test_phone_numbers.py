"""Phone numbers in a real browser, against the Twilio stand-in: an owner searches and buys a number,
lets an agent answer it, then releases it."""

from __future__ import annotations

import re

import pytest

from telephony.models import PhoneNumber
from telephony.tests.factories import AgentFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_owner_buys_assigns_and_releases_a_number(asgi_live_server, browser, shot, organization, owner, password, twilio_standin):
    base, slug = asgi_live_server, organization.slug
    AgentFactory(organization=organization, name="Front desk")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, password)
        page.wait_for_url(f"{base}/o/{slug}/")
        page.locator("nav.org-nav").get_by_role("link", name="Numbers").click()
        page.wait_for_url(f"{base}/o/{slug}/numbers/")
        page.get_by_role("heading", name="Buy your first number").wait_for()

        page.get_by_label("Area code").fill("415")
        page.get_by_role("button", name="Search").click()
        first = page.locator("table.number-results tbody tr").first
        offered = first.get_attribute("data-number")
        assert offered and offered.startswith("+1415")
        shot(page, "numbers-search-results")
        first.get_by_role("button", name=re.compile(r"^Buy ")).click()
        page.get_by_text(f"{offered} is yours").wait_for()

        number = PhoneNumber.objects.for_org(organization).get()
        assert number.number == offered
        assert twilio_standin.numbers[number.twilio_sid].settings["VoiceUrl"].endswith("/hooks/twilio/voice/")

        row = page.locator(f"tr[data-number='{offered}']")
        row.get_by_label(f"Agent answering {offered}").select_option(label="Front desk")
        row.get_by_role("button", name="Save").click()
        page.get_by_text(f"Front desk now answers {offered}").wait_for()
        number.refresh_from_db()
        assert number.agent.name == "Front desk"
        shot(page, "numbers-assigned")

        page.once("dialog", lambda dialog: dialog.accept())
        page.locator(f"tr[data-number='{offered}']").get_by_role("button", name="Release").click()
        page.get_by_text(f"{offered} was released").wait_for()
        number.refresh_from_db()
        assert number.released_at is not None and number.agent is None
        assert number.twilio_sid not in twilio_standin.numbers
        page.get_by_role("heading", name="Buy your first number").wait_for()
    finally:
        context.close()
