"""Simulated mode in a real browser: "Simulate a caller" on the numbers page rings the number through the
Twilio stand-in, which speaks its scripted caller (espeak-ng speech) into the call's media stream; the
agent's conversation runs for real against the Deepgram, OpenAI and ElevenLabs stand-ins; the call's page
shows the conversation as it happens, and the stored transcript after a reload.
"""

from __future__ import annotations

import re
import time

import pytest

from accounts.permissions import Role
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from jagcall.kernel.standins.deepgram import DEFAULT_LIVE_SCRIPT
from jagcall.kernel.standins.simulated import CALLER_SCRIPTS
from telephony.models import Call, ConversationTurn
from telephony.views.numbers import SIMULATED_CALL_NOTICE

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

DISCLOSURE = "You are speaking with an automated assistant."
GREETING = "Thanks for calling Harbour Dental, how can I help?"
QUESTION, SHORT_REPLY = DEFAULT_LIVE_SCRIPT[0], DEFAULT_LIVE_SCRIPT[1]


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


# Every interim line ("what the caller is saying right now") that the page showed, however briefly.
WATCH_LIVE_LINES = """
window.__liveLines = [];
new MutationObserver(function () {
  document.querySelectorAll("li[data-live-text] .turn-text").forEach(function (line) {
    var seen = line.closest("li").getAttribute("data-role") + ": " + line.textContent;
    if (window.__liveLines[window.__liveLines.length - 1] !== seen) window.__liveLines.push(seen);
  });
}).observe(document, { childList: true, subtree: true, characterData: true });
"""


def _turn_texts(page) -> list[tuple[str, str]]:
    items = page.locator("[data-call-turns] li[data-turn]")
    return [
        (items.nth(i).get_attribute("data-role"), items.nth(i).locator(".turn-text").first.inner_text())
        for i in range(items.count())
    ]


def test_a_simulated_caller_talks_with_the_agent_live_on_the_calls_page(
    asgi_live_server, browser, shot, providers, settings
):
    from telephony.tests.calls_support import line

    base = asgi_live_server
    settings.SIMULATED_PROVIDERS = True
    settings.PUBLIC_BASE_URL = base  # the stand-in rings our voice hook and streams to our websocket, served here
    twilio = providers.twilio
    twilio.caller_scripts = dict(CALLER_SCRIPTS)  # as start_all() registers them in `make run`
    twilio.autopilot, twilio.autopilot_delay = True, 1.5  # as in `make run`: the stream's end completes the call

    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    number = line(organization)
    agent = number.agent
    agent.name, agent.first_message, agent.ai_disclosure = "Front desk", GREETING, DISCLOSURE
    agent.system_prompt = "You are the receptionist of Harbour Dental."
    agent.recording_disclosure_enabled = False
    agent.save()

    started = time.monotonic()
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.add_init_script(WATCH_LIVE_LINES)
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/harbour-dental/")
        page.goto(f"{base}/o/harbour-dental/numbers/")
        row = page.locator(f"tr[data-number='{number.number}']")
        shot(page, "simulate-caller-numbers")
        row.get_by_role("button", name="Simulate a caller").click()

        page.wait_for_url(re.compile(rf"{base}/o/harbour-dental/calls/[0-9a-f-]{{36}}/$"))
        call = Call.objects.for_org(organization).get()
        assert page.get_by_text(SIMULATED_CALL_NOTICE).is_visible()
        page.locator("[data-calls-live-status][data-state='live']").wait_for(timeout=10000)

        # Live: the disclosure and the greeting, then the caller's question, each as it is stored.
        turns = page.locator("[data-call-turns] li[data-turn]")
        turns.filter(has_text=DISCLOSURE).and_(page.locator("[data-role='disclosure']")).wait_for(timeout=20000)
        turns.filter(has_text=GREETING).and_(page.locator("[data-role='agent']")).wait_for(timeout=20000)
        asked = turns.filter(has_text=QUESTION).and_(page.locator("[data-role='caller']"))
        asked.wait_for(timeout=20000)
        shot(page, "simulate-caller-live")
        # The short barge-in cuts the agent's answer: marked, with what the caller heard, and its latencies.
        turns.filter(has_text=SHORT_REPLY).and_(page.locator("[data-role='caller']")).wait_for(timeout=25000)
        interrupted = page.locator("[data-call-turns] li[data-turn][data-role='agent'].turn-interrupted")
        interrupted.first.wait_for(timeout=10000)
        assert interrupted.first.get_by_text("Interrupted — the caller heard:").is_visible()
        answered = page.locator("[data-call-turns] li[data-turn][data-role='agent'][data-first-audio-ms]").first
        answered.locator("[data-turn-latency] [data-latency='first_audio_ms']").wait_for()
        page.locator("[data-conversation-summary]:not([hidden])").wait_for()

        # The caller hangs up once the agent answered; the call completes on the page.
        page.locator("#call-facts [data-call-status='completed']").wait_for(timeout=30000)
        live = _turn_texts(page)
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # followed without a reload
        assert not page.locator("[data-call-turns] li[data-live-text]").count()
        # While the caller spoke, the interim line showed their words as they came, then gave way to the turn.
        interim = [line.removeprefix("caller: ") for line in page.evaluate("window.__liveLines")]
        assert any(text and QUESTION.startswith(text) and text != QUESTION for text in interim), interim
        shot(page, "simulate-caller-completed")

        stored = list(ConversationTurn.objects.for_org(organization).filter(call=call).order_by("index"))
        assert [t.role for t in stored[:3]] == ["disclosure", "agent", "caller"]
        assert [t.text for t in stored if t.role == "caller"] == [QUESTION, SHORT_REPLY]

        # After a reload: the stored transcript, as it appeared live.
        page.reload()
        page.locator("[data-call-turns] li[data-turn]").first.wait_for()
        assert _turn_texts(page) == live
        assert len(live) == len(stored)
        shot(page, "simulate-caller-reloaded")
    finally:
        context.close()
    assert time.monotonic() - started < 60
