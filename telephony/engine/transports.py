"""Pipecat transports over a Channels websocket consumer.

Pipecat's own websocket transports expect FastAPI or run their own server. Here the consumer
owns the socket: it hands each message it receives to ``ConsumerLink.feed`` (never awaiting
the pipeline: ``feed`` only queues), and the output transport sends through the consumer's
``send``. One link per conversation; ``serializer`` speaks the peer's protocol (Twilio Media
Streams for a call, raw PCM for the browser).

Audio out is paced against the listener's clock: each frame is sent at most ``lead`` seconds
(ENGINE_AUDIO_LEAD_SECONDS)
before it is due to play, so the peer's buffer never runs dry (a frame is never late) and never
holds more than ``lead`` of audio (a ``clear`` on barge-in discards at most that much, and a
mark the peer echoes tells within that much what was heard).

Hold and release (barge-in): ``hold()`` stops the agent's audio at once when the caller starts
speaking over it: the peer is told to ``clear`` what it buffered, and what it had not played yet is
kept. ``release()`` (the caller only said "mm-hm") sends that again and lets the audio flow on, so
nothing is lost; an interruption (the caller took the turn) drops it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    StartFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams


def _audio_lead() -> float:
    from django.conf import settings

    return float(settings.ENGINE_AUDIO_LEAD_SECONDS)


def _audio_out_align() -> float:
    from django.conf import settings

    return float(settings.ENGINE_AUDIO_OUT_ALIGN_MS) / 1000


def _audio_in_frame_ms() -> int:
    from django.conf import settings

    return int(settings.ENGINE_AUDIO_IN_FRAME_MS)


MARK_EVERY_MS = 100


class LinkListener:
    """What the conversation hears from the output transport (all optional)."""

    def audio_written(self, milliseconds: float) -> None: ...

    def word_released(self, text: str) -> None: ...

    def speech_ended(self) -> None: ...

    def cleared(self) -> None: ...

    def released(self, held_ms: float) -> None: ...

    def mark_sent(self, name: str) -> None: ...


class ConsumerLink:
    """The consumer's side: messages in (``feed``), messages out (``send``)."""

    def __init__(
        self,
        send: Callable[[str | bytes], Awaitable[None]],
        *,
        serializer: FrameSerializer,
        stream_sid: str = "",
        marks: bool = False,
    ) -> None:
        self._send = send
        self.serializer = serializer
        self.stream_sid = stream_sid
        self.marks = marks
        self.listener: LinkListener = LinkListener()
        self.queue: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.closed = False

    def feed(self, message: str | bytes) -> None:
        if not self.closed:
            self.queue.put_nowait(message)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)

    async def send(self, data: str | bytes) -> bool:
        if self.closed:
            return False
        try:
            await self._send(data)
        except Exception:  # the socket went away under us: the pipeline is being ended
            self.closed = True
            return False
        return True


