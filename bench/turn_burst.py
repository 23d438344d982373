"""Benchmark: callers who pause at the same moment, and the event loop that carries every call's audio.

Each pause the VAD hears asks Smart Turn v3 whether the caller's turn is over: an inference of about 45 ms
of a core. This script makes ``--callers`` analyzers (one per call, each holding three seconds of the
caller's audio) ask at the same moment, ``--rounds`` times, while a ticker on the event loop measures how
late it runs: the lateness every call's audio frames would see. Each round runs every way of scheduling
the inferences one after the other, so the figures are side by side on the same noise:

- ``thread per call``: Pipecat's own (each analyzer starts a thread of its own; as many inferences at
  once as callers pausing);
- ``shared N``: the web process's pool of N threads (ENGINE_TURN_MODEL_THREADS, telephony/engine/analyzers.py).

For each it prints the medians over the rounds of: when the callers' decisions came (ms after the burst,
p50 and the last), the loop's lateness during the burst (p50, p95, most), and the process's CPU.

    .venv/bin/python bench/turn_burst.py                       # 10 callers, 15 rounds, shared 1 and 2
    .venv/bin/python bench/turn_burst.py --callers 25 --threads 1,2,4

Needs no database or network: only the models bundled with pipecat-ai.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

# As in every process of JagCall (jagcall/__init__.py), before numpy loads: no OpenBLAS worker spins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

from bench.common import machine_facts, median, percentile, section  # noqa: E402

TICK_S = 0.005
SAMPLE_RATE = 8000


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Smart Turn inferences of callers pausing at once, and the event loop."
    )
    parser.add_argument("--callers", type=int, default=10, help="callers who pause at the same moment")
    parser.add_argument("--rounds", type=int, default=15, help="bursts per way of scheduling")
    parser.add_argument("--threads", default="1,2", help="sizes of the shared pool to compare (comma separated)")
    return parser.parse_args()


def _setup_django(threads: int) -> None:
    from django.conf import settings

    if not settings.configured:
        settings.configure(ENGINE_TURN_MODEL_THREADS=threads)
    settings.ENGINE_TURN_MODEL_THREADS = threads


def _speech(seconds: float) -> bytes:
    """A voiced sound with syllable-like loudness (the model's cost does not depend on what is said)."""
    import numpy as np

    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    voice = np.sin(2 * np.pi * 140 * t) + 0.4 * np.sin(2 * np.pi * 280 * t) + 0.2 * np.sin(2 * np.pi * 420 * t)
    return (voice * envelope * 6000).astype(np.int16).tobytes()


def _analyzers(count: int, per_call: bool) -> list:
    from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn

    from telephony.engine.analyzers import SharedSmartTurn

    class ThreadPerCall(SharedSmartTurn):
        """The shared ONNX session, on a thread of the analyzer's own (Pipecat's scheduling)."""

        _model_executor = BaseSmartTurn._model_executor

    speech = _speech(3.0)
    made = []
    for _ in range(count):
        analyzer = (ThreadPerCall if per_call else SharedSmartTurn)(sample_rate=SAMPLE_RATE)
        analyzer.set_sample_rate(SAMPLE_RATE)
        analyzer.append_audio(speech, is_speech=True)
        made.append(analyzer)
    return made


async def _burst(analyzers: list) -> dict:
    """Every analyzer asks at once; the decisions' times and the loop's lateness meanwhile."""
    lateness: list[float] = []
    done = asyncio.Event()

    async def ticker():
        while not done.is_set():
            asked = time.perf_counter()
            await asyncio.sleep(TICK_S)
            lateness.append((time.perf_counter() - asked - TICK_S) * 1000)

    async def decide(analyzer):
        await analyzer.analyze_end_of_turn()
        return (time.perf_counter() - started) * 1000

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)  # the ticker runs before the burst
    lateness.clear()
    cpu_before, started = time.process_time(), time.perf_counter()
    decided = await asyncio.gather(*(decide(analyzer) for analyzer in analyzers))
    cpu = time.process_time() - cpu_before
    done.set()
    await ticking
    for analyzer in analyzers:
        await analyzer.cleanup()
    return {
        "decided_p50": median(decided),
        "decided_last": max(decided),
        "late_p50": median(lateness),
        "late_p95": percentile(lateness, 0.95),
        "late_most": max(lateness),
        "cpu_ms": cpu * 1000,
    }


async def _run(args) -> dict[str, list[dict]]:
    from telephony.engine import analyzers as shared

    shared.warm_up()
    sizes = [int(size) for size in args.threads.split(",") if size.strip()]
    modes = [("thread per call", None), *((f"shared {size}", size) for size in sizes)]
    results: dict[str, list[dict]] = {name: [] for name, _ in modes}
    await _burst(_analyzers(2, per_call=False))  # warm: the first inferences of a session are slower
    for _ in range(args.rounds):
        for name, size in modes:
            if size is not None:
                _setup_django(size)
                shared._smart_turn_executor.cache_clear()
            results[name].append(await _burst(_analyzers(args.callers, per_call=size is None)))
            if size is not None:
                shared._smart_turn_executor().shutdown(wait=True)
            await asyncio.sleep(0.2)
    return results


def main() -> None:
    from loguru import logger

    logger.remove()  # Pipecat logs every decision
    args = _parse()
    _setup_django(1)
    results = asyncio.run(_run(args))
    section(f"{args.callers} callers pause at once, {args.rounds} rounds (medians over the rounds)")
    print(
        f"  {'':18s} {'decided p50':>12s} {'last':>8s}   {'loop late p50':>13s} {'p95':>7s} {'most':>7s}   {'CPU':>8s}"
    )
    for name, rounds in results.items():
        figure = {key: median([r[key] for r in rounds]) for key in rounds[0]}
        print(
            f"  {name:18s} {figure['decided_p50']:9.0f} ms {figure['decided_last']:5.0f} ms"
            f"   {figure['late_p50']:10.1f} ms {figure['late_p95']:4.1f} ms {figure['late_most']:4.0f} ms"
            f"   {figure['cpu_ms']:5.0f} ms"
        )
    section("Machine")
    for key, value in machine_facts(("pipecat-ai", "onnxruntime", "numpy")).items():
        print(f"  {key}: {value}")
    print(f"  the loop's ticker asks for {TICK_S * 1000:.0f} ms sleeps; lateness is how much longer they took")


if __name__ == "__main__":
    main()
