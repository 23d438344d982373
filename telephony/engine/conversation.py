"""One live conversation: its Pipecat pipeline, its turns, its guards and its latencies.

``Conversation(settings, link)`` is built by a consumer once the peer is authenticated;
``start()`` runs the pipeline as its own task (the consumer's ``receive`` never awaits it) and
``stop()`` cancels it. The order of a call:

1. the disclosures are spoken; the caller is muted meanwhile (nothing they say interrupts them,
   or reaches the LLM), and ``engine.disclosures_played`` goes on the call's timeline once their
   audio has been played out;
2. the agent's first message (interruptible);
3. turns: the caller's turn ends when Silero VAD hears ENGINE_VAD_STOP_SECONDS of silence and
   Smart Turn v3 judges the utterance complete; the passages of the agent's knowledge bases for
   what the caller said are put before the LLM; the reply streams sentence by sentence into TTS.

Barge-in: while the agent speaks, its voice is held as soon as the VAD hears the caller (Twilio
clears its buffer; ENGINE_BARGE_IN_HOLD); ENGINE_INTERRUPT_MIN_WORDS words from the caller interrupt
it, fewer (e.g. "okay", a backchannel) release it to go on from where it stopped. An interruption
cancels the LLM and TTS work in flight, and the agent's turn is stored as what the caller heard (the words
whose audio Twilio confirmed playing with a mark), with the whole reply kept apart.

Every agent turn carries its latencies, in milliseconds after the caller stopped speaking:
turn decided, final transcript, passages retrieved, LLM first token, TTS first byte, first
audio frame sent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.clocks.system_clock import SystemClock
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FunctionCallResultProperties,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.pipeline.worker_observer import WorkerObserver
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregatorParams,
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import TransportParams
from pipecat.turns.user_mute.base_user_mute_strategy import BaseUserMuteStrategy
from pipecat.turns.user_start.min_words_user_turn_start_strategy import MinWordsUserTurnStartStrategy
from pipecat.turns.user_start.vad_user_turn_start_strategy import VADUserTurnStartStrategy
from pipecat.turns.user_stop.turn_analyzer_user_turn_stop_strategy import TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from jagcall.kernel.memory import release_free_memory_soon
from telephony.engine import configure_logging
from telephony.engine.analyzers import SharedSileroVAD, SharedSmartTurn
from telephony.engine.services import llm_service, stt_service, tts_service
from telephony.engine.transports import ConsumerLink, ConsumerTransport, LinkListener, LinkOutputTransport
from telephony.services.conversations import (
    TEXT_MAX_CHARACTERS,
    ConversationSettings,
    ToolFailed,
    call_end,
    call_transfer,
    conversation_event_record,
    conversation_knowledge,
    conversation_live_text,
    conversation_turn_record,
)
from telephony.services.conversations import send_text as text_the_caller  # Conversation.send_text is the text channel

logger = logging.getLogger("jagcall.telephony.engine")

STILL_THERE = "Are you still there?"
GOODBYE_SILENT = "I haven't heard from you, so I'll end the call now. Goodbye."
GOODBYE_TIME_LIMIT = "I'm sorry, we've reached the time limit for this call. Goodbye."
PROVIDER_REQUEST_THREADS = 8  # the process's threads for the tools' requests to Twilio (_provider_request)
SEARCHES_AHEAD = 3  # knowledge searches begun ahead of a turn's hand-over at most (the caller went on speaking)
KNOWLEDGE_HEADER = (
    "Passages from the organization's knowledge base that may answer the caller. Answer from them when "
    "they do; never invent facts they do not give. Each is marked with its document."
)
PHONE_STYLE = (
    "You are speaking on the phone: answer in short spoken sentences, without lists, markdown or emoji."
)
MARK_TOLERANCE_MS = 40
# The disclosures' audio goes this far ahead of its playing (the caller cannot interrupt it): more than a
# TTS's first audio takes, so the first message, asked for when their last audio has gone, follows them
# without a pause.
DISCLOSURE_LEAD_SECONDS = 0.5
# [!!] Texts the agent may send in one call: a caller cannot have it text them over and over.
MAX_TEXTS_PER_CALL = 3


@dataclass
class _AgentTurn:
    """What is known of the agent turn being spoken."""

    generated: list[str] = field(default_factory=list)
    words: list[tuple[str, float]] = field(default_factory=list)  # (word, audio offset ms) as released
    audio_ms: float = 0.0
    first_audio_ns: int | None = None
    marks: dict[str, float] = field(default_factory=dict)  # mark name -> audio offset ms at that mark
    heard_ms: float = 0.0
    cleared: bool = False
    barged_in: bool = False  # the caller spoke over this turn (logged once, however many frames say so)
    held_ms: float = 0.0  # how long its audio was held while the caller spoke over it (then went on)
    latency_taken: bool = False  # ``latency`` was measured at its first audio (the exchange's moments)
    retrieved: list[dict] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)


@dataclass
class _Timing:
    """Moments of the current exchange, on the pipeline clock (ns)."""

    speech_stopped: int | None = None
    turn_analyzed: int | None = None  # Smart Turn judged the turn complete (VAD silence + its inference)
    turn_decided: int | None = None  # the turn was released to the LLM (after the final transcript too)
    transcript: int | None = None
    retrieved: int | None = None
    llm_first_token: int | None = None
    tts_first_byte: int | None = None
    first_audio: int | None = None
    awaiting_llm: bool = False
    awaiting_tts: bool = False
    awaiting_audio: bool = False


class _DisclosureMute(BaseUserMuteStrategy):
    """The caller is muted until the disclosures have been played out."""

    def __init__(self, conversation: Conversation) -> None:
        super().__init__()
        self._conversation = conversation

    async def process_frame(self, frame: Frame) -> bool:
        await super().process_frame(frame)
        return not self._conversation.disclosures_done


class _Knowledge(FrameProcessor):
    """Before each LLM run: the passages of the agent's knowledge bases for the caller's last words.

    It is also where the caller's audio stops: the VAD and Smart Turn (in the user aggregator just before)
    were its last readers. [!!] Passed on, each 20 ms frame of every call would go through the LLM, the
    TTS, the output transport and the assistant aggregator for nothing (five hops, a queue and a task
    switch each).
    """

    def __init__(self, conversation: Conversation) -> None:
        super().__init__(name="knowledge")
        self._conversation = conversation

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            return
        if isinstance(frame, LLMContextFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._conversation.retrieve(frame.context, self.get_clock().get_time)
        await self.push_frame(frame, direction)


class _TextOut(FrameProcessor):
    """The text channel's output: the LLM's reply streamed to the tester as it is written."""

    def __init__(self, conversation: Conversation) -> None:
        super().__init__(name="text-out")
        self._conversation = conversation

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMTextFrame):
            await self._conversation.text_chunk(frame.text)
        elif isinstance(frame, LLMFullResponseEndFrame):
            await self._conversation.text_done()
        await self.push_frame(frame, direction)


@functools.cache
def _provider_requests() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=PROVIDER_REQUEST_THREADS, thread_name_prefix="engine-provider")


def _provider_request(service):
    """``service`` (one that asks Twilio to act on the call: hang up, transfer, text) as a coroutine
    function, run on the process's threads for such requests instead of its one database thread.

    [!!] Outside an HTTP request, asgiref runs every ``database_sync_to_async`` call of a process on one
    thread, in order: every call's turns, events, live transcript and knowledge searches. A request to
    Twilio takes a few hundred milliseconds on a real line, and every other caller's database work would
    wait for it. These services are whole in themselves (their reads, the request, their writes), so any
    thread will do; each borrows a database connection only while it runs.
    """
    return database_sync_to_async(service, thread_sensitive=False, executor=_provider_requests())


def _words(text: str) -> str:
    """``text`` without its spacing: the caller's words, however the aggregator joined them."""
    return "".join(text.split())


