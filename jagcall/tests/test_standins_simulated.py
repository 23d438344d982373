"""Simulated mode's start_all(): every stand-in up, answering the provider clients that simulated
mode builds (no keys set: the simulated credentials)."""

from __future__ import annotations

import openai
import pytest

from jagcall.kernel.providers import (
    anthropic_client,
    deepgram_client,
    elevenlabs_client,
    openai_client,
    twilio_client,
)
from jagcall.kernel.standins.audio import wav_bytes
from jagcall.kernel.standins.simulated import start_all
from jagcall.settings.providers import _provider_base_urls


@pytest.fixture
def simulated(settings):
    providers = start_all()
    settings.SIMULATED_PROVIDERS = True
    settings.PROVIDER_BASE_URLS = dict(providers)
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
                 "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY", "STRIPE_SECRET_KEY"):  # fmt: skip
        setattr(settings, name, "")
    yield providers
    providers.stop()


def test_start_all_answers_the_simulated_mode_clients(simulated):
    assert set(simulated) == {"twilio", "deepgram", "openai", "anthropic", "elevenlabs", "stripe"}
    assert all(url.startswith("http://127.0.0.1:") for url in simulated.values())
    env = simulated.environment()
    assert env["SIMULATED_PROVIDERS"] == "true"
    assert _provider_base_urls(env["PROVIDER_BASE_URLS"].split(",")) == dict(simulated)

    assert twilio_client().api.v2010.accounts(simulated.twilio.account_sid).fetch().status == "active"
    reply = openai_client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content
    message = anthropic_client().messages.create(
        model="claude-haiku-4-5", max_tokens=32, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content[0].text
    assert deepgram_client().listen.v1.media.transcribe_file(request=wav_bytes()).results.channels
    assert elevenlabs_client().voices.get_all().voices


def test_twilio_is_on_autopilot(simulated):
    assert simulated.twilio.autopilot is True
    assert simulated.twilio.autopilot_talk > simulated.twilio.autopilot_delay > 0  # a pace a person can follow
    simulated.twilio.autopilot_delay = simulated.twilio.autopilot_talk = 0.01
    client = twilio_client()
    number = client.incoming_phone_numbers.create(area_code="415")
    call = client.calls.create(to="+12125550199", from_=number.phone_number, twiml="<Response/>")
    simulated.twilio.settle()
    assert client.calls(call.sid).fetch().status == "completed"


def test_stop_closes_every_port(simulated):
    urls = dict(simulated)
    simulated.stop()
    for url in urls.values():
        with pytest.raises(openai.APIConnectionError):
            openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=2).models.list()


def test_a_fresh_twilio_is_given_back_what_the_database_holds(simulated):
    """`make run` restarts the stand-ins; subaccounts and numbers from the database answer again."""
    sid, token = "AC" + "1" * 32, "restored-subaccount-token"
    number_sid = "PN" + "2" * 32
    simulated.restore_twilio(
        accounts=[(sid, token, "Acme Dental")],
        numbers=[(number_sid, sid, "+14155550100", "http://127.0.0.1:8000/hooks/twilio/voice/",
                  "http://127.0.0.1:8000/hooks/twilio/status/", "http://127.0.0.1:8000/hooks/twilio/sms/")],
    )

    client = twilio_client(sid, token)
    assert client.api.v2010.accounts(sid).fetch().friendly_name == "Acme Dental"
    number = client.api.v2010.accounts(sid).incoming_phone_numbers(number_sid).fetch()
    assert number.phone_number == "+14155550100"
    assert number.voice_url == "http://127.0.0.1:8000/hooks/twilio/voice/"
    assert number.sms_url == "http://127.0.0.1:8000/hooks/twilio/sms/"
    # The platform account still opens its subaccount, as at Twilio.
    assert twilio_client().api.v2010.accounts(sid).fetch().status == "active"


@pytest.mark.django_db
def test_a_fresh_stripe_stand_in_is_given_back_the_customers_and_subscriptions(simulated):
    from billing.services.prices import prices_sync
    from billing.services.stripe_api import base_lookup_key, metered_lookup_key
    from jagcall.kernel.providers import stripe_client

    prices = prices_sync()
    keys = [base_lookup_key("pro", "year"), metered_lookup_key("pro", "call_minutes", "year")]
    simulated.restore_stripe(
        customers=[("cus_Earlier", "Acme Dental", "", {"organization_id": "7"})],
        subscriptions=[("sub_Earlier", "cus_Earlier", [prices[key] for key in keys], "past_due", {"organization_id": "7"}),
                       ("sub_Orphan", "cus_Unknown", [prices[keys[0]]], "active", {})],
    )
    stripe = stripe_client()
    assert stripe.v1.customers.retrieve("cus_Earlier").name == "Acme Dental"
    subscription = stripe.v1.subscriptions.retrieve("sub_Earlier")
    assert subscription.status == "past_due" and subscription.customer == "cus_Earlier"
    assert sorted(item.price.lookup_key for item in subscription["items"].data) == sorted(keys)
    assert all(item.subscription == "sub_Earlier" for item in subscription["items"].data)
    assert "sub_Orphan" not in simulated.stripe.subscriptions  # its customer is unknown
