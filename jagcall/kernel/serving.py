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


class BodyLimit:
    """Refuses a request body over its route's limit before Django reads any of it (413).

    ``limits``: ``[(compiled path pattern, most bytes, message)]``, the first
    match wins; other paths pass untouched. A declared ``Content-Length``
    over the limit is answered at once; a body sent without one (chunked) is
    counted as it arrives and cut off at the first byte over, the
    application then seeing the client gone. The answer is the API's error
    shape (JSON), which the portal's upload script reads too.

    Django's ASGI handler reads a request's whole body (spooled to a
    temporary file) before the view runs, so without this a view's own
    limit would come only after the body was received.
    """

    def __init__(self, app, *, limits):
        self.app = app
        self.limits = list(limits)

    def _limit_for(self, scope):
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            return None
        path = scope.get("path") or ""
        for pattern, most, message in self.limits:
            if pattern.match(path):
                return most, message
        return None

    @staticmethod
    async def _refuse(send, message: str) -> None:
        import json

        body = json.dumps({"error": {"code": "request_too_large", "message": message, "details": {}}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        limit = self._limit_for(scope)
        if limit is None:
            return await self.app(scope, receive, send)
        most, message = limit
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > most:
            return await self._refuse(send, message)

        state = {"received": 0, "refused": False}

        async def counted_receive():
            if state["refused"]:
                return {"type": "http.disconnect"}
            event = await receive()
            if event["type"] == "http.request":
                state["received"] += len(event.get("body", b""))
                if state["received"] > most:
                    state["refused"] = True
                    await self._refuse(send, message)
                    return {"type": "http.disconnect"}
            return event

        async def guarded_send(event):
            if not state["refused"]:
                await send(event)

        await self.app(scope, counted_receive, guarded_send)
