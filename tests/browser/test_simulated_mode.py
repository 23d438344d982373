"""Simulated mode as a newcomer meets it in a real browser: the demo data (`make run` loads it), the
Twilio stand-in on autopilot (it plays every call out by itself, as in `make run`), a real Celery worker
running the post-call pipeline against the Deepgram and OpenAI stand-ins.

The demo owner buys a number, gives it the demo agent, places a call from the portal to a number the
page suggests inside calling hours, watches the call ring and complete on its page, and sees the
recording (playable), the transcript with speakers and times, and the summary appear there, all
without reloading the page.
"""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command

from accounts.management.commands.seed_demo import DEMO_PASSWORD
from accounts.models import Organization
from jagcall.kernel.context_processors import SIMULATED_NOTICE
from telephony.models import Call, CallAnalysis, PhoneNumber
from telephony.tests.test_pipeline import pipeline_worker  # noqa: F401 (a fixture: the real worker)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

OWNER = "owner@acme-dental.test"


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_newcomer_buys_a_number_places_a_call_and_reads_what_it_left(
    asgi_live_server, browser, shot, settings, twilio_standin, pipeline_worker  # noqa: F811
):
    base = asgi_live_server
    settings.SIMULATED_PROVIDERS = True
    settings.PUBLIC_BASE_URL = base  # the stand-in posts its signed callbacks to the live server
    # As in `make run`, every call plays out by itself; faster here, with the same 30-second conversation.
    twilio_standin.autopilot = True
    twilio_standin.autopilot_delay, twilio_standin.autopilot_talk = 1.5, 1.0
    twilio_standin.autopilot_duration = 30
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    organization = Organization.objects.get(slug="acme-dental")
    org = f"{base}/o/acme-dental"

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, base, OWNER, DEMO_PASSWORD)
        page.wait_for_url(f"{org}/")
        assert page.get_by_text(SIMULATED_NOTICE).is_visible()

        # The demo agent is ready.
        page.locator("nav.org-nav").get_by_role("link", name="Agents").click()
        page.get_by_role("link", name="Front desk").first.wait_for()

        # Buy a number and let the demo agent answer it.
        page.locator("nav.org-nav").get_by_role("link", name="Numbers").click()
        page.wait_for_url(f"{org}/numbers/")
        assert page.get_by_text(SIMULATED_NOTICE).is_visible()
        page.get_by_label("Area code").fill("415")
        page.get_by_role("button", name="Search").click()
        offer = page.locator("table.number-results tbody tr").first
        number = offer.get_attribute("data-number")
        offer.get_by_role("button", name=re.compile(r"^Buy ")).click()
        page.get_by_text(f"{number} is yours").wait_for()
        row = page.locator(f"tr[data-number='{number}']")
        row.get_by_label(f"Agent answering {number}").select_option(label="Front desk")
        row.get_by_role("button", name="Save").click()
        page.get_by_text(f"Front desk now answers {number}").wait_for()
        assert PhoneNumber.objects.for_org(organization).get().agent.name == "Front desk"

        # Calls -> Place a call: the page suggests numbers that calling hours allow right now.
        page.locator("nav.org-nav").get_by_role("link", name="Calls").click()
        page.wait_for_url(f"{org}/calls/")
        page.get_by_role("link", name="Place a call").click()
        page.wait_for_url(f"{org}/calls/new/")
        assert page.get_by_text(SIMULATED_NOTICE).is_visible()
        suggestion = page.locator("[data-example-destination]").first
        destination = suggestion.get_attribute("data-example-destination")
        shot(page, "simulated-place-call")
        suggestion.click()
        page.wait_for_url(re.compile(r".*/calls/new/\?to="))
        assert page.get_by_label("Destination").input_value() == destination
        page.get_by_label("Agent").select_option(label="Front desk")
        page.get_by_role("button", name="Place the call").click()

        # The call's page follows it live: it rings, is answered, completes.
        page.wait_for_url(re.compile(rf"{org}/calls/[0-9a-f-]{{36}}/$"))
        call = Call.objects.for_org(organization).get()
        assert call.to_number == destination and call.placed_by == OWNER
        page.locator("[data-calls-live-status][data-state='live']").wait_for()
        status = page.locator("#call-facts [data-call-status]")
        status.and_(page.locator("[data-call-status='ringing']")).wait_for(timeout=15000)
        shot(page, "simulated-call-ringing")
        status.and_(page.locator("[data-call-status='completed']")).wait_for(timeout=15000)
        assert page.locator("[data-call-duration]").inner_text() == "30 s"

        # What the call left appears without a reload: the recording, the summary, the transcript.
        post_call = page.locator("[data-post-call]")
        post_call.get_by_role("heading", name="Transcript", exact=True).wait_for(timeout=30000)
        post_call.get_by_role("heading", name="Summary", exact=True).wait_for(timeout=15000)
        assert not post_call.locator("[data-post-call-waiting]").count()
        shot(page, "simulated-call-completed")

        audio = post_call.locator("audio")
        assert audio.get_attribute("src") == f"/o/acme-dental/calls/{call.id}/recording"
        # Playable: the browser reads the stored (decrypted) recording's length.
        page.wait_for_function("document.querySelector('[data-post-call] audio').readyState >= 1", timeout=15000)
        assert round(audio.evaluate("el => el.duration")) == 30

        lines = post_call.locator("ol.transcript li")
        assert lines.count() >= 4
        assert lines.nth(0).locator("time").inner_text() == "00:00"
        assert re.fullmatch(r"\d\d:\d\d", lines.nth(1).locator("time").inner_text())
        speakers = {lines.nth(i).locator("strong").inner_text() for i in range(lines.count())}
        assert speakers == {"Speaker 1", "Speaker 2"}

        analysis = CallAnalysis.objects.for_org(organization).get(call=call)
        assert post_call.locator(".post-call-summary").inner_text() == analysis.summary
        assert analysis.summary.startswith("A call of ") and "Speaker 2 said" in analysis.summary
        field = post_call.locator(".post-call-fields")
        assert field.locator("dt").inner_text() == "appointment_requested"
        assert field.locator("dd").inner_text() == "yes"

        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded
    finally:
        context.close()
