"""The live conversation engine: a caller talks with an agent (docs/voice-engine.md).

A Pipecat pipeline per conversation, inside the Channels consumer that holds the call's media
stream (telephony/consumers.py) or a member's test from the agent's page:

    caller audio -> Deepgram live STT -> turn taking (Silero VAD + Smart Turn v3)
      -> knowledge passages -> LLM (the agent's OpenAI or Anthropic model, with tools)
      -> ElevenLabs streaming TTS -> audio back to the caller, with marks

This package is the only asynchronous code besides the consumers. It writes no model: whatever
it records goes through telephony/services/conversations.py, called with
``database_sync_to_async``.
"""

from __future__ import annotations

import logging

_configured = False


def configure_logging() -> None:
    """Send Pipecat's log (loguru) into the standard logging tree under ``pipecat``, once.

    Loguru writes to stderr in its own format by default; routed here, Pipecat's lines come out
    as the project's structured log records (jagcall/settings/logs.py), with secrets redacted.
    """
    global _configured
    if _configured:
        return
    from loguru import logger as loguru_logger

    target = logging.getLogger("pipecat")

    def forward(message) -> None:
        record = message.record
        level = record["level"].no
        if target.isEnabledFor(level):
            target.log(level, "%s", record["message"], extra={"pipecat_module": record["name"]})

    loguru_logger.remove()
    loguru_logger.add(forward, level="DEBUG" if target.isEnabledFor(logging.DEBUG) else "INFO", format="{message}")
    _configured = True
