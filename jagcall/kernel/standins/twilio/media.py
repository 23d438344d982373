"""Twilio's side of one bidirectional Media Stream: a simulated caller on a real websocket.

    caller = MediaStreamCaller(url, token=token, call_sid=call.sid, script=[
        Say("Hi, I'd like to book a table for two."),          # once the agent's greeting played out
        BargeIn("Actually, make it three.", after_agent_audio_seconds=0.5),
        Dtmf("1"),
        Hangup(),
    ]).start()                                                # a thread with its own event loop
    caller.wait(30)                                           # or, in async code: await caller.run()
    caller.response_delays, caller.clear_delays, caller.marks_echoed

It behaves as Twilio does on a ``<Connect><Stream>``: ``connected``, then ``start`` (streamSid,
callSid, accountSid, tracks, mediaFormat, customParameters), then one ``media`` message every 20 ms
(160 bytes of 8 kHz mu-law, numbered like Twilio's: sequenceNumber across all messages, chunk and
timestamp per media message), silence when the caller is quiet, on a schedule kept from a
monotonic clock so no drift accumulates. What the server sends is played in real time: ``media``
payloads join a playback queue that drains 20 ms per tick; a ``mark`` is echoed when playback
reaches it; ``clear`` drops the queued audio and echoes every mark not yet played, at once.

Everything is kept on a timeline (monotonic seconds) and summed up by properties:
``response_delays`` (end of each utterance's last speech frame to the first agent audio after it),
``clear_delays`` (start of a barge-in to the ``clear`` that stopped the agent), ``marks_echoed``,
``agent_audio_seconds``, ``frames_received`` (arrival time and size of every agent frame).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from jagcall.kernel.standins import speech

FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
FRAME_SECONDS = 0.02
SILENT_FRAME = bytes([speech.MULAW_SILENCE]) * FRAME_BYTES
POLL_SECONDS = 0.005


# -- the script ------------------------------------------------------------------------------
@dataclass
class Say:
    """Speak ``text`` when the agent's audio finished playing (``after="agent_done"``: audio arrived since
    the previous step, the playback queue drained and nothing new came for ``min_gap`` seconds), or
    ``after`` seconds after the previous step. ``give_up_after``: speak anyway once that many seconds
    passed waiting for the agent (the timeline says so)."""

    text: str
    after: str | float = "agent_done"
    min_gap: float = 0.6
    give_up_after: float = 20.0


@dataclass
class BargeIn:
    """Speak ``text`` over the agent once ``after_agent_audio_seconds`` of its reply have played."""

    text: str
    after_agent_audio_seconds: float = 0.5
    give_up_after: float = 20.0


@dataclass
class Dtmf:
    digit: str


@dataclass
class Pause:
    seconds: float


@dataclass
class Hangup:
    """Send ``stop`` and close the websocket: at once, or with ``after="agent_done"`` once the agent's
    answer to the previous step played out (as ``Say`` waits for it), at the latest after
    ``give_up_after`` seconds."""

    after: str | None = None
    min_gap: float = 0.8
    give_up_after: float = 20.0


Step = Say | BargeIn | Dtmf | Pause | Hangup


@dataclass
class Event:
    at: float  # time.monotonic()
    kind: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Utterance:
    text: str
    barge_in: bool
    started_at: float | None = None  # first speech frame sent
    ended_at: float | None = None  # last speech frame sent
    first_agent_audio_at: float | None = None  # first agent frame received after ended_at
    clear_at: float | None = None  # first clear received after started_at (barge-ins)

    @property
    def response_delay(self) -> float | None:
        return None if self.first_agent_audio_at is None else self.first_agent_audio_at - self.ended_at

    @property
    def clear_delay(self) -> float | None:
        return None if self.clear_at is None else self.clear_at - self.started_at


def new_stream_sid() -> str:
    return "MZ" + secrets.token_hex(16)


class MediaStreamCaller:
    """One simulated caller on one Media Stream (see the module docstring)."""

    def __init__(
        self, url: str, *, script: Sequence[Step] = (), token: str | None = None,
        parameters: dict[str, str] | None = None, call_sid: str | None = None, account_sid: str | None = None,
        stream_sid: str | None = None, open_timeout: float = 10.0,
    ) -> None:  # fmt: skip
        self.url = url
        self.script = list(script)
        self.parameters = dict(parameters or {})
        if token is not None:
            self.parameters["token"] = token
        self.call_sid = call_sid or "CA" + secrets.token_hex(16)
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.stream_sid = stream_sid or new_stream_sid()
        self.open_timeout = open_timeout
        self.timeline: list[Event] = []
        self.utterances: list[Utterance] = []
        self.frames_received: list[tuple[float, int]] = []  # (arrival, bytes) of every agent media message
        self.frames_sent = 0
        self.marks_echoed: list[str] = []
        self.closed_by: str | None = None  # "caller" | "server" | "error"
        self.close_code: int | None = None
        self.error: BaseException | None = None
        self.script_done = False
        self._sequence = 0
        self._chunk = 0
        self._started_at: float | None = None
        self._outgoing: deque[tuple[Utterance, bytes]] = deque()
        self._playback: deque[bytes | str] = deque()  # audio chunks and mark names, in arrival order
        self._playback_bytes = 0
        self._last_agent_audio_at: float | None = None
        self._turn_played_bytes = 0  # agent audio played since the current step began
        self._websocket = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_lock: asyncio.Lock | None = None
        self._stop_requested = False

    # -- the figures ---------------------------------------------------------------------------
    @property
    def response_delays(self) -> list[float]:
        return [u.response_delay for u in self.utterances if u.response_delay is not None]

    @property
    def clear_delays(self) -> list[float]:
        return [u.clear_delay for u in self.utterances if u.barge_in and u.clear_delay is not None]

    @property
    def agent_audio_bytes(self) -> int:
        return sum(size for _, size in self.frames_received)

    @property
    def agent_audio_seconds(self) -> float:
        return self.agent_audio_bytes / 8000

    @property
    def clears(self) -> list[float]:
        return [event.at for event in self.timeline if event.kind == "clear"]

    def events(self, kind: str) -> list[Event]:
        return [event for event in list(self.timeline) if event.kind == kind]

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    # -- running -------------------------------------------------------------------------------
    def start(self) -> MediaStreamCaller:
        """Run in a thread of its own (with its own event loop); returns at once."""
        self._thread = threading.Thread(target=asyncio.run, args=(self.run(),), name="media-stream-caller", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> MediaStreamCaller:
        """Until the script finished and the stream ended (hung up or closed by the server)."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"the media stream to {self.url} still runs after {timeout}s")
        if self._thread is not None:
            self._thread.join(5)
        return self

    def stop(self) -> None:
        """Hang up from any thread (send ``stop`` and close), as Twilio does when the call ends or moves on."""
        self._stop_requested = True  # seen by run() if it has not begun yet
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass  # the loop just finished

    async def run(self) -> MediaStreamCaller:
        """Connect, play the script, stream until the end; in the caller's own event loop."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self._stop_requested:
            self._stopping.set()
        self._send_lock = asyncio.Lock()
        try:
            async with connect(
                self.url, open_timeout=self.open_timeout, proxy=None, compression=None, max_size=None,
                ping_interval=None,
            ) as websocket:  # fmt: skip
                self._websocket = websocket
                await self._open()
                tasks = [
                    asyncio.create_task(self._receive()),
                    asyncio.create_task(self._tick()),
                    asyncio.create_task(self._play_script()),
                    asyncio.create_task(self._stopping.wait()),
                ]
                receiving, _, scripting, stopping = tasks
                await asyncio.wait([receiving, stopping], return_when=asyncio.FIRST_COMPLETED)
                if stopping.done() and not receiving.done():
                    await self._hang_up()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        except (OSError, ConnectionClosed, asyncio.TimeoutError) as error:
            self.error = error
            self.closed_by = self.closed_by or "error"
            self._note("error", error=repr(error))
        finally:
            self._finished.set()
        return self

    # -- protocol --------------------------------------------------------------------------------
    def _note(self, kind: str, **details: Any) -> Event:
        event = Event(time.monotonic(), kind, details)
        self.timeline.append(event)
        return event

    def _next_sequence(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    async def _send(self, message: dict) -> None:
        async with self._send_lock:
            await self._websocket.send(json.dumps(message))

    async def _open(self) -> None:
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        self._note("connected")
        start = {
            "accountSid": self.account_sid, "streamSid": self.stream_sid, "callSid": self.call_sid,
            "tracks": ["inbound"], "customParameters": dict(self.parameters),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }  # fmt: skip
        await self._send({"event": "start", "sequenceNumber": self._next_sequence(), "start": start,
                          "streamSid": self.stream_sid})  # fmt: skip
        self._started_at = time.monotonic()
        self._note("start", stream_sid=self.stream_sid)

    async def _hang_up(self) -> None:
        if self.closed_by is not None:
            return
        self.closed_by = "caller"
        try:
            stop = {"accountSid": self.account_sid, "callSid": self.call_sid}
            await self._send({"event": "stop", "sequenceNumber": self._next_sequence(), "streamSid": self.stream_sid,
                              "stop": stop})  # fmt: skip
            self._note("stop.sent")
            await self._websocket.close()
        except ConnectionClosed:
            pass
        self.close_code = self._websocket.close_code
        self._note("hangup", code=self.close_code)

    async def _echo_mark(self, name: str) -> None:
        await self._send({"event": "mark", "sequenceNumber": self._next_sequence(), "streamSid": self.stream_sid,
                          "mark": {"name": name}})  # fmt: skip
        self.marks_echoed.append(name)
        self._note("mark.echoed", name=name)

    async def _receive(self) -> None:
        try:
            async for raw in self._websocket:
                if isinstance(raw, bytes):
                    continue
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                event = message.get("event") if isinstance(message, dict) else None
                if event == "media":
                    self._on_media(message.get("media") or {})
                elif event == "mark":
                    name = str((message.get("mark") or {}).get("name", ""))
                    self._playback.append(name)
                    self._note("mark.received", name=name)
                elif event == "clear":
                    await self._on_clear()
        except ConnectionClosed:
            pass
        if self.closed_by is None:
            self.closed_by = "server"
            self.close_code = self._websocket.close_code
            self._note("server.closed", code=self.close_code)

    def _on_media(self, media: dict) -> None:
        now = time.monotonic()
        try:
            audio = base64.b64decode(media.get("payload") or "")
        except ValueError:
            return
        if not audio:
            return
        self.frames_received.append((now, len(audio)))
        self._playback.append(audio)
        self._playback_bytes += len(audio)
        self._last_agent_audio_at = now
        for utterance in self.utterances:
            if utterance.ended_at is not None and utterance.first_agent_audio_at is None:
                utterance.first_agent_audio_at = now
                self._note("agent.audio.first", text=utterance.text, delay=utterance.response_delay)

    async def _on_clear(self) -> None:
        now = time.monotonic()
        dropped = self._playback_bytes
        pending = [item for item in self._playback if isinstance(item, str)]
        self._playback.clear()
        self._playback_bytes = 0
        event = self._note("clear", dropped_bytes=dropped, pending_marks=pending)
        for utterance in self.utterances:
            if utterance.barge_in and utterance.started_at is not None and utterance.clear_at is None:
                utterance.clear_at = now
                event.details["after_barge_in"] = utterance.clear_delay
        for name in pending:  # Twilio answers a clear with every unplayed mark, at once
            await self._echo_mark(name)

    async def _tick(self) -> None:
        """Every 20 ms on the monotonic schedule: send one caller frame, play 20 ms of the agent."""
        frame_number = 0
        while True:
            frame_number += 1
            due = self._started_at + frame_number * FRAME_SECONDS
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._send_frame(frame_number)
            await self._play_frame()

    async def _send_frame(self, frame_number: int) -> None:
        frame, finished = SILENT_FRAME, None
        if self._outgoing:
            utterance, audio = self._outgoing.popleft()
            if utterance.started_at is None:
                utterance.started_at = time.monotonic()
                self._note("speech.started", text=utterance.text, barge_in=utterance.barge_in)
            frame, rest = audio[:FRAME_BYTES], audio[FRAME_BYTES:]
            frame = frame + SILENT_FRAME[len(frame) :]
            if rest:
                self._outgoing.appendleft((utterance, rest))
            else:
                finished = utterance
        self._chunk += 1
        media = {
            "track": "inbound", "chunk": str(self._chunk),
            "timestamp": str((frame_number - 1) * 20), "payload": base64.b64encode(frame).decode(),
        }  # fmt: skip
        await self._send({"event": "media", "sequenceNumber": self._next_sequence(), "media": media,
                          "streamSid": self.stream_sid})  # fmt: skip
        self.frames_sent += 1
        if finished is not None:
            finished.ended_at = time.monotonic()
            self._note("speech.ended", text=finished.text, barge_in=finished.barge_in)

    async def _play_frame(self) -> None:
        budget = FRAME_BYTES
        while self._playback:
            head = self._playback[0]
            if isinstance(head, str):
                self._playback.popleft()
                await self._echo_mark(head)
                continue
            if budget == 0:
                break
            played = head[:budget]
            budget -= len(played)
            self._playback_bytes -= len(played)
            self._turn_played_bytes += len(played)
            if len(played) == len(head):
                self._playback.popleft()
            else:
                self._playback[0] = head[len(played) :]

    # -- the script ------------------------------------------------------------------------------
    def _agent_quiet_for(self, seconds: float) -> bool:
        if self._playback_bytes or self._last_agent_audio_at is None:
            return False
        return time.monotonic() - self._last_agent_audio_at >= seconds

    def _agent_done(self, heard_before: int, gap: float) -> Callable[[], bool]:
        """Agent audio arrived after the first ``heard_before`` frames, played out, and ``gap`` seconds passed."""
        return lambda: len(self.frames_received) > heard_before and self._agent_quiet_for(gap)

    async def _wait_until(self, condition: Callable[[], bool], limit: float) -> bool:
        deadline = time.monotonic() + limit
        while not condition():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
        return True

    async def _speak(self, text: str, *, barge_in: bool, audio: bytes | None = None) -> None:
        utterance = Utterance(text, barge_in)
        if audio is None:
            audio = await asyncio.to_thread(speech.render, text)
        self.utterances.append(utterance)
        self._outgoing.append((utterance, audio))
        await self._wait_until(lambda: utterance.ended_at is not None, 3600)

    async def _play_script(self) -> None:
        for step in self.script:
            heard_before = len(self.frames_received)
            self._turn_played_bytes = 0
            if isinstance(step, Say):
                if step.after == "agent_done":
                    if not await self._wait_until(self._agent_done(heard_before, step.min_gap), step.give_up_after):
                        self._note("gave_up_waiting", text=step.text)
                else:
                    await asyncio.sleep(float(step.after))
                await self._speak(step.text, barge_in=False)
            elif isinstance(step, BargeIn):
                # Rendered before the wait, so the caller cuts in on time even when speech synthesis is slow.
                audio = await asyncio.to_thread(speech.render, step.text)
                wanted = int(step.after_agent_audio_seconds * 8000)
                if not await self._wait_until(lambda: self._turn_played_bytes >= wanted, step.give_up_after):
                    self._note("gave_up_waiting", text=step.text)
                await self._speak(step.text, barge_in=True, audio=audio)
            elif isinstance(step, Dtmf):
                await self._send({"event": "dtmf", "sequenceNumber": self._next_sequence(),
                                  "streamSid": self.stream_sid,
                                  "dtmf": {"track": "inbound_track", "digit": step.digit}})  # fmt: skip
                self._note("dtmf.sent", digit=step.digit)
            elif isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Hangup):
                if step.after == "agent_done":
                    if not await self._wait_until(self._agent_done(heard_before, step.min_gap), step.give_up_after):
                        self._note("gave_up_waiting", text="(hang up)")
                self.script_done = True
                self._note("script.done")
                self._stopping.set()
                return
        self.script_done = True
        self._note("script.done")
