"""The simulated Twilio caller on a Media Stream (jagcall/kernel/standins/twilio/media.py) and the speech
it speaks (jagcall/kernel/standins/speech.py).

Against a small websocket server of the test's own (it plays audio, sends marks and a clear, and
keeps the arrival time of everything the caller sends), then against the real ASGI application, and
opened by the Twilio stand-in for a voice webhook answered with ``<Connect><Stream>``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from jagcall.kernel.providers import twilio_client
from jagcall.kernel.standins import speech
from jagcall.kernel.standins.base import Reply, StandIn
from jagcall.kernel.standins.twilio.media import BargeIn, Dtmf, Hangup, MediaStreamCaller, Pause, Say

SPOKEN = bytes([0x10]) * 160  # a loud mu-law frame


class StreamServer:
    """A websocket server in a thread of its own; ``behaviour(websocket, server)`` plays one side of the stream."""

    def __init__(self, behaviour) -> None:
        self.behaviour = behaviour
        self.received: list[tuple[float, dict]] = []
        self.times: dict[str, float] = {}
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._stop, self._loop = asyncio.Event(), asyncio.get_running_loop()
        async with serve(self._handle, "127.0.0.1", 0) as server:
            self.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/stream"
            self._ready.set()
            await self._stop.wait()

    async def _handle(self, websocket) -> None:
        await self.behaviour(websocket, self)

    async def next(self, websocket, event: str) -> dict:
        while True:
            message = json.loads(await websocket.recv())
            self.received.append((time.monotonic(), message))
            if message["event"] == event:
                return message

    async def until_spoken_then_quiet(self, websocket, quiet_frames: int = 10) -> None:
        """Until the caller spoke and then sent ``quiet_frames`` silent frames in a row."""
        spoken, quiet = False, 0
        while True:
            payload = base64.b64decode((await self.next(websocket, "media"))["media"]["payload"])
            if any(byte not in (0xFF, 0x7F) for byte in payload):
                spoken, quiet = True, 0
            elif spoken:
                quiet += 1
                if quiet >= quiet_frames:
                    return

    async def drain(self, websocket) -> None:
        try:
            async for raw in websocket:
                self.received.append((time.monotonic(), json.loads(raw)))
        except ConnectionClosed:  # the caller hung up without a closing handshake
            pass

    def __enter__(self) -> StreamServer:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def of(self, event: str) -> list[tuple[float, dict]]:
        return [(at, message) for at, message in self.received if message["event"] == event]


def media(payload: bytes) -> str:
    return json.dumps({"event": "media", "streamSid": "MZ", "media": {"payload": base64.b64encode(payload).decode()}})


def mark(name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": "MZ", "mark": {"name": name}})


async def plays_marks_clears_and_answers(websocket, server: StreamServer) -> None:
    await server.next(websocket, "connected")
    server.start = await server.next(websocket, "start")
    for _ in range(25):  # half a second, all at once: the caller plays it in real time
        await websocket.send(media(SPOKEN))
    await websocket.send(mark("first"))
    server.times["first_sent"] = time.monotonic()
    for _ in range(50):
        await websocket.send(media(SPOKEN))
    await websocket.send(mark("second"))
    await websocket.send(mark("third"))
    await server.next(websocket, "mark")
    await asyncio.sleep(0.2)
    server.times["clear_sent"] = time.monotonic()
    await websocket.send(json.dumps({"event": "clear", "streamSid": "MZ"}))
    await server.next(websocket, "mark")
    await server.next(websocket, "mark")
    await server.until_spoken_then_quiet(websocket)
    server.times["reply_sent"] = time.monotonic()
    for _ in range(10):
        await websocket.send(media(SPOKEN))
    await server.drain(websocket)


def test_caller_paces_in_real_time_echoes_marks_on_playback_and_at_once_on_clear():
    with StreamServer(plays_marks_clears_and_answers) as server:
        caller = MediaStreamCaller(
            server.url, token="secret-token", call_sid="CA" + "1" * 32, account_sid="AC" + "2" * 32,
            script=[Say("Hello there", min_gap=0.3), Pause(0.4), Dtmf("7"), Hangup()],
        ).start()  # fmt: skip
        caller.wait(15)

    start = server.start["start"]
    assert start["customParameters"] == {"token": "secret-token"} and start["callSid"] == "CA" + "1" * 32
    assert start["streamSid"].startswith("MZ") and start["tracks"] == ["inbound"]
    assert start["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert [m["event"] for _, m in server.received[:2]] == ["connected", "start"]

    frames = server.of("media")
    numbers = [int(m["sequenceNumber"]) for _, m in server.received[1:]]
    assert numbers == list(range(1, len(numbers) + 1))  # one count across every message after connected
    assert [int(m["media"]["chunk"]) for _, m in frames] == list(range(1, len(frames) + 1))
    assert [int(m["media"]["timestamp"]) for _, m in frames] == [20 * i for i in range(len(frames))]
    assert all(len(base64.b64decode(m["media"]["payload"])) == 160 for _, m in frames)
    elapsed = frames[-1][0] - frames[0][0]
    expected = (len(frames) - 1) * 0.02
    assert len(frames) > 100 and abs(elapsed - expected) < 0.08, (len(frames), elapsed, expected)

    marks = {m["mark"]["name"]: at for at, m in server.of("mark")}
    assert list(marks) == ["first", "second", "third"] and caller.marks_echoed == ["first", "second", "third"]
    played = marks["first"] - server.times["first_sent"]
    assert 0.45 < played < 0.65, played  # echoed when playback reached it: after half a second of audio
    assert marks["second"] - server.times["clear_sent"] < 0.05 and marks["third"] - marks["second"] < 0.02
    clear = caller.events("clear")[0]
    assert clear.details["pending_marks"] == ["second", "third"] and clear.details["dropped_bytes"] > 0

    assert len(caller.utterances) == 1 and caller.utterances[0].ended_at > clear.at
    assert len(caller.response_delays) == 1 and 0.15 < caller.response_delays[0] < 0.5, caller.response_delays
    assert caller.agent_audio_bytes == 85 * 160 and len(caller.frames_received) == 85
    dtmf = [m for _, m in server.of("dtmf")]
    assert dtmf and dtmf[0]["dtmf"] == {"track": "inbound_track", "digit": "7"}
    stop = server.of("stop")[0][1]
    assert stop["stop"] == {"accountSid": "AC" + "2" * 32, "callSid": "CA" + "1" * 32}
    assert caller.closed_by == "caller" and caller.script_done


async def talks_until_interrupted(websocket, server: StreamServer) -> None:
    await server.next(websocket, "connected")
    await server.next(websocket, "start")
    for _ in range(150):  # three seconds of agent speech
        await websocket.send(media(SPOKEN))
    await websocket.send(mark("reply"))
    while True:  # the first spoken frame of the caller is a barge-in: stop talking
        payload = base64.b64decode((await server.next(websocket, "media"))["media"]["payload"])
        if any(byte not in (0xFF, 0x7F) for byte in payload):
            break
    server.times["barge_in_heard"] = time.monotonic()
    await websocket.send(json.dumps({"event": "clear", "streamSid": "MZ"}))
    await server.next(websocket, "mark")
    await websocket.close()


def test_barge_in_speaks_over_the_agent_and_measures_the_clear():
    with StreamServer(talks_until_interrupted) as server:
        caller = MediaStreamCaller(server.url, script=[BargeIn("Wait, stop", after_agent_audio_seconds=0.4)])
        caller.start().wait(10)
    barge_in = caller.utterances[0]
    assert barge_in.barge_in and barge_in.started_at is not None
    assert len(caller.clear_delays) == 1 and 0 < caller.clear_delays[0] < 0.2, caller.clear_delays
    agent_start = caller.frames_received[0][0]
    assert 0.4 <= barge_in.started_at - agent_start < 0.6  # after 0.4 s of the agent's audio played
    assert caller.marks_echoed == ["reply"] and caller.closed_by == "server"
    assert caller.events("server.closed")


def test_caller_opens_our_stream_which_records_start_and_stop(asgi_live_server, organization):
    from telephony.models import Call, CallDirection, CallEvent
    from telephony.services.streams import stream_token_issue

    call = Call.objects.create(
        organization=organization, direction=CallDirection.INBOUND, from_number="+14155550100",
        to_number="+14155550123", twilio_sid="CA" + "b" * 32, status="ringing",
    )  # fmt: skip
    url = asgi_live_server.replace("http://", "ws://") + f"/ws/telephony/stream/{call.id}/"
    caller = MediaStreamCaller(
        url, token=stream_token_issue(call), call_sid=call.twilio_sid, script=[Pause(0.3), Dtmf("1"), Hangup()]
    )  # fmt: skip
    caller.start().wait(15)
    assert caller.error is None and caller.closed_by == "caller" and caller.frames_sent >= 10
    deadline = time.monotonic() + 5  # the server records the stop once it has handled it
    while True:
        kinds = list(CallEvent.objects.for_org(organization).filter(call=call).values_list("kind", flat=True))
        if "stream.stopped" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # A call without an agent runs no conversation; the stream still opens and closes cleanly.
    assert kinds == ["stream.started", "in-progress", "engine.unavailable", "stream.stopped"]


class VoiceAnswer(StandIn):
    """The application's side of the voice webhook: answers every request with ``twiml``."""

    name = "voice-answer"
    twiml = ""

    def handle(self, request):
        return Reply(body=self.twiml.encode(), content_type="application/xml")


