"""Keeping a long-lived process's memory flat as calls come and go (docs/voice-engine.md, Memory).

Two things made the web process grow by about 0.3 MiB a call:

- A call's pipeline is a web of reference cycles, freed only by a full garbage collection. Python runs one
  when the objects promoted since the last reach a quarter of all long-lived objects, and the hundreds of
  thousands loaded at start (Django, Pipecat, the models' wrappers) put that off for dozens of calls.
  ``freeze_startup_objects`` moves them out of the collector's count once the process has loaded: full
  collections then come every few calls, and cost only the objects created since.
- glibc returns freed memory to the system only from the top of its main heap; what is freed between
  blocks still in use stays resident. ``release_free_memory_soon`` runs ``malloc_trim`` in a worker thread
  when a call ends, at most once per ``MEMORY_TRIM_INTERVAL_SECONDS``; where the C library has none (musl,
  macOS) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_last_trim = float("-inf")
_pending: asyncio.Future | None = None


def freeze_startup_objects() -> int:
    """Collect once, then leave everything alive now out of later collections; how many objects that was.

    Called by the web process when it has loaded. What it leaves out is never collected: only objects that
    live as long as the process belong there."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory(*, force: bool = False) -> bool:
    """Give free heap pages back now (unless one was given back within the interval); True if it ran."""
    global _last_trim
    interval = float(settings.MEMORY_TRIM_INTERVAL_SECONDS)
    trim = _malloc_trim()
    if trim is None or (interval <= 0 and not force):
        return False
    with _lock:
        now = time.monotonic()
        if not force and now - _last_trim < interval:
            return False
        _last_trim = now
        began = time.perf_counter()
        trim(0)  # [!!] ctypes lets go of the GIL: the event loop runs on meanwhile
        logger.debug("returned free memory to the system in %.1f ms", (time.perf_counter() - began) * 1000)
    return True


def release_free_memory_soon() -> None:
    """From the event loop: ``release_free_memory`` in a worker thread, one at a time, never awaited."""
    global _pending
    interval = float(settings.MEMORY_TRIM_INTERVAL_SECONDS)
    if interval <= 0 or time.monotonic() - _last_trim < interval:
        return
    loop = asyncio.get_running_loop()
    if _pending is not None and not _pending.done() and _pending.get_loop() is loop:
        return  # one is on its way (one of another loop that has closed never completes: not waited for)
    _pending = loop.run_in_executor(None, release_free_memory)
