"""The live conversation engine (telephony/engine/): turn taking, guards and what a call may cost."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env

# The caller's turn ends when Silero VAD has heard this many seconds of silence and Smart Turn v3
# judges the utterance complete (an incomplete one waits up to ENGINE_TURN_STOP_TIMEOUT_SECONDS).
# The shorter, the faster the agent answers and the likelier it cuts a pausing caller off.
ENGINE_VAD_STOP_SECONDS = env("ENGINE_VAD_STOP_SECONDS", default=0.2, cast=float)
# The caller speaks once the VAD has heard this much speech: it starts their turn, or holds the agent's voice
# (below). Holding makes a false start cheap (the agent goes on), so it is short: three 32 ms windows at
# 0.07 s (bench/voice_turns.py: barge-in 0.16 s; 0.20 s at 0.1 s, four windows).
ENGINE_VAD_START_SECONDS = env("ENGINE_VAD_START_SECONDS", default=0.07, cast=float)
# Silero's confidence and the (smoothed) loudness a window must reach to count as speech. The loudness is
# smoothed over 32 ms windows: reaching 0.6 takes about five of them, 0.4 about three, so the lower, the
# sooner a caller is heard (bench/voice_turns.py: barge-in 0.34 s at 0.6 with a 0.15 s start, 0.20 s at
# 0.4 with 0.1 s), and the likelier a quiet voice in the room is too.
ENGINE_VAD_CONFIDENCE = env("ENGINE_VAD_CONFIDENCE", default=0.7, cast=float)
ENGINE_VAD_MIN_VOLUME = env("ENGINE_VAD_MIN_VOLUME", default=0.4, cast=float)
ENGINE_TURN_STOP_TIMEOUT_SECONDS = env("ENGINE_TURN_STOP_TIMEOUT_SECONDS", default=2.0, cast=float)
# Smart Turn's inferences (about 45 ms of a core each) run on this many threads of the web process,
# shared by its calls: an inference waits for a free thread rather than taking a core from the event loop
# that carries every call's audio. More answers sooner when many callers stop at once, on more cores.
ENGINE_TURN_MODEL_THREADS = env("ENGINE_TURN_MODEL_THREADS", default=1, cast=int)
if ENGINE_TURN_MODEL_THREADS < 1:
    raise ImproperlyConfigured("ENGINE_TURN_MODEL_THREADS must be at least 1 (a thread runs Smart Turn for the calls).")
# While the agent speaks, the caller interrupts it with this many words; fewer ("okay", "mm-hm") is a
# backchannel and the agent goes on. Words come from the live transcript, so an interruption waits for
# them (~0.5-0.8 s after the caller starts); 0 interrupts as soon as the VAD hears speech (~0.2 s),
# backchannels included.
ENGINE_INTERRUPT_MIN_WORDS = env("ENGINE_INTERRUPT_MIN_WORDS", default=2, cast=int)
# Meanwhile the agent holds its voice as soon as the VAD hears the caller (Twilio clears its buffer): if the
# caller said too few words to interrupt, the agent goes on from where it stopped once they have been quiet
# for ENGINE_BARGE_IN_RELEASE_SECONDS (or after ENGINE_BARGE_IN_HOLD_MAX_SECONDS at most). Off: the agent
# talks on over the caller until the words interrupt it.
ENGINE_BARGE_IN_HOLD = env("ENGINE_BARGE_IN_HOLD", default=True, cast=bool)
ENGINE_BARGE_IN_RELEASE_SECONDS = env("ENGINE_BARGE_IN_RELEASE_SECONDS", default=0.3, cast=float)
ENGINE_BARGE_IN_HOLD_MAX_SECONDS = env("ENGINE_BARGE_IN_HOLD_MAX_SECONDS", default=3.0, cast=float)
# Agent audio is sent this far ahead of its playing: more rides out a busier server without a gap in the
# caller's ear; a mark tells within that much what was heard, and an interruption discards that much.
ENGINE_AUDIO_LEAD_SECONDS = env("ENGINE_AUDIO_LEAD_SECONDS", default=0.12, cast=float)
# The caller's audio goes through the pipeline in frames this long (Twilio sends 20 ms frames; they are
# joined). Each frame costs the same work whatever its length, so longer frames cost less CPU per call;
# the VAD hears the caller up to a frame later.
ENGINE_AUDIO_IN_FRAME_MS = env("ENGINE_AUDIO_IN_FRAME_MS", default=40, cast=int)
# Silero scores the calls' audio windows together: a window waits up to this long for other calls' windows
# (not at all when every call speaking to the process has one waiting). One run of the model for many
# windows costs little more than a run for one; 0 scores each window on its own, at once.
ENGINE_VAD_BATCH_MS = env("ENGINE_VAD_BATCH_MS", default=10.0, cast=float)
if ENGINE_VAD_BATCH_MS < 0:
    raise ImproperlyConfigured("ENGINE_VAD_BATCH_MS must be 0 (no batching) or more.")
# The agent's audio is sent on a grid of this many milliseconds shared by the process's calls (each frame
# still at most ENGINE_AUDIO_LEAD_SECONDS ahead of its playing, and at most this much less): the calls'
# frames go out together, in one wake-up of the event loop. 0 sends each frame the moment its lead allows.
ENGINE_AUDIO_OUT_ALIGN_MS = env("ENGINE_AUDIO_OUT_ALIGN_MS", default=20.0, cast=float)
if not 0 <= ENGINE_AUDIO_OUT_ALIGN_MS < ENGINE_AUDIO_LEAD_SECONDS * 1000:
    raise ImproperlyConfigured("ENGINE_AUDIO_OUT_ALIGN_MS must be 0 or more, and less than the audio lead.")
# A caller silent this long is asked whether they are still there; after this many prompts unanswered
# the call ends.
ENGINE_SILENCE_TIMEOUT_SECONDS = env("ENGINE_SILENCE_TIMEOUT_SECONDS", default=10.0, cast=float)
ENGINE_SILENCE_PROMPTS = env("ENGINE_SILENCE_PROMPTS", default=1, cast=int)