async def waits_for_stop(websocket, server: StreamServer) -> None:
    await server.next(websocket, "start")
    await server.next(websocket, "stop")
    server.times["stop"] = time.monotonic()
    await server.drain(websocket)


def test_twilio_stand_in_opens_the_stream_and_a_redirect_stops_it_and_completes_the_call(twilio_standin):
    with StreamServer(waits_for_stop) as server:
        answering = VoiceAnswer()
        answering.twiml = (
            f'<Response><Connect><Stream url="{server.url}"><Parameter name="token" value="tok"/>'
            "</Stream></Connect></Response>"
        )
        answering.start()
        try:
            twilio_standin.media_caller_script = lambda call: [Pause(60)]
            client = twilio_client()
            number = client.incoming_phone_numbers.create(
                phone_number="+14155550123", voice_url=answering.base_url + "/voice",
                status_callback=answering.base_url + "/status",
            )  # fmt: skip
            answer = twilio_standin.inbound_call(number.phone_number, "+14155550100")
            deadline = time.monotonic() + 5
            while not server.of("start") and time.monotonic() < deadline:
                time.sleep(0.02)
            start = server.of("start")[0][1]["start"]
            assert start["customParameters"] == {"token": "tok"} and start["callSid"] == answer.call_sid
            assert start["accountSid"] == twilio_standin.account_sid
            assert client.calls(answer.call_sid).fetch().status == "in-progress"
            dial = "<Response><Dial>+14155550199</Dial></Response>"
            client.calls(answer.call_sid).update(twiml=dial)
            caller = twilio_standin.media_callers[answer.call_sid].wait(5)
            assert server.of("stop") and caller.closed_by == "caller"
            deadline = time.monotonic() + 5
            while client.calls(answer.call_sid).fetch().status != "completed" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert client.calls(answer.call_sid).fetch().status == "completed"
            assert twilio_standin.call_twiml[answer.call_sid][-1] == dial
            twilio_standin.settle()
            completed = twilio_standin.callbacks_for(answer.call_sid, "status")
            assert completed and completed[-1].params["CallStatus"] == "completed"
            assert int(completed[-1].params["CallDuration"]) >= 1
        finally:
            answering.stop()


