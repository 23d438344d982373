"""Testing an agent by voice in a real browser: Chromium's fake microphone plays a spoken question
(espeak-ng) into the page, which sends it as 16 kHz PCM through the test socket; the Deepgram
stand-in transcribes it, the OpenAI stand-in answers, the ElevenLabs stand-in speaks the answer,
and the page shows both turns, the reply's timings and the state of the conversation."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from accounts.permissions import Role
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from telephony.tests.factories import AgentFactory
from tests.browser.conftest import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

QUESTION = "What are your opening hours on Saturday?"
REPLY = "On Saturdays we are open from nine in the morning until one in the afternoon."


@pytest.fixture(scope="module")
def spoken_question(tmp_path_factory) -> Path:
    """The question as a WAV file (16 kHz, 16-bit mono), then three seconds of silence."""
    from jagcall.kernel.standins.speech import render

    path = tmp_path_factory.mktemp("voice") / "question.wav"
    pcm = render(QUESTION, sample_rate=16000, encoding="pcm16") + b"\x00\x00" * 16000 * 3
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm)
    return path


@pytest.fixture(scope="module")
def browser_with_microphone(spoken_question):
    """Chromium whose microphone plays ``spoken_question`` (allowed without asking), one per module."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium) or set CHROMIUM_PATH")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-audio-capture={spoken_question}", "--autoplay-policy=no-user-gesture-required",
            ],
        )  # fmt: skip
        yield browser
        browser.close()


def test_owner_talks_with_the_agent_in_the_browser(asgi_live_server, browser_with_microphone, shot, providers):
    base = asgi_live_server
    providers.deepgram.live_script = [QUESTION]
    providers.openai.replies = [REPLY]
    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    agent = AgentFactory(
        organization=organization, name="Front desk", first_message="", ai_disclosure_enabled=False,
        recording_disclosure_enabled=False,
    )  # fmt: skip
    context = browser_with_microphone.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{base}/auth/login/")
        page.get_by_label("Email").fill(owner.email)
        page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/o/harbour-dental/")
        page.goto(f"{base}/o/harbour-dental/agents/{agent.id}/test/")
        page.locator("[data-agent-test][data-state='ready']").wait_for(timeout=10000)

        page.get_by_role("button", name="Talk in the browser").click()
        page.locator("[data-agent-test][data-state='listening']").wait_for(timeout=10000)
        shot(page, "agent-test-voice-listening")
        transcript = page.locator("[data-test-transcript]")
        transcript.locator("li[data-role='caller']").filter(has_text=QUESTION).first.wait_for(timeout=30000)
        transcript.locator("li[data-role='agent']").filter(has_text=REPLY).wait_for(timeout=30000)
        timing = page.locator("[data-test-latencies] li[data-latency-turn]").first
        timing.locator("[data-latency='tts_first_byte_ms']").wait_for()
        timing.locator("[data-latency='first_audio_ms']").wait_for()
        shot(page, "agent-test-voice-reply")

        page.get_by_role("button", name="End the test").click()
        page.locator("[data-agent-test][data-state='ended']").wait_for(timeout=10000)
        page.get_by_text("You ended the test.").wait_for()
        assert page.get_by_role("button", name="Start a new test").is_visible()
        shot(page, "agent-test-voice-ended")
    finally:
        context.close()
