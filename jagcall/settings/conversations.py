"""The live conversation engine (telephony/engine/): turn taking, guards and what a call may cost."""

from __future__ import annotations

from jagcall.kernel.env import env

# The caller's turn ends when Silero VAD has heard this many seconds of silence and Smart Turn v3
# judges the utterance complete (an incomplete one waits up to ENGINE_TURN_STOP_TIMEOUT_SECONDS).
# The shorter, the faster the agent answers and the likelier it cuts a pausing caller off.
ENGINE_VAD_STOP_SECONDS = env("ENGINE_VAD_STOP_SECONDS", default=0.2, cast=float)
ENGINE_VAD_START_SECONDS = env("ENGINE_VAD_START_SECONDS", default=0.15, cast=float)
ENGINE_TURN_STOP_TIMEOUT_SECONDS = env("ENGINE_TURN_STOP_TIMEOUT_SECONDS", default=2.0, cast=float)
# While the agent speaks, the caller interrupts it with this many words; fewer ("okay", "mm-hm") is a
# backchannel and the agent goes on. Words come from the live transcript, so an interruption waits for
# them (~0.5-0.8 s after the caller starts); 0 interrupts as soon as the VAD hears speech (~0.2 s),
# backchannels included.
ENGINE_INTERRUPT_MIN_WORDS = env("ENGINE_INTERRUPT_MIN_WORDS", default=2, cast=int)
# A caller silent this long is asked whether they are still there; after this many prompts unanswered
# the call ends.
ENGINE_SILENCE_TIMEOUT_SECONDS = env("ENGINE_SILENCE_TIMEOUT_SECONDS", default=10.0, cast=float)
ENGINE_SILENCE_PROMPTS = env("ENGINE_SILENCE_PROMPTS", default=1, cast=int)
