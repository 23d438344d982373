"""What the engine's unit tests share: a conversation's settings with nothing in the database behind them."""

from __future__ import annotations

import dataclasses

from telephony.services.conversations import ConversationSettings

_BROWSER = ConversationSettings(
    organization_id="o", agent_id="a", agent_name="Front desk", channel="browser", system_prompt="",
    first_message="", disclosures=(), llm_provider="openai", llm_model="m", temperature=0.5, voice_id="v",
    stt_model="nova-3", stt_language="en", max_call_seconds=60, silence_timeout_seconds=10,
    silence_prompts=1, voicemail_action="hang_up", voicemail_message="", tools=(), knowledge=False,
)  # fmt: skip


def browser_settings(**changes) -> ConversationSettings:
    """An agent tested by voice in the browser: no disclosures, no tools, no knowledge, unless ``changes``."""
    return dataclasses.replace(_BROWSER, **changes)
