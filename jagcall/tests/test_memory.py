"""Memory a process has freed goes back to the system (jagcall/kernel/memory.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from jagcall.kernel import memory

pytestmark = pytest.mark.skipif(memory._malloc_trim() is None, reason="this C library has no malloc_trim")


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(memory, "_last_trim", float("-inf"))
    monkeypatch.setattr(memory, "_pending", None)


def test_freed_memory_between_blocks_in_use_goes_back_to_the_system(settings):
    settings.MEMORY_TRIM_INTERVAL_SECONDS = 5
    memory.release_free_memory(force=True)  # start from a heap with nothing to give back
    kept, freed = [], []
    for i in range(60_000):  # blocks over 512 bytes come from the C allocator, not Python's own
        (kept if i % 16 == 0 else freed).append(bytes(1024 + i % 7 * 512))
    freed.clear()
    before = _resident_mib()

    assert memory.release_free_memory(force=True) is True

    returned = before - _resident_mib()
    assert returned > 40, f"only {returned:.1f} MiB went back"
    assert len(kept) == 3750  # what was still in use stayed


def test_it_runs_at_most_once_per_interval_and_never_when_turned_off(settings):
    settings.MEMORY_TRIM_INTERVAL_SECONDS = 60
    assert memory.release_free_memory() is True
    assert memory.release_free_memory() is False
    assert memory.release_free_memory(force=True) is True

    settings.MEMORY_TRIM_INTERVAL_SECONDS = 0
    memory._last_trim = float("-inf")
    assert memory.release_free_memory() is False


def test_from_the_event_loop_it_runs_in_a_thread_once_at_a_time(settings):
    settings.MEMORY_TRIM_INTERVAL_SECONDS = 60

    async def ended_calls():
        began = time.monotonic()
        memory.release_free_memory_soon()
        first = memory._pending
        memory.release_free_memory_soon()  # a second call ending meanwhile adds nothing
        assert memory._pending is first
        await first
        memory.release_free_memory_soon()  # within the interval: nothing
        assert memory._pending is first
        return began

    began = asyncio.run(ended_calls())
    assert memory._last_trim >= began


def test_turned_off_nothing_is_scheduled(settings):
    settings.MEMORY_TRIM_INTERVAL_SECONDS = 0

    async def ended_call():
        memory.release_free_memory_soon()
        return memory._pending

    assert asyncio.run(ended_call()) is None


def test_the_web_process_leaves_what_it_loaded_at_start_out_of_later_collections():
    from jagcall.tests.test_settings import PRODUCTION_ENV, run_django

    code = "import gc; import jagcall.asgi; print('frozen', gc.get_freeze_count())"
    web = run_django(code, {**PRODUCTION_ENV, "JAGCALL_PROCESS": "web"})
    assert web.returncode == 0, web.stderr[-2000:]
    frozen = int(web.stdout.split("frozen")[-1])
    assert frozen > 100_000  # Django, Channels, Pipecat and the engine are loaded by then

    other = run_django(code, {**PRODUCTION_ENV, "JAGCALL_PROCESS": "worker"})  # workers and commands: untouched
    assert other.returncode == 0, other.stderr[-2000:]
    assert int(other.stdout.split("frozen")[-1]) == 0


def test_a_calls_cycles_are_still_collected_after_the_freeze():
    import gc
    import weakref

    class Node:
        pass

    try:
        assert memory.freeze_startup_objects() == gc.get_freeze_count() > 0
        node = Node()
        node.self = node  # a cycle, as a call's pipeline leaves
        gone = weakref.ref(node)
        del node
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
