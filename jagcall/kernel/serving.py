"""The web process's HTTP front door (jagcall/asgi.py): how many requests run at once, and their server time.

Django's ASGI handler gives each request's sync code a thread of its own. On
a process held to one core by the GIL, 50 requests at once run in 50 threads
that take turns: each one's own time stretches to about the time of all 50,
and each holds a pooled database connection while it waits for its turn.
``RequestGate`` lets at most WEB_MAX_CONCURRENT_REQUESTS requests into Django
at once; the others wait in line before Django sees them, as they would for a
free worker of a fixed pool. 0: no bound.

Lanes: requests under a path prefix may have a bound of their own instead.
Providers' signed webhooks (``/hooks/``) are short and CPU-bound, arrive in
bursts (a campaign's status callbacks), and must each be answered within the
provider's timeout: in a lane of WEB_MAX_CONCURRENT_WEBHOOKS they take turns
among themselves without stretching each other, and a slow portal page (one
waiting on a provider) never holds their place.

With SERVER_TIMING_HEADER on, each answer carries
``Server-Timing: queue;dur=<ms waiting at the gate>, app;dur=<ms from entering
Django to the answer's first byte>``, so the server's own time can be read by
a client (the benchmark does). Off by default: it tells any client how long
the server worked on its request.

Websockets pass untouched: a call's media stream lasts minutes.
"""

from __future__ import annotations

import asyncio
import time


class RequestGate:
    def __init__(self, app, *, limit: int = 0, server_timing: bool = False, lanes: dict[str, int] | None = None):
        """``lanes``: path prefix -> its own bound (0: none) for the requests under it, instead of ``limit``."""
        if limit < 0 or any(bound < 0 for bound in (lanes or {}).values()):
            raise ValueError("limit must be 0 (no bound) or more")
        self.app = app
        self.limit = limit
        self.server_timing = server_timing
        self._slots = asyncio.Semaphore(limit) if limit else None
        self._lanes = [(prefix, asyncio.Semaphore(bound) if bound else None) for prefix, bound in (lanes or {}).items()]

    def _slots_for(self, path: str):
        for prefix, slots in self._lanes:
            if path.startswith(prefix):
                return slots
        return self._slots

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        slots = self._slots_for(scope.get("path") or "")
        if slots is None and not self.server_timing:
            return await self.app(scope, receive, send)
        arrived = time.perf_counter()
        if slots is not None:
            await slots.acquire()
        entered = time.perf_counter()

        async def send_timed(message):
            if self.server_timing and message["type"] == "http.response.start":
                now = time.perf_counter()
                timing = f"queue;dur={(entered - arrived) * 1e3:.2f}, app;dur={(now - entered) * 1e3:.2f}"
                message = {**message, "headers": [*message.get("headers", []), (b"server-timing", timing.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            if slots is not None:
                slots.release()
