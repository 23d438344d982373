"""Template context every page gets from the kernel."""

from __future__ import annotations

from django.conf import settings

SIMULATED_NOTICE = (
    "Simulated mode: no call or message reaches a real phone or provider. "
    "Local stand-ins play Twilio, Deepgram, OpenAI, Anthropic and ElevenLabs, "
    "so you can try every flow on this machine."
)


def simulated_mode(request):
    """``simulated_notice`` on every page (portal, sign-in, back office) while the stand-ins answer."""
    if getattr(settings, "SIMULATED_PROVIDERS", False):
        return {"simulated_notice": SIMULATED_NOTICE}
    return {}