class LinkInputTransport(BaseInputTransport):
    def __init__(self, link: ConsumerLink, params: TransportParams, *, frame_ms: int | None = None, **kwargs) -> None:
        super().__init__(params, **kwargs)
        self._link = link
        self._receive_task: asyncio.Task | None = None
        self._frame_ms = _audio_in_frame_ms() if frame_ms is None else frame_ms

    async def setup(self, setup: FrameProcessorSetup):
        await super().setup(setup)
        await self._link.serializer.setup(setup)

    async def start(self, frame: StartFrame):
        await super().start(frame)
        if self._receive_task is None:
            self._receive_task = self.create_task(self._receive())
        await self.set_transport_ready(frame)

    async def _stop_receiving(self):
        if self._receive_task is not None:
            await self.cancel_task(self._receive_task)
            self._receive_task = None

    async def stop(self, frame: EndFrame):
        await super().stop(frame)
        await self._stop_receiving()

    async def cancel(self, frame: CancelFrame):
        await super().cancel(frame)
        await self._stop_receiving()

    async def _receive(self):
        # [!!] The peer's audio goes on in frames of ``frame_ms`` (Twilio sends 20 ms each): every frame costs
        # the same queues, task switches, VAD executor hop and Deepgram message whatever its length.
        pending: list[InputAudioRawFrame] = []
        pending_bytes = 0
        while True:
            message = await self._link.queue.get()
            if message is None:
                await self._push_audio(pending)
                return
            frame = await self._link.serializer.deserialize(message)
            if frame is None:
                continue
            if isinstance(frame, InputAudioRawFrame):
                pending.append(frame)
                pending_bytes += len(frame.audio)
                if pending_bytes * 1000 >= self._frame_ms * 2 * frame.sample_rate * frame.num_channels:
                    await self._push_audio(pending)
                    pending, pending_bytes = [], 0
            else:
                await self._push_audio(pending)  # what was said before a key press goes before it
                pending, pending_bytes = [], 0
                await self.push_frame(frame)

    async def push_audio_frame(self, frame: InputAudioRawFrame):
        # [!!] Straight on: the base transport queues each frame for a task of its own, which waits on it with
        # a timeout armed per frame (a task and a timer every frame). ``_receive`` is already the task that
        # keeps the consumer from waiting on the pipeline.
        if self._params.audio_in_filter is not None:
            await super().push_audio_frame(frame)  # a filter runs in the base transport's task
        elif self._params.audio_in_enabled and self._params.audio_in_passthrough and not self._paused:
            await self.push_frame(frame)

    async def _push_audio(self, frames: list[InputAudioRawFrame]) -> None:
        if not frames:
            return
        if len(frames) == 1:
            await self.push_audio_frame(frames[0])
            return
        first = frames[0]
        audio = b"".join(frame.audio for frame in frames)
        await self.push_audio_frame(
            InputAudioRawFrame(audio=audio, sample_rate=first.sample_rate, num_channels=first.num_channels)
        )


