"""The local models a conversation runs (Silero VAD, Smart Turn v3), loaded once per process.

Both ship inside pipecat-ai (``pipecat/audio/vad/data``, ``pipecat/audio/turn/smart_turn/data``):
nothing is downloaded at run time. Pipecat's analyzers open an ONNX Runtime session each; one
session per call keeps ~10 MB alive per call until a full collection runs. Here every call shares
one session of each model (ONNX Runtime's ``run`` is safe to call from several threads) and keeps
only its own recurrent state: the VAD's state and context live in the per-call model wrapper,
Smart Turn is stateless between predictions.

Silero scores the windows of the process's calls together (``SileroBatch``): a run of the model on
a core that has done other work since its last run costs four to seven times a run straight after
another, and one run for ten windows costs about as much as one for a single window
(docs/voice-engine.md, CPU and capacity).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import onnxruntime
from django.conf import settings
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

logger = logging.getLogger("jagcall.telephony.engine")

_load_lock = threading.Lock()
# A call whose VAD asked for a score this recently is expected to ask again soon (a frame every 40 ms):
# a batch waits for it, up to ENGINE_VAD_BATCH_MS.
RECENT_SECONDS = 0.1


def _bundled(package: str, name: str) -> str:
    return str(resources.files(package).joinpath(name))


def _options(threads: int = 1) -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


@functools.cache
def _vad_session() -> onnxruntime.InferenceSession:
    with _load_lock:
        path = _bundled("pipecat.audio.vad.data", "silero_vad.onnx")
        return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=_options())


@functools.cache
def _smart_turn_session() -> onnxruntime.InferenceSession:
    with _load_lock:
        path = _bundled("pipecat.audio.turn.smart_turn.data", "smart-turn-v3.2-cpu.onnx")
        return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=_options())


@functools.cache
def _smart_turn_executor() -> ThreadPoolExecutor:
    """The threads every call's Smart Turn inferences run on, ``ENGINE_TURN_MODEL_THREADS`` of them.

    [!!] Pipecat gives each call a thread of its own: ten callers pausing at once ran ten inferences at
    once, which took every core from the event loop that carries all the calls' audio
    (docs/voice-engine.md, CPU and capacity). Here they queue for the process's few threads instead."""
    return ThreadPoolExecutor(max_workers=settings.ENGINE_TURN_MODEL_THREADS, thread_name_prefix="smart-turn")


def warm_up() -> None:
    """Load both models now (the web process does it at start, so the first call waits for nothing)."""
    _vad_session()
    _smart_turn_session()


class _SharedSileroModel(SileroOnnxModel):
    """Silero's per-call state around the process's one session."""

    def __init__(self) -> None:  # no super().__init__(): it would open a session of its own
        self.session = _vad_session()
        self.sample_rates = [8000, 16000]
        self.reset_states()

    def ready(self, sample_rate: int, context_size: int) -> None:
        """Fresh state where ``__call__`` would make one: before the first window, or at another rate."""
        if not self._last_batch_size or self._last_sr != sample_rate:
            self.reset_states(1)
        if not self._context.shape[1]:
            self._context = np.zeros((1, context_size), dtype=np.float32)


@dataclass(eq=False)
class _Request:
    analyzer: SharedSileroVAD
    windows: list[bytes]
    future: asyncio.Future
    scored: int = 0


@dataclass(eq=False)
class SileroBatch:
    """The windows of every call on one event loop, scored by Silero together.

    A VAD hands over the whole windows of its frame (``score``) and waits. They are scored once every
    call heard within RECENT_SECONDS has handed over its own, or ``delay`` seconds after the first came:
    one run of the model for the first window of each, another for the second, and so on (a call's
    windows go in order: each carries the model's state on). After each run the VAD takes its score in
    (``SharedSileroVAD._take``) before its next window is scored, as it would one window at a time.
    """

    delay: float
    _waiting: list[_Request] = field(default_factory=list)
    _recent: dict = field(default_factory=dict)  # analyzer -> loop time of its last request
    _timer: asyncio.TimerHandle | None = None
    runs: int = 0  # model runs so far, and the windows they scored (tests, diagnostics)
    windows: int = 0

    def forget(self, analyzer: SharedSileroVAD) -> None:
        self._recent.pop(analyzer, None)

    async def score(self, analyzer: SharedSileroVAD, windows: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        request = _Request(analyzer, windows, loop.create_future())
        self._waiting.append(request)
        now = loop.time()
        self._recent[analyzer] = now
        waiting = {r.analyzer for r in self._waiting}
        if all(a in waiting for a, seen in self._recent.items() if now - seen <= RECENT_SECONDS):
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.delay, self.flush)
        await request.future

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        requests, self._waiting = self._waiting, []
        now = asyncio.get_running_loop().time()
        for analyzer, seen in list(self._recent.items()):
            if now - seen > RECENT_SECONDS:
                del self._recent[analyzer]
        pending = [r for r in requests if not r.future.done()]
        while pending:
            by_rate: dict[int, list[_Request]] = {}
            for request in pending:
                by_rate.setdefault(request.analyzer.sample_rate, []).append(request)
            for sample_rate, group in by_rate.items():
                self._run(sample_rate, group)
            pending = [r for r in pending if not r.future.done() and r.scored < len(r.windows)]
        for request in requests:
            if not request.future.done():
                request.future.set_result(None)

    def _run(self, sample_rate: int, group: list[_Request]) -> None:
        size = 512 if sample_rate == 16000 else 256
        context = 64 if sample_rate == 16000 else 32
        audio = np.empty((len(group), context + size), dtype=np.float32)
        for row, request in enumerate(group):
            model = request.analyzer._model
            model.ready(sample_rate, context)
            audio[row, :context] = model._context[0]
            audio[row, context:] = np.frombuffer(request.windows[request.scored], dtype=np.int16)
        audio[:, context:] /= 32768.0
        try:
            states = np.concatenate([r.analyzer._model._state for r in group], axis=1)
            out, state = _vad_session().run(
                None, {"input": audio, "state": states, "sr": np.array(sample_rate, dtype=np.int64)}
            )
        except Exception:  # the calls' VADs hear no voice in this window, as Pipecat's do on an error
            logger.exception("Silero could not score %d window(s)", len(group))
            out, state = np.zeros((len(group), 1), dtype=np.float32), None
        self.runs += 1
        self.windows += len(group)
        for row, request in enumerate(group):
            model = request.analyzer._model
            if state is not None:
                model._state = state[:, row : row + 1, :].copy()
                model._context = audio[row : row + 1, -context:].copy()
                model._last_sr = sample_rate
                model._last_batch_size = 1
            window = request.windows[request.scored]
            request.scored += 1
            try:
                request.analyzer._take(window, float(out[row, 0]))
            except Exception as error:
                if not request.future.done():
                    request.future.set_exception(error)


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SileroBatch] = weakref.WeakKeyDictionary()


