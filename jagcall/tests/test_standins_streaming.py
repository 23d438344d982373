"""The stand-ins' streaming APIs, driven through the real clients: Deepgram's live transcription
(deepgram-sdk's listen v1 websocket, fed real speech), ElevenLabs' multi-stream-input websocket
(the messages Pipecat's ElevenLabsTTSService sends), Pipecat's own STT and TTS services in a small
pipeline, and OpenAI / Anthropic streams that call a tool."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time

import pytest
from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment
from deepgram.core.api_error import ApiError as DeepgramApiError
from deepgram.listen.v1.types import ListenV1Finalize, ListenV1Results
from pipecat.frames.frames import (
    EndFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from jagcall.kernel.providers import anthropic_client, deepgram_client, openai_client
from jagcall.kernel.standins import speech

FRAME = 160  # 20 ms of 8 kHz mu-law, as a phone call's media arrives


class _Listener:
    """Reads a live connection's messages on a thread, noting when each arrived."""

    def __init__(self, connection) -> None:
        self.messages: list[tuple[float, object]] = []
        self.thread = threading.Thread(target=self._read, args=(connection,), daemon=True)
        self.thread.start()

    def _read(self, connection) -> None:
        for message in connection:
            self.messages.append((time.monotonic(), message))

    def results(self, *, final: bool | None = None) -> list[ListenV1Results]:
        found = [m for _, m in self.messages if isinstance(m, ListenV1Results)]
        return [r for r in found if final is None or r.is_final == final]

    def wait_for(self, predicate, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, message in list(self.messages):
                if predicate(message):
                    return at, message
            time.sleep(0.01)
        raise AssertionError(f"no such message among {[type(m).__name__ for _, m in self.messages]}")


def _send(connection, audio: bytes) -> None:
    for i in range(0, len(audio), FRAME):
        connection.send_media(audio[i : i + FRAME])


def test_deepgram_live_transcribes_each_speech_segment_with_the_script(deepgram_standin):
    deepgram_standin.live_script = ["What are your opening hours on Saturday?", "Okay."]
    question = speech.render("What are your opening hours on Saturday?")
    with deepgram_client().listen.v1.connect(
        model="nova-3", encoding="mulaw", sample_rate="8000", channels="1", interim_results="true",
        vad_events="true", endpointing="300", utterance_end_ms="1000", punctuate="true", mip_opt_out="true",
    ) as connection:  # fmt: skip
        listener = _Listener(connection)
        _send(connection, speech.silence(0.5) + question)
        interim = listener.wait_for(lambda m: isinstance(m, ListenV1Results) and not m.is_final)[1]
        assert not listener.results(final=True)  # still speaking: no final yet
        okay = speech.render("Okay.").rstrip(b"\xff\x7f\xfe\x7e")  # without espeak-ng's trailing silence
        _send(connection, speech.silence(1.2) + okay + speech.silence(0.1))
        connection.send_finalize(ListenV1Finalize(type="Finalize"))
        finalized = listener.wait_for(lambda m: isinstance(m, ListenV1Results) and m.from_finalize)[1]
        connection.send_close_stream()
        listener.thread.join(timeout=5)

    first, second = listener.results(final=True)
    assert first.channel.alternatives[0].transcript == "What are your opening hours on Saturday?"
    assert first.speech_final is True and not first.from_finalize
    assert interim.channel.alternatives[0].transcript  # a prefix, before the end of the speech
    assert first.channel.alternatives[0].transcript.startswith(interim.channel.alternatives[0].transcript)
    words = first.channel.alternatives[0].words
    assert [w.punctuated_word for w in words][-1] == "Saturday?" and words[0].word == "what"
    speech_seconds = len(question) / 8000
    assert 0.45 <= words[0].start < words[-1].end <= 0.5 + speech_seconds + 0.05  # times follow the audio
    assert second is finalized and second.channel.alternatives[0].transcript == "Okay." and not second.speech_final
    kinds = [type(m).__name__ for _, m in listener.messages]
    assert kinds[0] == "ListenV1Metadata" and kinds[-1] == "ListenV1Metadata"
    assert "ListenV1SpeechStarted" in kinds and "ListenV1UtteranceEnd" in kinds

    [session] = deepgram_standin.live_sessions
    assert session.query["encoding"] == "mulaw" and session.query["vad_events"] == "true"
    assert session.texts == ["What are your opening hours on Saturday?", "Okay."] and session.closed
    assert session.audio_bytes == len(question) + len(okay) + int(1.8 * 8000)
    [upgrade] = deepgram_standin.requests_to("/v1/listen")
    assert upgrade.status == 101 and upgrade.header("authorization") == f"Token {deepgram_standin.api_key}"


def test_deepgram_live_answers_finalize_at_once_and_honours_latency(deepgram_standin):
    deepgram_standin.live_script = ["Mm-hm."]
    deepgram_standin.live_latency = 0.3
    with deepgram_client().listen.v1.connect(model="nova-3", encoding="linear16", sample_rate="16000") as connection:
        listener = _Listener(connection)
        spoken = speech.render("Mm-hm, yes", sample_rate=16000, encoding="pcm16")
        _send(connection, spoken[: 16000 * 2 // 2])  # half a second: the speaker has not stopped yet
        sent = time.monotonic()
        connection.send_finalize()
        at, final = listener.wait_for(lambda m: isinstance(m, ListenV1Results) and m.is_final)
        assert final.from_finalize and final.channel.alternatives[0].transcript == "mm-hm"  # no punctuate: bare
        assert 0.3 <= at - sent < 0.8  # the latency knob, and nothing more
        deepgram_standin.live_latency = 0
        sent = time.monotonic()
        connection.send_finalize()  # nothing pending: an empty answer, at once
        at, empty = listener.wait_for(lambda m: isinstance(m, ListenV1Results) and m is not final)
        assert empty.from_finalize and empty.channel.alternatives[0].transcript == "" and at - sent < 0.3
        connection.send_close_stream()
        listener.thread.join(timeout=5)


def test_deepgram_live_refuses_a_wrong_key_before_the_upgrade(deepgram_standin, settings):
    # Pipecat's DeepgramSTTService uses the async client, which turns the 401 into ApiError (the sync
    # client lets websockets' InvalidStatus through).
    base, ws = deepgram_standin.base_url, _ws(deepgram_standin)
    environment = DeepgramClientEnvironment(base=base, production=ws, agent=ws, agent_rest=base)

    async def connect_with(key: str) -> None:
        async with AsyncDeepgramClient(api_key=key, environment=environment).listen.v1.connect(model="nova-3"):
            pass

    with pytest.raises(DeepgramApiError) as refused:
        asyncio.run(connect_with("wrong"))
    assert refused.value.status_code == 401
    with pytest.raises(InvalidStatus) as refused_sync:
        with deepgram_client(api_key="wrong").listen.v1.connect(model="nova-3"):
            pass
    assert refused_sync.value.response.status_code == 401
    assert [r.status for r in deepgram_standin.requests_to("/v1/listen")] == [401, 401]
    assert not deepgram_standin.live_sessions


def _ws(standin) -> str:
    return standin.base_url.replace("http://", "ws://")


def _elevenlabs_url(standin, voice_id: str = "21m00Tcm4TlvDq8ikWAM", output_format: str = "ulaw_8000") -> str:
    return (f"{_ws(standin)}/v1/text-to-speech/{voice_id}/multi-stream-input?model_id=eleven_flash_v2_5"
            f"&output_format={output_format}&auto_mode=true")  # fmt: skip


def _receive_until_final(websocket, context_id: str) -> list[dict]:
    messages = []
    while True:
        message = json.loads(websocket.recv(timeout=10))
        messages.append(message)
        if message.get("isFinal") and message.get("contextId") == context_id:
            return messages


def test_elevenlabs_multi_stream_input_speaks_as_pipecat_expects(elevenlabs_standin):
    elevenlabs_standin.tts_latency = 0.2
    sentence = "Your cleaning is booked for Saturday at ten. "
    with connect(_elevenlabs_url(elevenlabs_standin), additional_headers={"xi-api-key": elevenlabs_standin.api_key},
                 max_size=16 * 1024 * 1024) as websocket:  # fmt: skip
        websocket.send(json.dumps({"text": ""}))  # keepalive before any context
        voice_settings = {"stability": 0.5, "similarity_boost": 0.75}
        websocket.send(json.dumps({"text": " ", "context_id": "turn-1", "voice_settings": voice_settings}))
        started = time.monotonic()
        websocket.send(json.dumps({"text": sentence, "context_id": "turn-1"}))
        websocket.send(json.dumps({"context_id": "turn-1", "flush": True}))
        websocket.send(json.dumps({"context_id": "turn-1", "close_context": True}))
        first = json.loads(websocket.recv(timeout=10))
        assert time.monotonic() - started >= 0.2  # tts_latency before the first audio
        messages = [first, *_receive_until_final(websocket, "turn-1")]
        websocket.send(json.dumps({"close_socket": True}))
        websocket.recv_events_thread.join(timeout=5)  # the stand-in closes the socket

    audio_messages = [m for m in messages if m.get("audio")]
    assert messages[-1] == {"isFinal": True, "contextId": "turn-1"} and len(audio_messages) >= 5
    assert all(m["contextId"] == "turn-1" for m in audio_messages)
    audio = b"".join(base64.b64decode(m["audio"]) for m in audio_messages)
    assert audio == speech.render(sentence.strip())  # real speech, 8 kHz mu-law as asked
    assert all(0.08 <= len(base64.b64decode(m["audio"])) / 8000 <= 0.25 for m in audio_messages[:-1])
    chars = "".join("".join(m["alignment"]["chars"]) for m in audio_messages)
    assert chars == sentence
    spans = [m["alignment"]["charStartTimesMs"][-1] + m["alignment"]["charDurationsMs"][-1] for m in audio_messages]
    assert sum(spans) == pytest.approx(len(audio) / 8, abs=2)  # alignment adds up to the audio's length

    [session] = elevenlabs_standin.tts_sessions
    assert session.texts("turn-1") == sentence.strip() and session.spoken == [("turn-1", sentence)]
    assert session.query["output_format"] == "ulaw_8000" and session.closed


def test_elevenlabs_pcm_and_closing_an_interrupted_context(elevenlabs_standin):
    headers = {"xi-api-key": elevenlabs_standin.api_key}
    with connect(_elevenlabs_url(elevenlabs_standin, output_format="pcm_16000").replace("auto_mode=true",
                 "auto_mode=false"), additional_headers=headers) as websocket:  # fmt: skip
        websocket.send(json.dumps({"text": " ", "context_id": "a"}))
        websocket.send(json.dumps({"text": "This was never flushed. ", "context_id": "a"}))
        websocket.send(json.dumps({"context_id": "a", "close_context": True}))  # an interruption
        assert json.loads(websocket.recv(timeout=5)) == {"isFinal": True, "contextId": "a"}
        websocket.send(json.dumps({"text": " ", "context_id": "b"}))
        websocket.send(json.dumps({"text": "Hello.", "context_id": "b", "flush": True}))
        websocket.send(json.dumps({"context_id": "b", "close_context": True}))
        messages = _receive_until_final(websocket, "b")
    audio = b"".join(base64.b64decode(m["audio"]) for m in messages if m.get("audio"))
    assert audio == speech.render("Hello.", sample_rate=16000, encoding="pcm16")
    assert elevenlabs_standin.tts_sessions[0].spoken == [("b", "Hello.")]


def test_elevenlabs_refuses_a_wrong_key_or_voice_before_the_upgrade(elevenlabs_standin):
    for url, headers, status in [
        (_elevenlabs_url(elevenlabs_standin), {"xi-api-key": "wrong"}, 401),
        (_elevenlabs_url(elevenlabs_standin, voice_id="nope"), {"xi-api-key": elevenlabs_standin.api_key}, 404),
    ]:
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=headers)
        assert refused.value.response.status_code == status
    assert not elevenlabs_standin.tts_sessions


class _Collector(FrameProcessor):
    """The last processor of a test pipeline: keeps every frame that reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list = []

    async def process_frame(self, frame, direction) -> None:
        await super().process_frame(frame, direction)
        self.frames.append(frame)
        await self.push_frame(frame, direction)

    def of(self, kind) -> list:
        return [f for f in self.frames if isinstance(f, kind)]


def test_pipecat_services_run_against_the_stand_ins(deepgram_standin, elevenlabs_standin):
    """Pipecat's own DeepgramSTTService and ElevenLabsTTSService, configured as the engine does:
    one base URL each, a websocket on the stand-in's REST host."""
    deepgram_standin.live_script = ["Hi, is this the dental practice?"]
    stt = DeepgramSTTService(api_key=deepgram_standin.api_key, base_url=deepgram_standin.base_url,
                             encoding="mulaw", sample_rate=8000)  # fmt: skip
    tts = ElevenLabsTTSService(api_key=elevenlabs_standin.api_key, url=_ws(elevenlabs_standin), sample_rate=16000,
                               settings=ElevenLabsTTSService.Settings(voice="21m00Tcm4TlvDq8ikWAM"))  # fmt: skip
    collector = _Collector()
    task = PipelineTask(Pipeline([stt, tts, collector]),
                        params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=16000))  # fmt: skip
    caller = speech.silence(0.3) + speech.render("Hi, is this the dental practice?") + speech.silence(0.6)

    async def drive() -> None:
        await task.queue_frame(TTSSpeakFrame("Hello, you've reached the front desk."))
        for i in range(0, len(caller), FRAME):
            await task.queue_frame(InputAudioRawFrame(audio=caller[i : i + FRAME], sample_rate=8000, num_channels=1))
            await asyncio.sleep(0.001)
        for _ in range(500):
            if collector.of(TTSStoppedFrame) and collector.of(TranscriptionFrame):
                break
            await asyncio.sleep(0.01)
        await task.queue_frame(EndFrame())

    async def run() -> None:
        await asyncio.wait_for(asyncio.gather(PipelineRunner(handle_sigint=False).run(task), drive()), 10)

    asyncio.run(run())
    assert [f.text for f in collector.of(TranscriptionFrame)] == ["Hi, is this the dental practice?"]
    assert collector.of(InterimTranscriptionFrame)
    spoken = b"".join(f.audio for f in collector.of(TTSAudioRawFrame))
    assert spoken == speech.render("Hello, you've reached the front desk.", sample_rate=16000, encoding="pcm16")
    assert " ".join(f.text for f in collector.of(TTSTextFrame)) == "Hello, you've reached the front desk."
    assert deepgram_standin.live_sessions[0].query["encoding"] == "mulaw"
    assert elevenlabs_standin.tts_sessions[0].query["output_format"] == "pcm_16000"


TRANSFER = {"type": "function", "function": {"name": "transfer_call", "parameters": {
    "type": "object", "properties": {"department": {"type": "string"}}, "required": ["department"]}}}  # fmt: skip


def test_openai_streams_a_scripted_tool_call_then_the_next_text(openai_standin):
    openai_standin.replies = [{"tool": "transfer_call", "arguments": {"department": "billing"}},
                              "I'm transferring you to billing now. Please hold."]  # fmt: skip
    openai_standin.first_token_latency = 0.2
    client = openai_client()
    messages = [{"role": "user", "content": "Can I talk to billing?"}]
    started = time.monotonic()
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[TRANSFER],
                                            stream=True, stream_options={"include_usage": True})  # fmt: skip
    chunks = list(stream)
    assert time.monotonic() - started >= 0.2
    calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0].id and calls[0].function.name == "transfer_call" and len(calls) > 2  # arguments in pieces
    assert json.loads("".join(c.function.arguments or "" for c in calls)) == {"department": "billing"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage.total_tokens > 0

    messages += [{"role": "assistant", "tool_calls": [{"id": calls[0].id, "type": "function", "function": {
                     "name": "transfer_call", "arguments": '{"department": "billing"}'}}]},
                 {"role": "tool", "tool_call_id": calls[0].id, "content": '{"status": "ok"}'}]  # fmt: skip
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[TRANSFER], stream=True)
    deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == "I'm transferring you to billing now. Please hold."
    assert len(deltas) >= 10 and "." in deltas  # word-sized deltas: a sentence ends mid-stream


def test_anthropic_streams_a_scripted_tool_call_after_text(anthropic_standin):
    anthropic_standin.replies = [{"text": "One moment.", "tool": "transfer_call", "arguments": {"department": "x"}},
                                 "You're through."]  # fmt: skip
    tool = {"name": "transfer_call", "description": "Transfer", "input_schema": TRANSFER["function"]["parameters"]}
    client = anthropic_client()
    messages = [{"role": "user", "content": "Transfer me."}]
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=messages, tools=[tool]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "One moment." and final.stop_reason == "tool_use"
    [said, call] = final.content
    assert call.type == "tool_use" and call.name == "transfer_call" and call.input == {"department": "x"}
    messages += [{"role": "assistant", "content": [b.model_dump() for b in final.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "ok"}]}]
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=messages, tools=[tool]) as stream:
        assert "".join(stream.text_stream) == "You're through."
