"""Simulated mode's start_all(): every stand-in up, and the environment that points the SDKs at them."""

from __future__ import annotations

import anthropic
import openai
import pytest
from elevenlabs import ElevenLabs

from jagcall.kernel.standins.simulated import start_all
from jagcall.settings.providers import _provider_base_urls


@pytest.fixture
def simulated():
    providers = start_all()
    yield providers
    providers.stop()


def test_start_all_runs_every_stand_in_with_twilio_on_autopilot(simulated):
    assert set(simulated) == {"twilio", "deepgram", "openai", "anthropic", "elevenlabs"}
    assert all(url.startswith("http://127.0.0.1:") for url in simulated.values())
    assert simulated.twilio.autopilot is True and simulated["twilio"] == simulated.twilio.base_url

    env = simulated.environment()
    assert env["SIMULATED_PROVIDERS"] == "true"
    assert _provider_base_urls(env["PROVIDER_BASE_URLS"].split(",")) == dict(simulated)
    assert env["TWILIO_ACCOUNT_SID"] == simulated.twilio.account_sid

    # The credentials in the environment open the stand-ins through the SDKs.
    reply = openai.OpenAI(base_url=simulated["openai"] + "/v1", api_key=env["OPENAI_API_KEY"]).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.choices[0].message.content
    message = anthropic.Anthropic(base_url=simulated["anthropic"], api_key=env["ANTHROPIC_API_KEY"]).messages.create(
        model="claude-haiku-4-5", max_tokens=32, messages=[{"role": "user", "content": "Hello"}]
    )
    assert message.content[0].text
    assert ElevenLabs(base_url=simulated["elevenlabs"], api_key=env["ELEVENLABS_API_KEY"]).voices.get_all().voices


def test_stop_closes_every_port(simulated):
    urls = dict(simulated)
    simulated.stop()
    for url in urls.values():
        with pytest.raises(openai.APIConnectionError):
            openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=2).models.list()