def _swallow(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


# The frames a conversation watches (Conversation.observe); every other frame passes unobserved.
WATCHED_FRAMES = (
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    TranscriptionFrame,
    InterimTranscriptionFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputDTMFFrame,
    InterruptionFrame,
    ErrorFrame,
)
_watched_types: dict[type, bool] = {}


def _is_watched(frame: Frame) -> bool:
    kind = type(frame)
    watched = _watched_types.get(kind)
    if watched is None:
        watched = _watched_types[kind] = isinstance(frame, WATCHED_FRAMES)
    return watched


class _Observer(WorkerObserver):
    """Timestamps every stage of an exchange, once per frame (its first push), off the pipeline's path.

    [!!] It stands in for the pipeline task's own observer proxy (``PipelineTask._observer``), which
    queues every push and every processing of every frame, through every processor, to a task of each
    observer: for a call's 50 audio frames a second that was the largest part of the engine's CPU.
    Here a frame is looked at only if it is one of WATCHED_FRAMES (a type lookup), and only those are
    queued to the one task that runs ``Conversation.observe``, so a slow observation (a database
    write, a live push) never holds a frame up. The pipeline runs no other observer (turn tracking
    and tracing are off).
    """

    def __init__(self, conversation: Conversation) -> None:
        super().__init__(observers=[])
        self._conversation = conversation
        self._seen: weakref.WeakValueDictionary[int, Frame] = weakref.WeakValueDictionary()
        self._queue: asyncio.Queue[tuple[Frame, int]] = asyncio.Queue()
        self._worker: asyncio.Task | None = None

    async def setup(self, task_manager):
        await super().setup(task_manager)
        self._worker = self.create_task(self._observe_in_turn(), name=f"{self}::observe")

    async def cleanup(self):
        await super().cleanup()
        if self._worker is not None:
            await self.cancel_task(self._worker)
            self._worker = None

    async def on_process_frame(self, data):
        return None

    async def on_push_frame(self, data: FramePushed):
        frame = data.frame
        if not _is_watched(frame) or frame.id in self._seen:
            return
        self._seen[frame.id] = frame
        # The agent's voice is held the moment the caller's is heard: not after the queue's other work.
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._conversation.caller_voice_started()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._conversation.caller_voice_stopped()
        self._queue.put_nowait((frame, data.timestamp))

    async def _observe_in_turn(self):
        while True:
            frame, timestamp = await self._queue.get()
            try:
                await self._conversation.observe(frame, timestamp)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("conversation %s: observing %s failed", self._conversation.id, type(frame).__name__)


class Conversation(LinkListener):
    def __init__(self, settings: ConversationSettings, link: ConsumerLink, *, events=None) -> None:
        configure_logging()
        self.settings = settings
        self.link = link
        self.events = events  # async callable(dict) for a test page's own socket, or None
        self.id = settings.call_id or settings.session or str(uuid.uuid4())
        self.disclosures_done = not settings.disclosures or settings.channel == "text"
        self._disclosures_sent = False
        self.ended = asyncio.Event()
        self.end_reason = ""
        self._turn_index = 0
        self._timing = _Timing()
        self._agent_turn = _AgentTurn()
        self._pending_retrieved: list[dict] = []
        self._heard: list[str] = []  # the caller's final transcripts since their words last went to the LLM
        self._searches: dict[str, asyncio.Future] = {}  # knowledge searches begun ahead, by their query's words
        self._handed_over = ""  # the words of the query the last LLM request searched for
        self._turn_complete = False  # Smart Turn judged the caller's words so far a complete turn
        self._silence_prompts = 0
        self._task: PipelineTask | None = None
        self._runner_task: asyncio.Task | None = None
        self._guard_task: asyncio.Task | None = None
        self._ending = False
        self._record_lock = asyncio.Lock()
        self._text_reply: list[str] = []
        self._first_message_queued = False
        self._muted_audio_frames = 0
        self._bot_speaking = False
        self._output: LinkOutputTransport | None = None
        self._release_timer: asyncio.TimerHandle | None = None
        self._holding_tasks: set[asyncio.Task] = set()
        self._record_tasks: set[asyncio.Task] = set()  # writes a hang-up must not cut short
        self._texts_sent = 0
        # The pipeline's clock: the observer's timestamps come from it, and so do the text channel's.
        self._clock = SystemClock()

    # --- building ---------------------------------------------------------------------------------------

    @property
    def voice(self) -> bool:
        return self.settings.channel in {"phone", "browser"}

    def _system_prompt(self) -> str:
        parts = [self.settings.system_prompt.strip()]
        if self.voice:
            parts.append(PHONE_STYLE)
        return "\n\n".join(p for p in parts if p)

    def _tools(self) -> ToolsSchema | None:
        schemas = []
        transfers = [t for t in self.settings.tools if t["type"] == "transfer"]
        if transfers:
            options = [t.get("description") or t.get("number") or "a team member" for t in transfers]
            schemas.append(
                FunctionSchema(
                    name="transfer_call",
                    description="Transfer the caller to a person. Use only when the caller asks for it or when "
                    "you cannot help. Destinations: " + "; ".join(f"{i + 1}: {o}" for i, o in enumerate(options)),
                    properties={"destination": {"type": "integer", "minimum": 1, "maximum": len(transfers)}},
                    required=["destination"],
                )
            )
        texts = [t for t in self.settings.tools if t["type"] == "send_sms"]
        if texts and self.settings.channel == "phone":
            what = " ".join(t["description"].strip() for t in texts if (t.get("description") or "").strip())
            schemas.append(
                FunctionSchema(
                    name="send_sms",
                    description="Send the caller a text message (SMS) to the phone they are on, from this line: "
                    "something they will want in writing, such as an address, a link, a time or a reference, "
                    "or when they ask for a text. Write the whole message yourself, in plain words. Then tell the "
                    "caller what the tool answered: it may not have been able to send it."
                    + (f" What this line texts: {what}" if what else ""),
                    properties={
                        "body": {
                            "type": "string",
                            "description": "The text message itself, complete, at most 300 characters, "
                            "without markdown.",
                            "maxLength": TEXT_MAX_CHARACTERS,
                        }
                    },
                    required=["body"],
                )
            )
        if any(t["type"] == "end_call" for t in self.settings.tools) and self.settings.channel == "phone":
            schemas.append(
                FunctionSchema(
                    name="end_call",
                    description="Hang up, after you have said goodbye, when the conversation is finished.",
                    properties={},
                    required=[],
                )
            )
        return ToolsSchema(standard_tools=schemas) if schemas else None

    @staticmethod
    def _start_strategy():
        """When the caller's speech interrupts the agent: after N words (backchannels pass), or at once (0)."""
        words = int(django_settings.ENGINE_INTERRUPT_MIN_WORDS)
        if words <= 0:
            return VADUserTurnStartStrategy()
        return MinWordsUserTurnStartStrategy(min_words=words)

    def _build(self) -> PipelineTask:
        settings = self.settings
        sample_rate = 8000 if settings.channel == "phone" else 16000
        tools = self._tools()
        context = LLMContext(
            messages=[{"role": "system", "content": self._system_prompt()}],
            **({"tools": tools} if tools else {}),
        )
        self.context = context
        vad = None
        if self.voice:
            vad = SharedSileroVAD(
                params=VADParams(
                    start_secs=django_settings.ENGINE_VAD_START_SECONDS,
                    stop_secs=django_settings.ENGINE_VAD_STOP_SECONDS,
                    confidence=django_settings.ENGINE_VAD_CONFIDENCE,
                    min_volume=django_settings.ENGINE_VAD_MIN_VOLUME,
                )
            )
        strategies = UserTurnStrategies(
            start=[self._start_strategy()],
            stop=[
                TurnAnalyzerUserTurnStopStrategy(
                    turn_analyzer=SharedSmartTurn(
                        params=SmartTurnParams(stop_secs=django_settings.ENGINE_TURN_STOP_TIMEOUT_SECONDS),
                        on_complete=self._turn_analyzed,
                    )
                )
            ],
        )
        user_params = LLMUserAggregatorParams(
            user_turn_strategies=strategies if self.voice else None,
            user_mute_strategies=[_DisclosureMute(self)] if self.voice else [],
            vad_analyzer=vad,
            user_idle_timeout=settings.silence_timeout_seconds if self.voice else 0,
        )
        pair = LLMContextAggregatorPair(context, user_params=user_params, assistant_params=LLMAssistantAggregatorParams())
        user, assistant = pair.user(), pair.assistant()
        user.add_event_handler("on_user_turn_stopped", self._on_user_turn_stopped)
        user.add_event_handler("on_user_turn_idle", self._on_user_idle)
        assistant.add_event_handler("on_assistant_turn_stopped", self._on_assistant_turn_stopped)

        llm = llm_service(settings)
        # [!!] Not Pipecat's "async tools" (cancel_on_interruption=False): those add instructions of their
        # own as the system instruction, which for Anthropic replaces the agent's prompt. A tool that acts
        # (a transfer) finishes whatever the caller says meanwhile: its work is shielded below.
        llm.register_function("transfer_call", self._tool_transfer)
        llm.register_function("end_call", self._tool_end_call)
        llm.register_function("send_sms", self._tool_send_sms)

        if self.voice:
            transport = ConsumerTransport(
                self.link,
                TransportParams(
                    audio_in_enabled=True,
                    audio_in_sample_rate=sample_rate,
                    audio_out_enabled=True,
                    audio_out_sample_rate=sample_rate,
                    audio_out_10ms_chunks=2,
                ),
            )
            self.link.listener = self
            self._output = transport.output()
            processors = [
                transport.input(),
                stt_service(settings, sample_rate=sample_rate),
                user,
                _Knowledge(self),
                llm,
                tts_service(settings, sample_rate=sample_rate),
                transport.output(),
                assistant,
            ]
        else:
            processors = [user, _Knowledge(self), llm, _TextOut(self), assistant]
        task = PipelineTask(
            Pipeline(processors),
            params=PipelineParams(audio_in_sample_rate=sample_rate, audio_out_sample_rate=sample_rate),
            enable_rtvi=False,
            enable_turn_tracking=False,
            idle_timeout_secs=None,
            check_dangling_tasks=False,
            clock=self._clock,
            conversation_id=self.id,
        )
        # [!!] Pipecat 1.14's task keeps its observer proxy here (pinned in requirements.txt): see _Observer.
        assert isinstance(task._observer, WorkerObserver), "Pipecat moved the task's observer"
        task._observer = _Observer(self)
        return task

    # --- running ------------------------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        """Run the conversation as its own task (the consumer never awaits the pipeline in ``receive``)."""
        self._task = self._build()
        runner = PipelineRunner(handle_sigint=False, handle_sigterm=False)
        self._runner_task = asyncio.create_task(self._run(runner), name=f"conversation-{self.id}")
        return self._runner_task

    async def _run(self, runner: PipelineRunner):
        assert self._task is not None
        self._guard_task = asyncio.create_task(self._guard())
        await self._opening()
        try:
            await runner.run(self._task)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("conversation %s failed", self.id)
        finally:
            if self._guard_task:
                self._guard_task.cancel()
            self.ended.set()

    async def _opening(self):
        assert self._task is not None
        if self.settings.channel == "text":
            return
        if self.settings.answered_by.startswith("machine") or self.settings.answered_by == "fax":
            await self._voicemail()
            return
        if self.settings.disclosures:
            text = " ".join(self.settings.disclosures)
            if self._output is not None:
                # Nothing interrupts the disclosures, so their audio can go far ahead: by the time it has
                # played, the first message's is there to follow it without a pause (speech_ended).
                self._output.set_lead(DISCLOSURE_LEAD_SECONDS)
            await self._task.queue_frame(TTSSpeakFrame(text, append_to_context=False))
        else:
            await self._first_message()

    async def _first_message(self):
        if self._first_message_queued or self._task is None:
            return
        self._first_message_queued = True
        if self.settings.first_message:
            await self._task.queue_frame(TTSSpeakFrame(self.settings.first_message))

    async def _voicemail(self):
        """An answering machine picked up: hang up, or leave the agent's voicemail message (else its first
        message) after the disclosures and hang up, as the agent is set. A fax machine is hung up on."""
        answered_by = self.settings.answered_by
        action = "hang_up" if answered_by == "fax" else self.settings.voicemail_action
        await self._event("engine.voicemail", {"action": action, "answered_by": answered_by})
        message = self.settings.voicemail_message or self.settings.first_message
        if action == "leave_message" and message:
            self.disclosures_done = True
            await self._task.queue_frame(TTSSpeakFrame(" ".join([*self.settings.disclosures, message])))
            self._end_after_speaking = True
            return
        await self.end("voicemail")

    async def stop(self):
        """The peer is gone: cancel everything in flight (never waits on a provider)."""
        self.link.close()
        self._cancel_release()
        for task in list(self._holding_tasks):
            task.cancel()
        if self._task is not None and not self._task.has_finished():
            await self._task.cancel()
        if self._runner_task is not None and not self._runner_task.done():
            self._runner_task.cancel()
            try:
                await self._runner_task
            except (asyncio.CancelledError, Exception):
                pass
        self._forget_searches()
        if self._record_tasks:
            await asyncio.wait(list(self._record_tasks), timeout=10)
        release_free_memory_soon()  # what the call allocated is free now; give it back to the system

    async def end(self, reason: str, *, goodbye: str = ""):
        """End the conversation: say ``goodbye`` (if any), hang the call up, stop the pipeline."""
        if self._ending:
            return
        self._ending = True
        self.end_reason = reason
        if goodbye and self._task is not None and self.voice:
            self._cancel_release()
            if self._output is not None:
                if self._output.holding:
                    await self._output.release()  # [!!] held audio would keep the goodbye from ever playing
                self._output.set_lead(None)
            self.disclosures_done = True
            await self._task.queue_frame(TTSSpeakFrame(goodbye, append_to_context=False))
            await self._wait_until_quiet()
        if self.settings.is_call:
            await _provider_request(call_end)(self.settings, reason=reason)
        if self._task is not None:
            await self._task.queue_frame(EndFrame())

    async def _wait_until_quiet(self, timeout: float = 15.0):
        """Until the agent has finished speaking what is queued (bounded)."""
        self._quiet = asyncio.Event()
        self._speaking_seen = False
        try:
            await asyncio.wait_for(self._quiet.wait(), timeout)
        except TimeoutError:
            pass

    async def _guard(self):
        """The call's maximum duration."""
        limit = self.settings.max_call_seconds
        if not limit or self.settings.channel == "text":
            return
        await asyncio.sleep(limit)
        await self._event("engine.time_limit", {"seconds": limit})
        await self.end("time_limit", goodbye=GOODBYE_TIME_LIMIT)

    # --- the consumer's side ----------------------------------------------------------------------

    def on_mark(self, name: str) -> None:
        """Twilio played our audio up to mark ``name``."""
        turn = self._agent_turn
        if turn.cleared:
            return  # [!!] after a clear Twilio echoes every pending mark: those were not heard
        offset = turn.marks.get(name)
        if offset is not None and offset > turn.heard_ms:
            turn.heard_ms = offset

    async def send_text(self, text: str) -> None:
        """The text channel: the tester's message, through the same aggregation, knowledge and LLM."""
        assert self._task is not None
        text = text.strip()
        if not text:
            return
        # A typed message is whole when it arrives: the latencies count from then (no turn taking, no STT).
        now = self._clock.get_time()
        self._timing = _Timing(speech_stopped=now, turn_decided=now, transcript=now)
        self._timing.awaiting_llm = True
        await self._record_turn(role="caller", text=text)
        await self._task.queue_frame(LLMMessagesAppendFrame([{"role": "user", "content": text}], run_llm=True))

    # --- LinkListener (the output transport) --------------------------------------------------------------

    def audio_written(self, milliseconds: float) -> None:
        turn = self._agent_turn
        if turn.first_audio_ns is None:
            turn.first_audio_ns = time.monotonic_ns()
        turn.audio_ms += milliseconds

    def word_released(self, text: str) -> None:
        turn = self._agent_turn
        offset = 0.0 if turn.first_audio_ns is None else (time.monotonic_ns() - turn.first_audio_ns) / 1e6
        turn.words.append((text, offset - turn.held_ms))  # the audio's own clock: holds take no audio

    def released(self, held_ms: float) -> None:
        turn = self._agent_turn
        turn.cleared = False  # the marks echoed at the hold are behind us; those to come are heard again
        turn.held_ms += held_ms

    def mark_sent(self, name: str) -> None:
        self._agent_turn.marks[name] = self._agent_turn.audio_ms

    def cleared(self) -> None:
        self._agent_turn.cleared = True

    # --- holding the agent's voice while the caller speaks over it ----------------------------------------

    def caller_voice_started(self) -> None:
        """The VAD hears the caller: if the agent is speaking, hold its voice now (see ENGINE_BARGE_IN_HOLD)."""
        output = self._output
        if output is None or self._ending or not self.disclosures_done:
            return
        self._cancel_release()
        if output.holding or not self._bot_speaking:
            return
        if not django_settings.ENGINE_BARGE_IN_HOLD or int(django_settings.ENGINE_INTERRUPT_MIN_WORDS) <= 0:
            return  # no hold, or the VAD itself interrupts
        self._spawn(output.hold())
        self._release_after(django_settings.ENGINE_BARGE_IN_HOLD_MAX_SECONDS)

    def caller_voice_stopped(self) -> None:
        """The caller is quiet: unless their words interrupt the agent meanwhile, it goes on shortly."""
        if self._output is not None and self._output.holding:
            self._release_after(django_settings.ENGINE_BARGE_IN_RELEASE_SECONDS)

    def _release_after(self, seconds: float) -> None:
        self._cancel_release()
        loop = asyncio.get_running_loop()
        self._release_timer = loop.call_later(seconds, self._release_now)

    def _release_now(self) -> None:
        self._release_timer = None
        if self._output is not None and self._output.holding:
            self._spawn(self._output.release())

    def _cancel_release(self) -> None:
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._holding_tasks.add(task)
        task.add_done_callback(self._holding_tasks.discard)

    # --- observing the pipeline ---------------------------------------------------------------------------

    def _turn_analyzed(self) -> None:
        """Smart Turn judged the caller's turn complete (called on the pipeline's path, not the observer's)."""
        self._timing.turn_analyzed = self._clock.get_time()
        self._turn_complete = True
        self._begin_search()

    async def observe(self, frame: Frame, now: int) -> None:
        timing = self._timing
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            # The VAD speaks after ENGINE_VAD_STOP_SECONDS of silence: the caller stopped that long before.
            timing.speech_stopped = now - int(django_settings.ENGINE_VAD_STOP_SECONDS * 1e9)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._turn_complete = False  # a knowledge search ahead now waits for Smart Turn's verdict
        elif isinstance(frame, UserStartedSpeakingFrame):
            self._silence_prompts = 0
        elif isinstance(frame, UserStoppedSpeakingFrame):
            if timing.turn_decided is None:  # retrieval may have begun (and set it) first
                timing.turn_decided = now
            timing.awaiting_llm = True
        elif isinstance(frame, TranscriptionFrame):
            timing.transcript = now
            self._search_ahead(frame.text)
            await self._live("caller", frame.text)
        elif isinstance(frame, InterimTranscriptionFrame):
            await self._live("caller", frame.text)
        elif isinstance(frame, LLMFullResponseStartFrame):
            self._agent_turn = _AgentTurn(retrieved=self._pending_retrieved)
            self._pending_retrieved = []
        elif isinstance(frame, LLMTextFrame):
            self._agent_turn.generated.append(frame.text)
            if timing.awaiting_llm:
                timing.awaiting_llm = False
                timing.llm_first_token = now
                timing.awaiting_tts = self.voice
        elif isinstance(frame, TTSAudioRawFrame):
            if timing.awaiting_tts:
                timing.awaiting_tts = False
                timing.tts_first_byte = now
                timing.awaiting_audio = True
        elif isinstance(frame, BotStartedSpeakingFrame):
            if timing.awaiting_audio:
                timing.awaiting_audio = False
                timing.first_audio = now
                # [!!] The reply's moments are all known now: keep them with it and start the next
                # exchange's. The caller may speak again before this turn ends (a barge-in), and their
                # next turn's moments must neither overwrite these nor be wiped when this turn is stored.
                self._agent_turn.latency = self._latencies()
                self._agent_turn.latency_taken = True
                self._timing = _Timing()
            self._speaking_seen = True
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            await self._bot_stopped()
        elif isinstance(frame, InputDTMFFrame):
            digit = str(getattr(frame.button, "value", frame.button))
            await self._record_turn(role="keypad", text=digit)
        elif isinstance(frame, InterruptionFrame):
            self._cancel_release()  # the caller took the turn: what was held is dropped, not said
            # Every new caller turn interrupts the pipeline; a barge-in is one over the agent's voice.
            if self._bot_speaking and not self._agent_turn.barged_in:
                self._agent_turn.barged_in = True
                await self._event_nowait("engine.barge_in")
        elif isinstance(frame, ErrorFrame) and getattr(frame, "fatal", False):
            logger.warning("conversation %s: fatal pipeline error: %s", self.id, frame.error)
            await self._tell_tester_of(frame)
            await self.end("error")
        elif isinstance(frame, ErrorFrame):
            await self._tell_tester_of(frame)

    async def _tell_tester_of(self, frame: ErrorFrame):
        """A test from the agent's page shows a provider's failure (a call's caller never hears of it)."""
        if self.events is None:
            return
        from jagcall.kernel.providers import redact

        detail = redact(str(frame.error or "")).strip()[:300]
        await self.events({"type": "error", "message": f"A provider failed during the test: {detail or 'no details'}"})

    def speech_ended(self) -> None:
        """The output transport sent the last audio of an utterance.

        [!!] Called on the transport's path, before any audio after the disclosures is written: what the
        agent says next is a turn of its own (its words and their timing), and the caller may interrupt it."""
        if not self.disclosures_done and not self._disclosures_sent:
            self._disclosures_sent_out()

    def _disclosures_sent_out(self) -> None:
        """The disclosures' last audio went out (DISCLOSURE_LEAD_SECONDS before it plays, at most).

        The first message is asked for now, so that its audio follows theirs without a pause; the caller
        stays muted until theirs has played: nothing they say cuts the disclosures short."""
        self._disclosures_sent = True
        self._agent_turn = _AgentTurn()
        remaining = 0.0
        if self._output is not None:
            self._output.set_lead(None)
            remaining = max(0.0, self._output.plays_until - time.monotonic())
        self._keep_recording(self._first_message())
        # [!!] Only now: queued with the disclosures, it would be synthesized while they play, and Pipecat
        # times its words from its audio's arrival, not its playing: they would pass as heard too early.
        # Its turn begins here, so its words are timed from its own first audio.
        asyncio.get_running_loop().call_later(remaining, self._disclosures_ended)

    def _disclosures_ended(self) -> None:
        """The disclosures have played: the caller may speak (and interrupt what the agent says next)."""
        if self.disclosures_done:
            return
        self.disclosures_done = True
        self._keep_recording(self._disclosures_played())

    def _keep_recording(self, work) -> None:
        task = asyncio.create_task(work)
        self._record_tasks.add(task)
        task.add_done_callback(self._record_tasks.discard)

    async def _disclosures_played(self):
        # The disclosure's place (the call's first turn) is taken before anything here waits.
        await self._record_turn(role="disclosure", text=" ".join(self.settings.disclosures))
        await self._event("engine.disclosures_played", {"count": len(self.settings.disclosures)})

    async def _bot_stopped(self):
        if not self.disclosures_done and not self._disclosures_sent:
            self._disclosures_sent_out()  # the transport did not see their end (no audio came)
        quiet = getattr(self, "_quiet", None)
        if quiet is not None:
            quiet.set()
        if getattr(self, "_end_after_speaking", False):
            self._end_after_speaking = False
            await self.end("voicemail_left")

    async def retrieve(self, context: LLMContext, clock) -> None:
        """Put the knowledge passages for the caller's last message into the system message."""
        messages = context.get_messages()
        query = ""
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                query = content if isinstance(content, str) else " ".join(
                    part.get("text", "") for part in content or [] if isinstance(part, dict)
                )
                break
        if self._timing.turn_decided is None:
            self._timing.turn_decided = clock()  # the turn is decided once its context goes to the LLM
        prompt = self._system_prompt()
        if self.settings.knowledge and query.strip():
            key = _words(query)
            ahead = self._searches.pop(key, None)
            self._forget_searches(handed_over=key)
            try:
                search = ahead if ahead is not None else self._search(query)
                passages, _seconds = await search
            except Exception:
                logger.exception("conversation %s: knowledge search failed", self.id)
                passages = []
            self._pending_retrieved = passages
            if passages:
                quoted = "\n\n".join(f"[{p['document']}]\n{p['text']}" for p in passages)
                prompt = f"{prompt}\n\n{KNOWLEDGE_HEADER}\n\n{quoted}"
        if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system":
            messages[0]["content"] = prompt
        self._timing.retrieved = clock()

    def _search(self, query: str) -> asyncio.Future:
        return asyncio.ensure_future(database_sync_to_async(conversation_knowledge)(self.settings, query))

    def _search_ahead(self, text: str) -> None:
        """A final transcript of the caller's: search the knowledge for what they said before the hand-over.

        [!!] The turn goes to the LLM only once the speech-to-text service has confirmed its final text
        (its answer to Finalize), and the search used to start then. A final transcript is usually in
        hand before that answer: searching for it meanwhile takes the search off the turn's path
        (docs/voice-engine.md, An agent with knowledge). The search begins once Smart Turn has judged the
        turn complete, not before: then it does not take the cores from Smart Turn's own inference, and a
        caller who only paused costs no search. ``retrieve`` uses it if the turn's words are these, else
        searches anew; so a caller who goes on speaking costs one search more, never a wrong one.
        """
        if not self.settings.knowledge or not text.strip():
            return
        if not self._heard and _words(text) == self._handed_over:
            return  # the last turn's own final, seen after its hand-over: already searched
        self._heard.append(text)
        if self._turn_complete:
            self._begin_search()

    def _begin_search(self) -> None:
        if not self._heard:
            return
        query = " ".join(self._heard)
        key = _words(query)
        if key in self._searches or len(self._searches) >= SEARCHES_AHEAD:
            return
        search = self._search(query)
        search.add_done_callback(_swallow)  # one never used must not log "exception never retrieved"
        self._searches[key] = search

    def _forget_searches(self, *, handed_over: str = "") -> None:
        """The caller's words went to the LLM (or the call ends): searches begun for other words are moot."""
        for search in self._searches.values():
            search.cancel()  # the search's thread finishes it; nothing waits for its answer
        self._searches.clear()
        self._heard = []
        self._handed_over = handed_over

    # --- turns ----------------------------------------------------------------------------------------------

    async def _on_user_turn_stopped(self, aggregator, strategy, message):
        text = (getattr(message, "content", None) or "").strip()
        if text:
            await self._record_turn(role="caller", text=text)

    async def _on_user_idle(self, aggregator):
        if self._ending or not self.disclosures_done:
            return
        if self._silence_prompts < self.settings.silence_prompts:
            self._silence_prompts += 1
            await self._event("engine.silence_prompt", {"number": self._silence_prompts})
            await self._task.queue_frame(TTSSpeakFrame(STILL_THERE, append_to_context=False))
            return
        await self._event("engine.silence_timeout", {"seconds": self.settings.silence_timeout_seconds})
        await self.end("silence", goodbye=GOODBYE_SILENT)

    async def _on_assistant_turn_stopped(self, aggregator, message):
        turn = self._agent_turn
        generated = "".join(turn.generated).strip()
        heard = (message.content or "").strip()
        interrupted = bool(message.interrupted)
        if interrupted and self.link.marks and turn.words:
            # [!!] What the caller heard: the words whose audio Twilio confirmed playing before the clear.
            heard = " ".join(w.strip() for w, offset in turn.words if offset <= turn.heard_ms + MARK_TOLERANCE_MS)
        if not generated and not heard:
            return
        timing = self._timing
        await self._record_turn(
            role="agent",
            text=heard,
            generated=generated or None,
            interrupted=interrupted,
            retrieved=turn.retrieved,
            latency=turn.latency if turn.latency_taken else self._latencies(),
        )
        if not turn.latency_taken and self._timing is timing:
            self._timing = _Timing()  # (a reply measured at its first audio started the next exchange then)
        if self._agent_turn is turn:
            self._agent_turn = _AgentTurn()  # what is spoken next (a prompt, a goodbye) is a turn of its own

    def _latencies(self) -> dict[str, float]:
        timing = self._timing
        if timing.speech_stopped is None:
            return {}
        origin = timing.speech_stopped

        def since(moment):
            return None if moment is None else max(0.0, (moment - origin) / 1e6)

        # The end-of-turn decision is Smart Turn's verdict after the VAD's silence. One from before this
        # stop (a backchannel's, or a turn the caller went on with) does not count: then it is the release.
        analyzed = timing.turn_analyzed if (timing.turn_analyzed or 0) >= origin else None
        return {
            "end_of_turn_ms": since(analyzed if analyzed is not None else timing.turn_decided),
            "transcript_ms": since(timing.transcript),
            "handed_over_ms": since(timing.turn_decided),
            "retrieved_ms": since(timing.retrieved),
            "llm_first_token_ms": since(timing.llm_first_token),
            "tts_first_byte_ms": since(timing.tts_first_byte),
            "first_audio_ms": since(timing.first_audio),
        }

    async def _record_turn(self, *, role: str, text: str, **fields):
        async with self._record_lock:
            self._turn_index += 1
            index = self._turn_index
        turn = await database_sync_to_async(conversation_turn_record)(
            self.settings, index=index, role=role, text=text, **fields
        )
        if self.events is not None:
            from telephony.services.conversations import turn_payload

            await self.events({"type": "turn", "turn": turn_payload(turn)})
        return turn

    async def _live(self, role: str, text: str):
        if self.events is not None:
            await self.events({"type": "live", "role": role, "text": text})
        elif self.settings.is_call:
            await database_sync_to_async(conversation_live_text)(self.settings, role=role, text=text)

    async def _event(self, kind: str, details: dict | None = None):
        await database_sync_to_async(conversation_event_record)(self.settings, kind, details)

    async def _event_nowait(self, kind: str, details: dict | None = None):
        asyncio.get_running_loop().create_task(self._event(kind, details))

    # --- text channel -------------------------------------------------------------------------------

    async def text_chunk(self, text: str):
        self._text_reply.append(text)
        if self.events is not None:
            await self.events({"type": "live", "role": "agent", "text": "".join(self._text_reply)})

    async def text_done(self):
        self._text_reply = []

    # --- tools ------------------------------------------------------------------------------------------

    async def _tool_transfer(self, params):
        # A transfer under way is not undone by the caller speaking: Twilio may already have moved the call.
        await asyncio.shield(self._transfer(params))

    async def _transfer(self, params):
        transfers = [t for t in self.settings.tools if t["type"] == "transfer"]
        try:
            position = int((params.arguments or {}).get("destination", 1))
            target = transfers[position - 1]
        except (TypeError, ValueError, IndexError):
            await params.result_callback({"ok": False, "error": "There is no such destination."})
            return
        name = target.get("description") or ("a phone number" if target.get("number") else "a team member")
        try:
            said = await _provider_request(call_transfer)(self.settings, target)
        except ToolFailed as failure:
            await self._record_turn(
                role="tool", text=str(failure), tool={"name": "transfer_call", "ok": False, "target": name}
            )
            await params.result_callback({"ok": False, "error": str(failure)})
            return
        await self._record_turn(role="tool", text=said, tool={"name": "transfer_call", "ok": True, "target": name})
        await params.result_callback(
            {"ok": True, "result": "The call was handed over."}, properties=FunctionCallResultProperties(run_llm=False)
        )
        self.end_reason = "transferred"
        self._ending = True
        if self._task is not None:
            await self._task.queue_frame(EndFrame())

    async def _tool_send_sms(self, params):
        # Like a transfer, a text under way is not undone by the caller speaking: Twilio may have taken it.
        await asyncio.shield(self._send_sms(params))

    async def _send_sms(self, params):
        body = (params.arguments or {}).get("body")
        body = body if isinstance(body, str) else ""
        if self._texts_sent >= MAX_TEXTS_PER_CALL:
            failure = ToolFailed("I've already sent you all the texts I can on this call.", reason="limit")
        else:
            self._texts_sent += 1  # taken before the send: calls the LLM makes at once count against each other
            try:
                said = await _provider_request(text_the_caller)(self.settings, body)
            except ToolFailed as error:
                self._texts_sent -= 1
                failure = error
            except Exception:
                # Twilio may have taken the text before this failed: the agent does not claim either way.
                logger.exception("conversation %s: the send_sms tool failed", self.id)
                failure = ToolFailed(
                    "Something went wrong while I sent the text; I can't tell whether it went through.", reason="error"
                )
            else:
                await self._record_turn(role="tool", text=said, tool={"name": "send_sms", "ok": True})
                await params.result_callback({"ok": True, "result": said})
                return
        tool = {"name": "send_sms", "ok": False, **({"reason": failure.reason} if failure.reason else {})}
        await self._record_turn(role="tool", text=str(failure), tool=tool)
        await params.result_callback({"ok": False, "error": str(failure)})

    async def _tool_end_call(self, params):
        await params.result_callback({"ok": True}, properties=FunctionCallResultProperties(run_llm=False))
        await self._record_turn(role="tool", text="The agent ended the call.", tool={"name": "end_call", "ok": True})
        asyncio.get_running_loop().create_task(self._end_when_quiet())

    async def _end_when_quiet(self):
        if getattr(self, "_speaking_seen", False):
            await self._wait_until_quiet(timeout=10)
        await self.end("agent_ended")
