"""Simulated mode: every provider stand-in running at once, for the dev server (`make run` with no
provider keys, SIMULATED_PROVIDERS).

    from jagcall.kernel.standins.simulated import start_all

    providers = start_all()          # {"twilio": "http://127.0.0.1:41234", "deepgram": ..., ...}
    providers.twilio                 # the TwilioStandIn, autopilot on: created calls play out by themselves
    providers.standins["stripe"]     # the StripeStandIn: checkout, portal and invoices on its hosted pages
    providers.environment()          # env vars for the web, worker and beat processes (below)
    providers.stop()

The stand-ins accept the credentials that the provider clients use in simulated mode
(jagcall.kernel.providers.SIMULATED_CREDENTIALS, taken when no key is set), so the dev server's
processes need no keys, only where the stand-ins listen: ``environment()`` gives
PROVIDER_BASE_URLS ("twilio=http://...,openai=http://...") and SIMULATED_PROVIDERS=true. The
stand-ins live in the process that called start_all(); the others reach them over HTTP. Twilio's
callbacks go to the URLs the application gives (PUBLIC_BASE_URL, http://127.0.0.1:8000 in
development), signed with the simulated account's auth token. Stripe's webhooks go to
PUBLIC_BASE_URL/hooks/stripe/, signed with the simulated webhook secret
(SIMULATED_CREDENTIALS["stripe_webhook"]); its checkout and customer portal are pages of the stand-in
itself, which say they are simulated and never ask for a card.

A simulated caller can ring any number the Twilio stand-in holds, with a script the Deepgram
stand-in transcribes (``CALLER_SCRIPTS``, registered on the Twilio stand-in by ``start_all``): the
portal's "Simulate a caller" rings through the stand-in's ``/stand-in/`` route (twilio/control.py),
since the web server runs in another process.

Every US local number the simulated Twilio sells, or is given back, is registered for A2P 10DLC at once
(a Messaging Service with a VERIFIED campaign, ``register_a2p``), as in an account that finished its
registration: the messaging settings' "Check now" finds it registered.

``DEBUG=true DJANGO_SETTINGS_MODULE=jagcall.settings python -m jagcall.kernel.standins.simulated``
runs them in the foreground and prints that environment as shell exports.
"""

from __future__ import annotations

import json

from django.conf import settings

from jagcall.kernel.providers import SIMULATED_CREDENTIALS
from jagcall.kernel.standins.anthropic import AnthropicStandIn
from jagcall.kernel.standins.base import StandIn
from jagcall.kernel.standins.deepgram import DEFAULT_LIVE_SCRIPT, DeepgramStandIn
from jagcall.kernel.standins.elevenlabs import ElevenLabsStandIn
from jagcall.kernel.standins.openai import OpenAIStandIn
from jagcall.kernel.standins.stripe import StripeStandIn
from jagcall.kernel.standins.twilio import BargeIn, Hangup, Say, TwilioStandIn
from jagcall.kernel.standins.twilio import numbers as twilio_numbers
from jagcall.kernel.standins.twilio.records import NUMBER_SETTINGS, Account, IncomingNumber

# North American toll-free area codes: such numbers are verified as toll-free, not registered for A2P 10DLC.
TOLL_FREE_AREA_CODES = frozenset({"800", "833", "844", "855", "866", "877", "888"})


def _us_long_code(number: str) -> bool:
    return twilio_numbers.country_of(number) == "US" and number.removeprefix("+1")[:3] not in TOLL_FREE_AREA_CODES


class SimulatedTwilio(TwilioStandIn):
    """The Twilio stand-in of simulated mode: a US local number it sells is registered for A2P 10DLC."""

    def _numbers_post(self, request, principal, account):
        reply = super()._numbers_post(request, principal, account)
        if reply.status == 201:
            number = json.loads(reply.body)["phone_number"]
            if _us_long_code(number):
                self.register_a2p(account, number, "VERIFIED")
        return reply


