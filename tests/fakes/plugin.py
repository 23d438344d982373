"""Fixtures that point the real provider clients at the stand-ins in tests/fakes/ and
jagcall/kernel/standins/ (the providers' APIs, shared with the simulated mode of `make run`).

Registered by the root conftest (``pytest_plugins = ["tests.fakes.plugin"]``).

Each provider fixture starts its stand-in for one test, points ``PROVIDER_BASE_URLS[name]`` at it
and sets the matching credential settings, so the clients of jagcall.kernel.providers reach it
through the real SDK; ``providers`` gives all of them at once.
"""

from __future__ import annotations

import pytest

from tests.fakes.turnstile import TurnstileStandIn


@pytest.fixture
def turnstile(settings):
    """A running Turnstile stand-in, with the TURNSTILE_* settings pointing at it (and Turnstile on)."""
    server = TurnstileStandIn().start()
    settings.TURNSTILE_SITE_KEY = server.site_key
    settings.TURNSTILE_SECRET_KEY = server.secret
    settings.TURNSTILE_VERIFY_URL = server.verify_url
    settings.TURNSTILE_SCRIPT_URL = server.script_url
    settings.TURNSTILE_ENABLED = True
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dns_server(settings):
    """A running DNS stand-in (tests/fakes/dns_server.py), with SSO_DNS_NAMESERVERS pointing at it."""
    from tests.fakes.dns_server import DnsStandIn

    server = DnsStandIn().start()
    settings.SSO_DNS_NAMESERVERS = [server.address]
    settings.SSO_DNS_TIMEOUT_SECONDS = 2
    try:
        yield server
    finally:
        server.stop()


def _point_at(settings, name: str, standin) -> None:
    # A new dict (never an in-place change), so pytest-django's settings fixture restores it.
    settings.PROVIDER_BASE_URLS = {**getattr(settings, "PROVIDER_BASE_URLS", {}), name: standin.base_url}


@pytest.fixture
def twilio_standin(settings):
    """A running Twilio stand-in; TWILIO_ACCOUNT_SID/AUTH_TOKEN are its platform account and
    TWILIO_API_KEY_SID/SECRET an API key of it (for browser-calling access tokens)."""
    from jagcall.kernel.standins.twilio import TwilioStandIn

    standin = TwilioStandIn().start()
    _point_at(settings, "twilio", standin)
    settings.TWILIO_ACCOUNT_SID = standin.account_sid
    settings.TWILIO_AUTH_TOKEN = standin.auth_token
    settings.TWILIO_API_KEY_SID, settings.TWILIO_API_KEY_SECRET = standin.add_api_key()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def deepgram_standin(settings):
    """A running Deepgram stand-in (its transcript: DEFAULT_SCRIPT, or set ``.script``); DEEPGRAM_API_KEY is its key."""
    from jagcall.kernel.standins.deepgram import DeepgramStandIn

    with DeepgramStandIn() as standin:
        _point_at(settings, "deepgram", standin)
        settings.DEEPGRAM_API_KEY = standin.api_key
        yield standin


@pytest.fixture
def openai_standin(settings):
    """A running OpenAI stand-in (set ``.replies`` to script its answers); OPENAI_API_KEY is its key."""
    from jagcall.kernel.standins.openai import OpenAIStandIn

    with OpenAIStandIn() as standin:
        _point_at(settings, "openai", standin)
        settings.OPENAI_API_KEY = standin.api_key
        yield standin


@pytest.fixture
def anthropic_standin(settings):
    """A running Anthropic stand-in (set ``.replies`` to script its answers); ANTHROPIC_API_KEY is its key."""
    from jagcall.kernel.standins.anthropic import AnthropicStandIn

    with AnthropicStandIn() as standin:
        _point_at(settings, "anthropic", standin)
        settings.ANTHROPIC_API_KEY = standin.api_key
        yield standin


@pytest.fixture
def elevenlabs_standin(settings):
    """A running ElevenLabs stand-in; ELEVENLABS_API_KEY is its key."""
    from jagcall.kernel.standins.elevenlabs import ElevenLabsStandIn

    with ElevenLabsStandIn() as standin:
        _point_at(settings, "elevenlabs", standin)
        settings.ELEVENLABS_API_KEY = standin.api_key
        yield standin


@pytest.fixture
def stripe_standin(settings):
    """A running Stripe stand-in; STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are its key and signing
    secret. Its ``webhook_url`` is None (events recorded, not delivered): a test that wants the
    webhooks sets it (a live_server URL, say)."""
    from jagcall.kernel.standins.stripe import StripeStandIn

    with StripeStandIn() as standin:
        _point_at(settings, "stripe", standin)
        settings.STRIPE_SECRET_KEY = standin.api_key
        settings.STRIPE_WEBHOOK_SECRET = standin.webhook_secret
        standin.webhook_url = None
        yield standin


@pytest.fixture
def providers(twilio_standin, deepgram_standin, openai_standin, anthropic_standin, elevenlabs_standin):
    """Every provider stand-in at once: ``.twilio``, ``.deepgram``, ``.openai``, ``.anthropic``, ``.elevenlabs``."""
    from types import SimpleNamespace

    return SimpleNamespace(
        twilio=twilio_standin,
        deepgram=deepgram_standin,
        openai=openai_standin,
        anthropic=anthropic_standin,
        elevenlabs=elevenlabs_standin,
    )