def test_render_speaks_a_sentence_as_mulaw_and_caches_it():
    text = "Your table for two is booked for seven o'clock tonight."
    audio = speech.render(text)
    assert 2.0 < len(audio) / 8000 < 10.0  # a sentence lasts seconds
    loud = sum(1 for byte in audio if byte not in (0xFF, 0x7F))
    assert loud > len(audio) // 2
    assert speech.render(text) is audio  # from memory; and on disk for the next process:
    cached = list(speech.cache_dir().glob("*.mulaw"))
    assert any(path.read_bytes() == audio for path in cached)
    pcm = speech.render("Hello", sample_rate=16000, encoding="pcm16")
    assert len(pcm) % 2 == 0 and len(pcm) / 32000 > 0.3
    assert speech.silence(0.02) == bytes([0xFF]) * 160 and speech.silence(0.5, encoding="pcm16") == bytes(8000)
    with pytest.raises(ValueError):
        speech.render("Hello", encoding="opus")


def test_an_inbound_call_through_the_stand_in_streams_to_our_app_and_completes(
    asgi_live_server, twilio_standin, organization, settings
):
    from telephony.models import Call, CallEvent
    from telephony.tests.calls_support import line

    settings.PUBLIC_BASE_URL = asgi_live_server  # our hooks and the stream's ws:// URL, served for real
    twilio_standin.media_caller_script = [Pause(0.4), Dtmf("5"), Hangup()]
    number = line(organization)
    answer = twilio_standin.inbound_call(number.number, "+14155550100")
    assert answer.status == 200 and "<Connect><Stream" in answer
    caller = twilio_standin.media_callers[answer.call_sid].wait(15)
    assert caller.error is None and caller.closed_by == "caller"
    deadline = time.monotonic() + 5
    while twilio_standin.calls[answer.call_sid].status != "completed" and time.monotonic() < deadline:
        time.sleep(0.02)
    twilio_standin.settle()
    completed = twilio_standin.callbacks_for(answer.call_sid, "status")[-1]
    assert completed.params["CallStatus"] == "completed" and completed.status in (200, 204)
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)

    def kinds() -> list[str]:
        return list(CallEvent.objects.for_org(organization).filter(call=call).values_list("kind", flat=True))

    # The consumer records the stream's end as its socket closes, which may be after the call completed.
    deadline = time.monotonic() + 10
    while "stream.stopped" not in kinds() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "stream.started" in kinds() and "stream.stopped" in kinds()
