"""Silero scores the windows of the process's calls together (telephony/engine/analyzers.py, SileroBatch):
the same confidences and the same VAD decisions as each window on its own, in fewer runs of the model."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from jagcall.kernel.standins import speech
from telephony.engine import analyzers
from telephony.engine.analyzers import SharedSileroVAD, silero_batch

FRAME_BYTES = 640  # 40 ms of 16-bit audio at 8 kHz, as the input transport joins Twilio's frames

LINES = (
    "Hello, I would like to book a cleaning for next Tuesday morning.",
    "Can you tell me whether you take my insurance?",
    "Okay.",
)


def _pcm(text: str) -> bytes:
    try:
        mulaw = speech.render(text, sample_rate=8000, encoding="mulaw")
    except speech.SpeechUnavailable as error:  # pragma: no cover - make test installs espeak-ng and sox
        pytest.fail(f"espeak-ng and sox are needed: {error}")
    table = _ulaw_table()
    quiet = np.zeros(8000 // 2, dtype=np.int16)  # half a second before and after: the VAD starts and stops
    return np.concatenate([quiet, table[np.frombuffer(mulaw, dtype=np.uint8)], quiet]).tobytes()


def _ulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    magnitude = (((codes & 0x0F) << 3) + 0x84) << exponent
    return np.where(codes & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def _vad() -> SharedSileroVAD:
    vad = SharedSileroVAD(params=VADParams(start_secs=0.07, stop_secs=0.2, confidence=0.7, min_volume=0.4))
    vad.set_sample_rate(8000)
    return vad


def _recording(vad: SharedSileroVAD) -> list[float]:
    """Every confidence ``vad`` takes in, in order (each window's score passes its model-reset check)."""
    taken = []
    check = vad._maybe_reset_model

    def recorded(confidence):
        taken.append(float(confidence))
        check(confidence)

    vad._maybe_reset_model = recorded
    return taken


async def _one_window_at_a_time(audio: bytes, settings) -> tuple[list[float], list[VADState]]:
    settings.ENGINE_VAD_BATCH_MS = 0
    vad = _vad()
    taken = _recording(vad)
    states = [await vad.analyze_audio(audio[i : i + FRAME_BYTES]) for i in range(0, len(audio), FRAME_BYTES)]
    return taken, states


async def _calls_at_once(audios: list[bytes], settings, *, delay_ms: float) -> tuple[list, list]:
    """Each of ``audios`` through a VAD of its own, the calls' frames interleaved as on a busy server."""
    settings.ENGINE_VAD_BATCH_MS = delay_ms
    vads = [_vad() for _ in audios]
    taken = [_recording(vad) for vad in vads]
    states: list[list[VADState]] = [[] for _ in audios]

    async def call(index: int) -> None:
        audio = audios[index]
        await asyncio.sleep(index * 0.001)  # the calls' frames come at different moments
        for i in range(0, len(audio), FRAME_BYTES):
            states[index].append(await vads[index].analyze_audio(audio[i : i + FRAME_BYTES]))
            await asyncio.sleep(0)

    await asyncio.gather(*(call(i) for i in range(len(audios))))
    for vad in vads:
        await vad.cleanup()
    return taken, states


@pytest.fixture(scope="module")
def audios() -> list[bytes]:
    """The lines, each padded with quiet to the longest (the calls go on together to the end)."""
    lines = [_pcm(line) for line in LINES]
    longest = max(len(line) for line in lines)
    return [line + bytes(longest - len(line)) for line in lines]


async def test_windows_scored_together_get_the_scores_and_decisions_of_windows_scored_alone(audios, settings):
    alone = [await _one_window_at_a_time(audio, settings) for audio in audios]
    batch = silero_batch()
    runs_before, windows_before = batch.runs, batch.windows

    together_taken, together_states = await _calls_at_once(audios, settings, delay_ms=20)

    windows = batch.windows - windows_before
    runs = batch.runs - runs_before
    assert windows == sum(len(taken) for taken, _ in alone)
    assert runs < windows / 2, f"{runs} runs of the model for {windows} windows: they were not scored together"
    for (taken, states), together, together_state in zip(alone, together_taken, together_states, strict=True):
        assert len(together) == len(taken)
        worst = max(range(len(taken)), key=lambda i: abs(together[i] - taken[i]))
        assert abs(together[worst] - taken[worst]) < 1e-4, (
            f"window {worst} of {len(taken)} scored {together[worst]} in a batch, {taken[worst]} alone"
        )
        assert together_state == states
        assert VADState.SPEAKING in states and states[-1] == VADState.QUIET  # the speech was heard, and its end


async def test_a_call_alone_is_scored_at_once_without_waiting_for_the_delay(audios, settings):
    settings.ENGINE_VAD_BATCH_MS = 1000
    vad = _vad()
    loop = asyncio.get_running_loop()
    began = loop.time()
    for i in range(0, 50 * FRAME_BYTES, FRAME_BYTES):
        await vad.analyze_audio(audios[0][i : i + FRAME_BYTES])
    await vad.cleanup()
    assert loop.time() - began < 0.5, "a lone call's windows waited for other calls' that never came"


async def test_a_window_waits_at_most_the_delay_for_a_call_that_went_quiet(audios, settings):
    settings.ENGINE_VAD_BATCH_MS = 50
    speaking, gone = _vad(), _vad()
    await asyncio.gather(speaking.analyze_audio(audios[0][:FRAME_BYTES]), gone.analyze_audio(audios[1][:FRAME_BYTES]))
    loop = asyncio.get_running_loop()
    began = loop.time()
    await speaking.analyze_audio(audios[0][FRAME_BYTES : 2 * FRAME_BYTES])  # ``gone`` sends nothing more
    waited = loop.time() - began
    assert 0.04 <= waited < 0.4
    await gone.cleanup()  # its call ended: ``speaking`` no longer waits for it
    began = loop.time()
    await speaking.analyze_audio(audios[0][2 * FRAME_BYTES : 3 * FRAME_BYTES])
    assert loop.time() - began < 0.03
    await speaking.cleanup()


async def test_a_failed_run_of_the_model_leaves_the_calls_hearing_no_voice(audios, settings, monkeypatch, caplog):
    settings.ENGINE_VAD_BATCH_MS = 5
    vads = [_vad(), _vad()]

    class Broken:
        def run(self, *args, **kwargs):
            raise RuntimeError("the model could not run")

    monkeypatch.setattr(analyzers, "_vad_session", lambda: Broken())
    frames = [audios[0][i : i + FRAME_BYTES] for i in range(0, 40 * FRAME_BYTES, FRAME_BYTES)]
    for frame in frames:
        states = await asyncio.gather(*(vad.analyze_audio(frame) for vad in vads))
        assert set(states) == {VADState.QUIET}
    assert "Silero could not score" in caplog.text
