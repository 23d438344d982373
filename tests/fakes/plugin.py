"""Fixtures that point the real provider clients at the stand-ins in tests/fakes/.

Registered by the root conftest (``pytest_plugins = ["tests.fakes.plugin"]``).
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
