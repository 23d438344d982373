"""Agents in a real browser: an owner with no agent yet creates the first one, with an ElevenLabs
voice and post-call analysis fields added in the editor (one of them an enum whose options appear
when its type is chosen), and finds it listed."""

from __future__ import annotations

import pytest

from accounts.permissions import Role
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from telephony.models import Agent

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


def test_owner_creates_the_first_agent_with_analysis_fields(asgi_live_server, browser, shot, elevenlabs_standin):
    base = asgi_live_server
    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/harbour-dental/")

        page.get_by_role("navigation", name="Harbour Dental").get_by_role("link", name="Agents").click()
        page.wait_for_url(f"{base}/o/harbour-dental/agents/")
        page.get_by_text("An agent is an AI that answers and places your calls").wait_for()
        shot(page, "agents-empty")

        page.get_by_role("button", name="Create your first agent").click()  # a link styled as a button
        page.wait_for_url(f"{base}/o/harbour-dental/agents/new/")
        page.locator("input[name='name']").fill("Front desk")
        page.get_by_label("Instructions (system prompt)").fill(
            "You are the receptionist of Harbour Dental. Book check-ups and answer questions about opening hours."
        )
        page.get_by_label("Voice", exact=True).select_option(label="Rachel — american, female, calm")
        page.get_by_label("End the call").check()

        # The editor starts with one empty analysis field; a second is added with the button.
        page.locator("input[name='analysis-0-name']").fill("appointment_requested")
        page.locator("select[name='analysis-0-type']").select_option("boolean")
        page.locator("input[name='analysis-0-description']").fill("Did the caller ask to book an appointment?")
        options = page.locator("[data-analysis-row]").nth(0).locator("[data-analysis-options]")
        assert options.is_hidden()
        page.get_by_role("button", name="Add a field").click()
        second = page.locator("[data-analysis-row]").nth(1)
        second.locator("input[name='analysis-1-name']").fill("patient_kind")
        second.locator("select[name='analysis-1-type']").select_option("enum")
        second.locator("[data-analysis-options]").wait_for(state="visible")  # shown for "One of a list" only
        second.locator("input[name='analysis-1-options']").fill("new, existing")
        shot(page, "agent-editor-filled")

        page.get_by_role("button", name="Create agent").click()
        page.get_by_text("Agent “Front desk” created").wait_for()
        shot(page, "agent-created")

        agent = Agent.objects.for_org(organization).get()
        assert agent.voice_name == "Rachel" and agent.tools == [{"type": "end_call"}]
        assert agent.analysis_schema == [
            {
                "name": "appointment_requested",
                "type": "boolean",
                "description": "Did the caller ask to book an appointment?",
            },
            {"name": "patient_kind", "type": "enum", "description": "", "options": ["new", "existing"]},
        ]
        assert page.locator("input[name='analysis-1-name']").input_value() == "patient_kind"

        page.get_by_role("link", name="Agents").first.click()
        page.wait_for_url(f"{base}/o/harbour-dental/agents/")
        row = page.locator("table.agents tbody tr")
        assert row.count() == 1 and "Front desk" in row.inner_text() and "Rachel" in row.inner_text()
        shot(page, "agents-list")
    finally:
        context.close()