class LinkOutputTransport(BaseOutputTransport):
    def __init__(self, link: ConsumerLink, params: TransportParams, *, lead: float | None = None, **kwargs):
        super().__init__(params, **kwargs)
        self._link = link
        self._configured_lead = _audio_lead() if lead is None else lead
        self._align = _audio_out_align()
        self._lead = self._configured_lead
        self._playhead = 0.0  # monotonic time at which the audio sent so far finishes playing
        self._since_mark_ms = 0.0
        self._mark_number = 0
        self._in_flight: deque[tuple[float, OutputAudioRawFrame]] = deque()  # (plays until, frame) sent
        self._held_audio: list[OutputAudioRawFrame] = []
        self._held_since: float | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def holding(self) -> bool:
        return self._held_since is not None

    @property
    def plays_until(self) -> float:
        """The monotonic time at which the audio sent so far has played (in the past: nothing is queued)."""
        return self._playhead

    def set_lead(self, seconds: float | None) -> None:
        """Send what comes next this far ahead of its playing (None: ENGINE_AUDIO_LEAD_SECONDS again)."""
        self._lead = self._configured_lead if seconds is None else seconds

    async def setup(self, setup: FrameProcessorSetup):
        await super().setup(setup)
        await self._link.serializer.setup(setup)

    async def start(self, frame: StartFrame):
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def hold(self) -> None:
        """Stop the agent's audio now: the peer clears its buffer; what it had not played yet is kept."""
        if self.holding:
            return
        self._held_since = time.monotonic()
        self._flowing.clear()
        now = self._held_since
        self._held_audio = [frame for until, frame in self._in_flight if until > now]
        self._in_flight.clear()
        self._playhead = 0.0
        self._link.listener.cleared()
        await self._write(InterruptionFrame())

    async def release(self) -> None:
        """Let the agent's audio flow on, from where the peer's buffer was cleared."""
        if not self.holding:
            return
        held_ms = (time.monotonic() - self._held_since) * 1000
        replay, self._held_audio = self._held_audio, []
        for frame in replay:
            self._schedule(frame)
            if not await self._write(frame):
                break
            await self._keep_lead()
        self._held_since = None
        self._link.listener.released(held_ms)
        self._flowing.set()

    def _drop_hold(self) -> None:
        self._held_audio = []
        self._held_since = None
        self._flowing.set()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._drop_hold()  # the caller took the turn: what was held is not said
            self._in_flight.clear()
            await self._write(frame)
            self._playhead = 0.0
            self._since_mark_ms = 0.0
            self._link.listener.cleared()

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        # [!!] A word passes here when its audio is due to play (the base transport's clock): what was
        # released is what the listener could have heard; marks echoed by Twilio confirm it.
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, TTSTextFrame):
                self._link.listener.word_released(frame.text)
            elif isinstance(frame, TTSStoppedFrame):
                self._link.listener.speech_ended()  # its last audio was sent; what follows is another's
            elif isinstance(frame, OutputAudioRawFrame):
                return  # sent: nothing after the transport reads audio (two hops a frame saved)
        await super().push_frame(frame, direction)

    async def send_message(self, frame: OutputTransportMessageFrame | OutputTransportMessageUrgentFrame):
        await self._write(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self._link.closed:
            return False
        if not self._flowing.is_set():
            await self._flowing.wait()  # held: the caller is speaking over the agent
        frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=self.sample_rate, num_channels=1)
        seconds = self._schedule(frame)
        if not await self._write(frame):
            return False
        milliseconds = seconds * 1000
        self._link.listener.audio_written(milliseconds)
        if self._link.marks:
            self._since_mark_ms += milliseconds
            if self._since_mark_ms >= MARK_EVERY_MS:
                self._since_mark_ms = 0.0
                await self._mark()
        await self._keep_lead()
        return True

    def _schedule(self, frame: OutputAudioRawFrame) -> float:
        """Place ``frame`` after the audio already sent (the listener's clock); its length in seconds.

        [!!] Recorded as in flight before it is sent, with no await between: a hold that comes while it is
        being sent keeps it."""
        seconds = len(frame.audio) / 2 / self.sample_rate
        now = time.monotonic()
        self._playhead = max(self._playhead, now) + seconds
        self._in_flight.append((self._playhead, frame))
        while self._in_flight and self._in_flight[0][0] < now:
            self._in_flight.popleft()  # played by now
        return seconds

    async def _mark(self):
        self._mark_number += 1
        name = f"m{self._mark_number}"
        self._link.listener.mark_sent(name)
        await self._link.send(f'{{"event":"mark","streamSid":"{self._link.stream_sid}","mark":{{"name":"{name}"}}}}')

    async def _keep_lead(self):
        """Until the audio sent plays out within ``lead`` seconds.

        [!!] Woken on the process's ``align`` grid (ENGINE_AUDIO_OUT_ALIGN_MS), at most that much later: every
        call speaking wakes at the same moments, and the event loop sends all their frames in one go instead
        of waking for each call's frame apart (a wake-up of the loop costs more than the frame's work)."""
        due = self._playhead - self._lead
        if self._align > 0:
            due = math.ceil(due / self._align) * self._align
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _write(self, frame: Frame) -> bool:
        if self._link.closed:
            return False
        payload = await self._link.serializer.serialize(frame)
        if not payload:
            return True
        return await self._link.send(payload)


class ConsumerTransport(BaseTransport):
    """Input and output over one ``ConsumerLink``."""

    def __init__(self, link: ConsumerLink, params: TransportParams) -> None:
        super().__init__()
        self._input = LinkInputTransport(link, params, name="link-in")
        self._output = LinkOutputTransport(link, params, name="link-out")

    def input(self) -> LinkInputTransport:
        return self._input

    def output(self) -> LinkOutputTransport:
        return self._output