class SimulatedProviders(dict):
    """Provider name -> base URL of its running stand-in; the stand-ins themselves in ``standins``."""

    def __init__(self, standins: dict[str, StandIn]) -> None:
        super().__init__({name: standin.base_url for name, standin in standins.items()})
        self.standins = standins
        self.twilio: SimulatedTwilio = standins["twilio"]  # type: ignore[assignment]
        self.stripe: StripeStandIn | None = standins.get("stripe")  # type: ignore[assignment]

    def environment(self) -> dict[str, str]:
        """The settings (as environment variables) that point every SDK at the stand-ins."""
        return {
            "SIMULATED_PROVIDERS": "true",
            "PROVIDER_BASE_URLS": ",".join(f"{name}={url}" for name, url in self.items()),
        }

    def stop(self) -> None:
        for standin in self.standins.values():
            standin.stop()

    def restore_twilio(self, *, accounts=(), numbers=()) -> None:
        """Give the fresh Twilio stand-in what the database says Twilio already holds.

        The stand-ins keep nothing between runs, while the database keeps the organizations'
        subaccounts and numbers; without this, the next `make run` would find them gone at
        "Twilio". ``accounts``: (sid, auth token, friendly name); ``numbers``: (sid, account
        sid, E.164 number, voice URL, status callback URL, SMS URL).
        """
        twilio = self.twilio
        with twilio._lock:
            for sid, token, friendly_name in accounts:
                twilio.accounts.setdefault(sid, Account(sid, token, friendly_name, twilio.account_sid))
            for sid, account_sid, number, voice_url, status_callback, sms_url in numbers:
                twilio.numbers.setdefault(sid, IncomingNumber(sid, account_sid, number, {
                    **NUMBER_SETTINGS, "FriendlyName": number, "VoiceUrl": voice_url, "VoiceMethod": "POST",
                    "StatusCallback": status_callback, "StatusCallbackMethod": "POST", "SmsUrl": sms_url,
                    "SmsMethod": "POST",
                }))
                if _us_long_code(number):
                    twilio.register_a2p(account_sid, number, "VERIFIED")

    def restore_stripe(self, *, customers=(), subscriptions=()) -> None:
        """Give the fresh Stripe stand-in the customers and live subscriptions the database knows.

        ``customers``: (id, name, email, metadata); ``subscriptions``: (id, customer id, [price ids],
        status, metadata). Prices must exist already (``prices_sync`` ran). A subscription starts a
        new period today: the stand-in keeps no history between runs.
        """
        stripe = self.stripe
        if stripe is None:
            raise RuntimeError("These simulated providers have no Stripe stand-in.")
        with stripe._lock:
            for id, name, email, metadata in customers:
                if id in stripe.customers:
                    continue
                customer = stripe._new_customer({"name": name, "email": email or None, "metadata": dict(metadata)})
                del stripe.customers[customer["id"]]
                customer["id"] = id
                stripe.customers[id] = customer
            for id, customer_id, price_ids, status, metadata in subscriptions:
                if id in stripe.subscriptions or customer_id not in stripe.customers:
                    continue
                prices = [stripe.prices[p] for p in price_ids if p in stripe.prices]
                if not prices:
                    continue
                items = [(price, 1 if price["recurring"]["usage_type"] == "licensed" else None) for price in prices]
                subscription = stripe._new_subscription(customer_id, items, metadata=dict(metadata))
                del stripe.subscriptions[subscription["id"]]
                subscription["id"] = id
                for item in subscription["items"]["data"]:
                    item["subscription"] = id
                subscription["items"]["url"] = f"/v1/subscription_items?subscription={id}"
                subscription["status"] = status
                stripe.subscriptions[id] = subscription


# How an autopiloted call plays out in simulated mode, at a pace a person can follow on the call's
# page: it rings, is answered and talks for a few seconds, then reports the length of the scripted
# conversation (the Deepgram stand-in's transcript lasts about 30 seconds), and so does its recording.
AUTOPILOT_STEP_SECONDS = 1.5
AUTOPILOT_TALK_SECONDS = 5.0
AUTOPILOT_CALL_SECONDS = 30


def opening_hours_caller() -> list:
    """A patient asks about the opening hours, cuts into the agent's answer, hears it out and hangs up.

    The Deepgram stand-in cannot recognise speech: it gives each stretch of speech it hears the next
    line of its live script. So the caller says exactly those lines, in that order (espeak-ng speaks
    them), and the transcript shows what was really said.
    """
    question, short_reply = DEFAULT_LIVE_SCRIPT[0], DEFAULT_LIVE_SCRIPT[1]
    return [
        Say(question, min_gap=1.2),
        BargeIn(short_reply, after_agent_audio_seconds=1.5),
        Hangup(after="agent_done", min_gap=1.0),
    ]


# The simulated callers the portal can ring with (name -> the caller's steps), and the one it rings with.
CALLER_SCRIPTS = {"opening-hours": opening_hours_caller}
DEFAULT_CALLER_SCRIPT = "opening-hours"
# Who the simulated caller is (a fictional 555-01xx number).
SIMULATED_CALLER_NUMBER = "+14155550134"


def simulated_stripe() -> StripeStandIn:
    """The Stripe stand-in of simulated mode: the simulated key and webhook secret, its webhooks to the
    application's /hooks/stripe/."""
    stripe = StripeStandIn(SIMULATED_CREDENTIALS["stripe"], SIMULATED_CREDENTIALS["stripe_webhook"])
    stripe.webhook_url = settings.PUBLIC_BASE_URL.rstrip("/") + "/hooks/stripe/"
    return stripe


def start_all(*, autopilot: bool = True) -> SimulatedProviders:
    """Start every provider stand-in on 127.0.0.1 (random ports); Twilio's with ``autopilot``."""
    twilio = SimulatedTwilio(*SIMULATED_CREDENTIALS["twilio"])
    twilio.autopilot = autopilot
    twilio.autopilot_delay = AUTOPILOT_STEP_SECONDS
    twilio.autopilot_talk = AUTOPILOT_TALK_SECONDS
    twilio.autopilot_duration = AUTOPILOT_CALL_SECONDS
    twilio.caller_scripts = dict(CALLER_SCRIPTS)
    standins: dict[str, StandIn] = {
        "twilio": twilio,
        "deepgram": DeepgramStandIn(SIMULATED_CREDENTIALS["deepgram"]),
        "openai": OpenAIStandIn(SIMULATED_CREDENTIALS["openai"]),
        "anthropic": AnthropicStandIn(SIMULATED_CREDENTIALS["anthropic"]),
        "elevenlabs": ElevenLabsStandIn(SIMULATED_CREDENTIALS["elevenlabs"]),
        "stripe": simulated_stripe(),
    }
    started: list[StandIn] = []
    try:
        for standin in standins.values():
            started.append(standin.start())
    except BaseException:
        for standin in started:
            standin.stop()
        raise
    return SimulatedProviders(standins)


if __name__ == "__main__":  # pragma: no cover - a developer's tool
    import os
    import signal
    import threading

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jagcall.settings")
    django.setup()
    providers = start_all()
    for name, value in providers.environment().items():
        print(f"export {name}={value!r}")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        providers.stop()