def silero_batch() -> SileroBatch:
    """The running event loop's batch (its calls' VADs share it)."""
    loop = asyncio.get_running_loop()
    batch = _batches.get(loop)
    if batch is None:
        batch = _batches[loop] = SileroBatch(delay=settings.ENGINE_VAD_BATCH_MS / 1000)
    return batch


class SharedSileroVAD(SileroVADAnalyzer):
    """Pipecat's Silero VAD analyzer on the shared session, its windows scored with other calls'.

    With ENGINE_VAD_BATCH_MS at 0, each window is scored on its own, at once: Pipecat's ``_run_analyzer``.
    Otherwise the frame's whole windows go to the loop's ``SileroBatch``, which hands each score back to
    ``_take`` in order, and the frame ends with ``_settle``: the same states Pipecat's analyzer reaches,
    window by window and frame by frame (telephony/tests/test_engine_vad_batch.py holds them equal).
    """

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None) -> None:
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        self._model = _SharedSileroModel()
        self._windows_since_reset = 0
        self._low_confidence_windows = 0
        self._batch: SileroBatch | None = None

    async def analyze_audio(self, buffer: bytes) -> VADState:
        # [!!] On the event loop, not in Pipecat's executor thread: handing each frame to a thread and back
        # cost more CPU than the model itself (docs/voice-engine.md, CPU and capacity).
        if settings.ENGINE_VAD_BATCH_MS <= 0:
            return self._run_analyzer(buffer)
        size = self._vad_frames_num_bytes
        audio = self._vad_buffer + buffer
        whole = len(audio) // size * size
        self._vad_buffer = audio[whole:]
        if not whole:
            return self._vad_state
        if self._batch is None:
            self._batch = silero_batch()
        await self._batch.score(self, [audio[start : start + size] for start in range(0, whole, size)])
        return self._settle()

    def _take(self, window: bytes, confidence: float) -> None:
        """A window's score into the VAD's state, as Pipecat's analyzer takes each window of a frame."""
        self._maybe_reset_model(confidence)  # the model's state for the next window, judged before this one's
        self._prev_volume = volume = self._get_smoothed_volume(window)
        speaking = confidence >= self._params.confidence and volume >= self._params.min_volume
        state = self._vad_state
        if speaking and state == VADState.QUIET:
            self._vad_state, self._vad_starting_count = VADState.STARTING, 1
        elif speaking and state == VADState.STARTING:
            self._vad_starting_count += 1
        elif speaking and state == VADState.STOPPING:
            self._vad_state, self._vad_stopping_count = VADState.SPEAKING, 0
        elif not speaking and state == VADState.STARTING:
            self._vad_state, self._vad_starting_count = VADState.QUIET, 0
        elif not speaking and state == VADState.SPEAKING:
            self._vad_state, self._vad_stopping_count = VADState.STOPPING, 1
        elif not speaking and state == VADState.STOPPING:
            self._vad_stopping_count += 1

    def _settle(self) -> VADState:
        """The frame's windows taken: speech that lasted long enough has started, silence has stopped it."""
        if self._vad_state == VADState.STARTING and self._vad_starting_count >= self._vad_start_frames:
            self._vad_state, self._vad_starting_count = VADState.SPEAKING, 0
        if self._vad_state == VADState.STOPPING and self._vad_stopping_count >= self._vad_stop_frames:
            self._vad_state, self._vad_stopping_count = VADState.QUIET, 0
        return self._vad_state

    async def cleanup(self):
        if self._batch is not None:
            self._batch.forget(self)
        await super().cleanup()


class SharedSmartTurn(LocalSmartTurnAnalyzerV3):
    """Pipecat's local Smart Turn v3 analyzer on the shared session.

    ``on_complete`` is called the moment the analyzer judges the caller's turn complete: the end-of-turn
    decision, which the turn's latencies report apart from the wait for the final transcript after it.
    """

    def __init__(self, *, on_complete: Callable[[], None] | None = None, **kwargs) -> None:
        BaseSmartTurn.__init__(self, **kwargs)
        self._log_data = False
        self._session = _smart_turn_session()
        self._on_complete = on_complete

    @property
    def _model_executor(self) -> ThreadPoolExecutor:
        return _smart_turn_executor()  # the process's; ``self._executor`` stays None, so cleanup leaves it be

    async def analyze_end_of_turn(self):
        state, prediction = await super().analyze_end_of_turn()
        if state == EndOfTurnState.COMPLETE and self._on_complete is not None:
            self._on_complete()
        return state, prediction
