"""Testing an agent in a real browser: from the agent's page, the owner opens "Test this agent",
types a question, sees the reply (from the OpenAI stand-in) and the timings of that reply."""

from __future__ import annotations

import pytest

from accounts.permissions import Role
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from telephony.models import ConversationTurn
from telephony.tests.factories import AgentFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

REPLY = "On Saturdays we are open from nine in the morning until one in the afternoon."


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_owner_chats_with_the_agent_and_sees_the_reply_and_its_timings(
    asgi_live_server, browser, shot, providers
):
    base = asgi_live_server
    providers.openai.replies = [REPLY]
    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    agent = AgentFactory(organization=organization, name="Front desk")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/harbour-dental/")
        page.goto(f"{base}/o/harbour-dental/agents/{agent.id}/")
        shot(page, "agent-page-test-link")
        page.get_by_role("button", name="Test this agent").click()  # a link styled as a button
        page.wait_for_url(f"{base}/o/harbour-dental/agents/{agent.id}/test/")
        page.locator("[data-agent-test][data-state='ready']").wait_for(timeout=10000)
        page.get_by_text("Nothing said yet.").wait_for()
        shot(page, "agent-test-ready")

        page.get_by_label("Your message").fill("When are you open on Saturday?")
        page.get_by_role("button", name="Send").click()
        transcript = page.locator("[data-test-transcript]")
        transcript.locator("li[data-role='caller']").filter(has_text="When are you open on Saturday?").wait_for()
        transcript.locator("li[data-role='agent']").filter(has_text=REPLY).wait_for(timeout=15000)
        timing = page.locator("[data-test-latencies] li[data-latency-turn]")
        timing.locator("[data-latency='llm_first_token_ms']").wait_for()
        assert timing.locator("[data-latency='llm_first_token_ms']").inner_text().endswith(" ms")
        page.locator("[data-agent-test][data-state='ready']").wait_for()
        shot(page, "agent-test-chat-reply")

        turns = list(ConversationTurn.objects.for_org(organization).filter(agent=agent).order_by("index"))
        assert [t.role for t in turns] == ["caller", "agent"]
        assert all(t.call_id is None and t.session for t in turns) and turns[1].text == REPLY
    finally:
        context.close()


def test_without_a_model_account_the_page_says_what_to_set_up(asgi_live_server, browser, shot, settings):
    base = asgi_live_server
    settings.OPENAI_API_KEY = ""
    settings.SIMULATED_PROVIDERS = False
    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    agent = AgentFactory(organization=organization, name="Front desk")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/harbour-dental/")
        page.goto(f"{base}/o/harbour-dental/agents/{agent.id}/test/")
        page.locator("[data-agent-test][data-state='ready']").wait_for(timeout=10000)
        page.get_by_label("Your message").fill("Hello?")
        page.get_by_role("button", name="Send").click()
        alert = page.get_by_role("alert")
        alert.filter(has_text="needs an account with OpenAI").wait_for(timeout=10000)
        assert "Provider accounts" in alert.inner_text()
        page.get_by_text("Ready: fix what the message above says, then try again.").wait_for()
        shot(page, "agent-test-missing-key")
    finally:
        context.close()
