"""Live events for an organization, pushed to its websocket group.

Services call ``publish_org_event`` inside their transaction; the push
happens on commit, so a rolled-back change is never announced.

[!!] The push does not hold up the request that caused it. A notice is handed
to one publisher thread per process, which sends notices in the order they
were given, on an event loop of its own. Waiting for Redis inside the request
cost several milliseconds a write. Under the ASGI server it also meant a hop
to the server's event loop, shared with every request in flight. A live notice
is a hint that a page refreshes on. A notice lost when the process ends, or
dropped when the queue is full (logged), loses nothing that a reload does not
show.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading

from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000  # notices waiting to be sent; past it new ones are dropped (and logged)


def org_group_name(organization_id, topic: str = "events") -> str:
    return f"org-{organization_id}.{topic}"


class _Publisher:
    """A thread with its own event loop that sends queued notices to the channel layer, in order."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def submit(self, group: str, message: dict) -> None:
        notices = self._started()
        try:
            notices.put_nowait((group, message))
        except queue.Full:
            logger.warning("live notice %s for %s dropped: %d notices are waiting", message.get("event"), group,
                           QUEUE_LIMIT)  # fmt: skip

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every notice given so far is sent (tests, process exit). False on timeout."""
        notices = self._queue
        if notices is None or self._pid != os.getpid():
            return True
        done = threading.Event()
        try:
            notices.put((None, done), timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def _started(self) -> queue.Queue:
        # A forked worker (Celery's pool) inherits the queue but not the thread: it starts its own.
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return self._queue
        with self._lock:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._queue = queue.Queue(maxsize=QUEUE_LIMIT)
                self._thread = threading.Thread(target=self._run, args=(self._queue,), name="live-notices",
                                                daemon=True)  # fmt: skip
                self._pid = os.getpid()
                self._thread.start()
        return self._queue

    @staticmethod
    def _run(notices: queue.Queue) -> None:
        from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers
        from django.conf import settings

        loop = asyncio.new_event_loop()
        # A layer of its own: its connections belong to this thread's loop, and nobody else closes them.
        configured = DEFAULT_CHANNEL_LAYER in getattr(settings, "CHANNEL_LAYERS", {})
        layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER) if configured else None
        while True:
            group, message = notices.get()
            if group is None:
                message.set()  # a flush marker: everything before it was sent
                continue
            if layer is None:
                continue
            try:
                loop.run_until_complete(layer.group_send(group, message))
            except Exception:  # a live notice must never take the publisher down
                logger.exception("could not publish %s to %s", message.get("event"), group)


_publisher = _Publisher()
atexit.register(_publisher.flush, 2.0)


def flush_live_events(timeout: float = 5.0) -> bool:
    """Wait until the notices published so far are sent to the channel layer."""
    return _publisher.flush(timeout)


def _send(organization_id, event: str, payload: dict) -> None:
    message = {"type": "org.event", "event": event, "payload": payload, "at": timezone.now().isoformat()}
    _publisher.submit(org_group_name(organization_id), message)


def publish_org_event(organization_id, event: str, payload: dict) -> None:
    transaction.on_commit(lambda: _send(organization_id, event, payload))
