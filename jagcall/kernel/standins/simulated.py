"""Simulated mode: every provider stand-in running at once, for the dev server (`make run` with no
provider keys, SIMULATED_PROVIDERS).

    from jagcall.kernel.standins.simulated import start_all

    providers = start_all()          # {"twilio": "http://127.0.0.1:41234", "deepgram": ..., ...}
    providers.twilio                 # the TwilioStandIn, autopilot on: created calls play out by themselves
    providers.environment()          # env vars for the web, worker and beat processes (below)
    providers.stop()

The stand-ins live in the process that called start_all(); the other processes reach them over
HTTP, so they need the URLs and the stand-ins' generated credentials: ``environment()`` gives
PROVIDER_BASE_URLS ("twilio=http://...,openai=http://..."), TWILIO_ACCOUNT_SID,
TWILIO_AUTH_TOKEN, TWILIO_API_KEY_SID/SECRET, OPENAI_API_KEY, ANTHROPIC_API_KEY,
DEEPGRAM_API_KEY, ELEVENLABS_API_KEY, and SIMULATED_PROVIDERS=true (setting the keys would
otherwise turn simulated mode off). Twilio's callbacks go to the URLs the application gives
(PUBLIC_BASE_URL, http://127.0.0.1:8000 in development), signed with the stand-in account's token.

``DEBUG=true DJANGO_SETTINGS_MODULE=jagcall.settings python -m jagcall.kernel.standins.simulated``
runs them in the foreground and prints that environment as shell exports.
"""

from __future__ import annotations

from jagcall.kernel.standins.anthropic import AnthropicStandIn
from jagcall.kernel.standins.base import StandIn
from jagcall.kernel.standins.deepgram import DeepgramStandIn
from jagcall.kernel.standins.elevenlabs import ElevenLabsStandIn
from jagcall.kernel.standins.openai import OpenAIStandIn
from jagcall.kernel.standins.twilio import TwilioStandIn


class SimulatedProviders(dict):
    """Provider name -> base URL of its running stand-in; the stand-ins themselves in ``standins``."""

    def __init__(self, standins: dict[str, StandIn]) -> None:
        super().__init__({name: standin.base_url for name, standin in standins.items()})
        self.standins = standins
        self.twilio: TwilioStandIn = standins["twilio"]  # type: ignore[assignment]
        self.twilio_api_key = self.twilio.add_api_key()

    def environment(self) -> dict[str, str]:
        """The settings (as environment variables) that point every SDK at the stand-ins."""
        s = self.standins
        return {
            "SIMULATED_PROVIDERS": "true",
            "PROVIDER_BASE_URLS": ",".join(f"{name}={url}" for name, url in self.items()),
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "TWILIO_API_KEY_SID": self.twilio_api_key[0],
            "TWILIO_API_KEY_SECRET": self.twilio_api_key[1],
            "OPENAI_API_KEY": s["openai"].api_key,
            "ANTHROPIC_API_KEY": s["anthropic"].api_key,
            "DEEPGRAM_API_KEY": s["deepgram"].api_key,
            "ELEVENLABS_API_KEY": s["elevenlabs"].api_key,
        }

    def stop(self) -> None:
        for standin in self.standins.values():
            standin.stop()


def start_all(*, autopilot: bool = True) -> SimulatedProviders:
    """Start every provider stand-in on 127.0.0.1 (random ports); Twilio's with ``autopilot``."""
    twilio = TwilioStandIn()
    twilio.autopilot = autopilot
    standins: dict[str, StandIn] = {
        "twilio": twilio,
        "deepgram": DeepgramStandIn(),
        "openai": OpenAIStandIn(),
        "anthropic": AnthropicStandIn(),
        "elevenlabs": ElevenLabsStandIn(),
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
