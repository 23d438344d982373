"""Local stand-ins of the providers' APIs: small HTTP servers on 127.0.0.1 that speak each
provider's wire format, so the real SDKs (their request building, auth and parsing) run
against them in tests and in the simulated mode of ``make run``.

    from jagcall.kernel.standins.twilio import TwilioStandIn        # REST 2010 + signed callbacks
    from jagcall.kernel.standins.deepgram import DeepgramStandIn    # pre-recorded /v1/listen
    from jagcall.kernel.standins.openai import OpenAIStandIn        # /v1/chat/completions, /v1/models
    from jagcall.kernel.standins.anthropic import AnthropicStandIn  # /v1/messages
    from jagcall.kernel.standins.elevenlabs import ElevenLabsStandIn  # voices, text-to-speech
    from jagcall.kernel.standins.stripe import StripeStandIn        # Billing, hosted checkout + portal, webhooks
    from jagcall.kernel.standins.simulated import start_all         # all of them, for the dev server

Each one: ``StandIn().start()`` -> itself, ``.base_url``, ``.stop()``, ``.requests`` (what it received).

[!!] Never importable in production: this package refuses to load unless settings.DEBUG is on or
the process runs the tests (JAGCALL_TESTING=1). The stand-ins accept any caller on their port and
hand out generated credentials; a production process has no business starting one.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _allowed() -> bool:
    if os.environ.get("JAGCALL_TESTING", "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    try:
        return bool(settings.DEBUG)
    except ImproperlyConfigured:  # settings not configured: nothing says this is development
        return False


if not _allowed():
    raise ImproperlyConfigured(
        "jagcall.kernel.standins (local stand-ins of Twilio, Deepgram, OpenAI, Anthropic and ElevenLabs) "
        "is for development and tests only: it loads only with DEBUG=true or JAGCALL_TESTING=1. "
        "In production the provider clients talk to the real providers."
    )
