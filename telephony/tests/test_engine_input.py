"""The caller's audio on its way into the pipeline: joined into longer frames, heard by a VAD that runs on
the event loop, and judged by Smart Turn on the process's shared thread (the whole path runs in
telephony/tests/test_engine_call.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time

import numpy as np
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import InputAudioRawFrame, InputDTMFFrame
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.base_transport import TransportParams

from telephony.engine import analyzers
from telephony.engine.analyzers import SharedSileroVAD, SharedSmartTurn, _smart_turn_executor
from telephony.engine.transports import ConsumerLink, LinkInputTransport

ULAW_SILENCE = b"\xff" * 160  # 20 ms of mu-law at 8 kHz, as Twilio sends it


def _media(audio: bytes = ULAW_SILENCE) -> str:
    return json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": base64.b64encode(audio).decode()}})


def _dtmf(digit: str) -> str:
    return json.dumps({"event": "dtmf", "streamSid": "MZ1", "dtmf": {"track": "inbound_track", "digit": digit}})


async def _received(messages: list[str], *, frame_ms: int) -> list:
    """What the input transport pushes on for ``messages``, then the end of the stream."""
    serializer = TwilioFrameSerializer(
        "MZ1", params=TwilioFrameSerializer.InputParams(sample_rate=8000, auto_hang_up=False)
    )
    await serializer.setup(None)
    link = ConsumerLink(lambda data: None, serializer=serializer)
    transport = LinkInputTransport(link, TransportParams(audio_in_enabled=True, audio_in_sample_rate=8000),
                                   frame_ms=frame_ms)  # fmt: skip
    pushed = []

    async def push_frame(frame, direction=None):
        pushed.append(frame)

    transport.push_frame = push_frame
    for message in messages:
        link.feed(message)
    link.close()
    await asyncio.wait_for(transport._receive(), 5)
    return pushed


def _shape(frames) -> list:
    return [len(f.audio) // 16 if isinstance(f, InputAudioRawFrame) else f.button.value for f in frames]  # ms


async def test_twilios_20_ms_frames_go_on_joined_in_frames_of_the_set_length():
    frames = await _received([_media() for _ in range(7)], frame_ms=40)
    assert all(isinstance(f, InputAudioRawFrame) and f.sample_rate == 8000 for f in frames)
    assert _shape(frames) == [40, 40, 40, 20]  # what is left at the end of the stream goes on too

    assert _shape(await _received([_media() for _ in range(3)], frame_ms=20)) == [20, 20, 20]  # each on its own
    assert _shape(await _received([_media() for _ in range(6)], frame_ms=60)) == [60, 60]


async def test_audio_joined_so_far_goes_on_before_a_key_press_and_keeps_its_order():
    first, second = b"\x01" * 160, b"\x02" * 160
    frames = await _received([_media(first), _dtmf("5"), _media(second), _media(second)], frame_ms=40)
    assert _shape(frames) == [20, "5", 40]
    assert isinstance(frames[1], InputDTMFFrame)
    # The audio is the caller's, in order: the first 20 ms decoded alone, the next two joined.
    decoded = np.frombuffer(frames[2].audio, dtype=np.int16)
    assert len(set(decoded.tolist())) == 1 and decoded[0] != np.frombuffer(frames[0].audio, dtype=np.int16)[0]


async def test_the_vad_hears_the_caller_on_the_event_loop_not_in_a_thread(monkeypatch):
    session = analyzers._vad_session()
    threads = []

    class Watched:
        def run(self, *args, **kwargs):
            threads.append(threading.current_thread())
            return session.run(*args, **kwargs)

    monkeypatch.setattr(analyzers, "_vad_session", lambda: Watched())
    vad = SharedSileroVAD(params=VADParams())
    vad.set_sample_rate(8000)
    speech = (np.sin(np.arange(320) / 8000 * 2 * np.pi * 220) * 8000).astype(np.int16).tobytes()
    for _ in range(10):
        await vad.analyze_audio(speech)
    await vad.cleanup()
    assert len(threads) == 12  # 400 ms of audio: twelve 32 ms windows, the rest kept for the next frame
    assert set(threads) == {threading.main_thread()}


def _analyzers_after_a_second_of_speech(count: int) -> list[SharedSmartTurn]:
    speech = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 220) * 8000).astype(np.int16).tobytes()
    analyzers = []
    for _ in range(count):
        analyzer = SharedSmartTurn(sample_rate=8000)
        analyzer.set_sample_rate(8000)
        analyzer.append_audio(speech, is_speech=True)
        analyzers.append(analyzer)
    return analyzers


def _watch_inferences(analyzers, *, hold: float = 0.0, barrier: threading.Barrier | None = None) -> dict:
    """Count the inferences running at once, and the threads they run on, around the real model."""
    seen = {"running": 0, "most": 0, "threads": set(), "done": 0}
    lock = threading.Lock()

    def watched(predict):
        def run(audio):
            with lock:
                seen["running"] += 1
                seen["most"] = max(seen["most"], seen["running"])
                seen["threads"].add(threading.current_thread().name)
            try:
                if barrier is not None:
                    barrier.wait(timeout=5)
                time.sleep(hold)
                return predict(audio)
            finally:
                with lock:
                    seen["running"] -= 1
                    seen["done"] += 1

        return run

    for analyzer in analyzers:
        analyzer._predict_endpoint = watched(analyzer._predict_endpoint)
    return seen


async def test_smart_turn_inferences_of_every_call_queue_for_the_process_s_one_thread():
    analyzers = _analyzers_after_a_second_of_speech(4)  # four callers pause at the same moment
    seen = _watch_inferences(analyzers, hold=0.03)
    results = await asyncio.gather(*(analyzer.analyze_end_of_turn() for analyzer in analyzers))
    assert seen["done"] == 4 and all(state in EndOfTurnState for state, _ in results)
    assert seen["most"] == 1  # one at a time: the event loop keeps a core for the calls' audio
    assert len(seen["threads"]) == 1 and seen["threads"].pop().startswith("smart-turn")

    await analyzers[0].cleanup()  # a call's end leaves the shared thread running for the others
    again = _analyzers_after_a_second_of_speech(1)
    seen = _watch_inferences(again)
    await again[0].analyze_end_of_turn()
    assert seen["done"] == 1


async def test_more_smart_turn_threads_run_that_many_inferences_at_once(settings):
    settings.ENGINE_TURN_MODEL_THREADS = 2
    _smart_turn_executor.cache_clear()
    try:
        analyzers = _analyzers_after_a_second_of_speech(4)
        seen = _watch_inferences(analyzers, hold=0.03, barrier=threading.Barrier(2))
        await asyncio.gather(*(analyzer.analyze_end_of_turn() for analyzer in analyzers))
        assert seen["done"] == 4
        assert seen["most"] == 2
    finally:
        _smart_turn_executor().shutdown(wait=True)
        _smart_turn_executor.cache_clear()
