"""The local models a conversation runs (Silero VAD, Smart Turn v3), loaded once per process.

Both ship inside pipecat-ai (``pipecat/audio/vad/data``, ``pipecat/audio/turn/smart_turn/data``):
nothing is downloaded at run time. Pipecat's analyzers open an ONNX Runtime session each; one
session per call keeps ~10 MB alive per call until a full collection runs. Here every call shares
one session of each model (ONNX Runtime's ``run`` is safe to call from several threads) and keeps
only its own recurrent state: the VAD's state and context live in the per-call model wrapper,
Smart Turn is stateless between predictions.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import onnxruntime
from django.conf import settings
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

_load_lock = threading.Lock()


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


class SharedSileroVAD(SileroVADAnalyzer):
    """Pipecat's Silero VAD analyzer on the shared session."""

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None) -> None:
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        self._model = _SharedSileroModel()
        self._windows_since_reset = 0
        self._low_confidence_windows = 0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        # [!!] On the event loop, not in Pipecat's executor thread: a 32 ms window takes Silero ~0.15 ms,
        # and handing each frame to a thread and back cost more CPU than the model itself (0.50 ms of CPU
        # a 40 ms frame through the executor, 0.26 ms here: docs/voice-engine.md, CPU and capacity).
        return self._run_analyzer(buffer)


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
