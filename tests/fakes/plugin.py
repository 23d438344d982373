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
