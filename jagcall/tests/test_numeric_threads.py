"""Threads of the numeric libraries: numpy's matrix products run on the calling thread (no OpenBLAS worker
spins on a core after each one), and Smart Turn runs on the web process's few threads (ENGINE_TURN_MODEL_THREADS)."""

from __future__ import annotations

import os

import pytest

from jagcall.tests.test_settings import PRODUCTION_ENV, run_django

# A product the size of Smart Turn's mel projection (80 x 201 by 201 x 800), each followed by a pause as
# between two callers' pauses: the CPU the process uses meanwhile, against the time the products took.
MEASURE = """
import json, os, time
import numpy as np
import jagcall.asgi
a, b = np.random.rand(80, 201), np.random.rand(201, 800)
a @ b
busy = idle_cpu = 0.0
for _ in range(20):
    wall, cpu = time.perf_counter(), time.process_time()
    a @ b
    busy += time.perf_counter() - wall
    cpu_before_pause = time.process_time()
    time.sleep(0.02)
    idle_cpu += time.process_time() - cpu_before_pause
print(json.dumps({"setting": os.environ.get("OPENBLAS_NUM_THREADS"), "busy": busy, "idle_cpu": idle_cpu}))
"""


def _measure(env: dict) -> dict:
    import json

    # [!!] This process set the variable for itself when it imported jagcall: the child starts without it.
    drop = () if "OPENBLAS_NUM_THREADS" in env else ("OPENBLAS_NUM_THREADS",)
    result = run_django(MEASURE, {**PRODUCTION_ENV, "JAGCALL_PROCESS": "web", **env}, drop=drop)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_process_of_jagcall_burns_no_cpu_after_a_matrix_product():
    ours = _measure({})
    assert ours["setting"] == "1"
    assert ours["idle_cpu"] < 0.1  # of 0.4 s of pauses: the process sleeps while it waits


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="OpenBLAS starts no worker on one core")
def test_the_measure_sees_the_workers_spin_when_an_operator_asks_for_them():
    theirs = _measure({"OPENBLAS_NUM_THREADS": "2"})  # kept: an operator's own value wins
    assert theirs["setting"] == "2"
    assert theirs["idle_cpu"] > 0.1  # spinning between products, on a core of its own


def test_smart_turn_needs_at_least_one_thread():
    result = run_django("print('started')", {**PRODUCTION_ENV, "ENGINE_TURN_MODEL_THREADS": "0"})
    assert result.returncode != 0 and "started" not in result.stdout
    assert "ENGINE_TURN_MODEL_THREADS must be at least 1" in result.stderr
