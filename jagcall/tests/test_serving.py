"""The web process's HTTP front door (jagcall/kernel/serving.py): a bound on requests inside Django, Server-Timing."""

from __future__ import annotations

import asyncio

import pytest

from jagcall.kernel.serving import RequestGate


class SlowApp:
    """An ASGI app that holds each request a moment and counts how many it holds at once."""

    def __init__(self):
        self.inside = self.most = 0

    async def __call__(self, scope, receive, send):
        self.inside += 1
        self.most = max(self.most, self.inside)
        await asyncio.sleep(0.02)
        self.inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


async def _request(app, scope_type="http"):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    await app({"type": scope_type, "path": "/"}, receive, send)
    return sent


def _timing(sent) -> dict:
    headers = dict(sent[0]["headers"])
    return dict(part.strip().split(";dur=") for part in headers[b"server-timing"].decode().split(","))


@pytest.mark.parametrize("limit, most", [(3, 3), (1, 1), (0, 20)])
def test_at_most_limit_requests_are_inside_at_once_and_the_rest_wait_in_line(limit, most):
    inner = SlowApp()
    gate = RequestGate(inner, limit=limit, server_timing=True)

    async def run():
        return await asyncio.gather(*(_request(gate) for _ in range(20)))

    answers = asyncio.run(run())
    assert inner.most == most
    assert all(sent[0]["status"] == 200 and sent[1]["body"] == b"ok" for sent in answers)
    timings = [_timing(sent) for sent in answers]
    assert all(set(t) == {"queue", "app"} and float(t["app"]) >= 15 for t in timings)
    if limit == 1:  # the last one waited for the 19 before it
        assert max(float(t["queue"]) for t in timings) >= 19 * 15


def test_without_server_timing_the_answer_is_untouched_and_websockets_pass():
    inner = SlowApp()
    sent = asyncio.run(_request(RequestGate(inner, limit=2)))
    assert sent[0]["headers"] == [(b"content-type", b"text/plain")]

    seen = []

    async def socket_app(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(_request(RequestGate(socket_app, limit=1, server_timing=True), scope_type="websocket"))
    assert seen == ["websocket"]


def test_a_negative_limit_is_refused():
    with pytest.raises(ValueError):
        RequestGate(SlowApp(), limit=-1)


async def _request_to(app, path):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "path": path}, receive, send)
    return sent


def test_webhooks_take_turns_in_their_own_lane_and_pages_keep_theirs():
    hooks, pages = SlowApp(), SlowApp()

    async def inner(scope, receive, send):
        await (hooks if scope["path"].startswith("/hooks/") else pages)(scope, receive, send)

    gate = RequestGate(inner, limit=3, server_timing=True, lanes={"/hooks/": 1})

    async def run():
        return await asyncio.gather(
            *(_request_to(gate, "/hooks/twilio/voice/") for _ in range(8)),
            *(_request_to(gate, "/o/acme/calls/") for _ in range(8)),
        )

    answers = asyncio.run(run())
    assert hooks.most == 1 and pages.most == 3  # one webhook at a time; pages never waited behind them
    assert all(sent[0]["status"] == 200 for sent in answers)


def test_a_negative_lane_bound_is_refused():
    with pytest.raises(ValueError):
        RequestGate(SlowApp(), lanes={"/hooks/": -1})


# --- BodyLimit: a body over its route's limit is refused before the application reads it ---------------------


class BodyReader:
    """An ASGI app that reads the whole body, as Django's handler does, then answers 200 with its length."""

    def __init__(self):
        self.calls = 0
        self.disconnected = False

    async def __call__(self, scope, receive, send):
        self.calls += 1
        size = 0
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                self.disconnected = True
                return
            size += len(event.get("body", b""))
            if not event.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def _limited(app):
    import re

    from jagcall.kernel.serving import BodyLimit

    return BodyLimit(app, limits=[(re.compile(r"^/upload/"), 100, "At most 100 bytes.")])


async def _post(app, path, parts, *, declared=None, method="POST"):
    sent = []
    pending = list(parts)
    read = []

    async def receive():
        if not pending:
            return {"type": "http.disconnect"}
        body = pending.pop(0)
        read.append(len(body))
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message):
        sent.append(message)

    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
    await app({"type": "http", "method": method, "path": path, "headers": headers}, receive, send)
    return sent, read


def _status_and_body(sent):
    import json

    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], (json.loads(body) if start["status"] == 413 else body)


def test_a_declared_body_over_the_limit_is_refused_without_reading_it():
    app = BodyReader()
    sent, read = asyncio.run(_post(_limited(app), "/upload/file", [b"x" * 101], declared=101))
    status, body = _status_and_body(sent)
    assert status == 413 and body["error"]["message"] == "At most 100 bytes."
    assert app.calls == 0 and read == []


def test_exactly_the_limit_passes():
    app = BodyReader()
    sent, _ = asyncio.run(_post(_limited(app), "/upload/file", [b"x" * 60, b"x" * 40], declared=100))
    assert _status_and_body(sent) == (200, b"100")


def test_an_undeclared_body_is_cut_off_at_the_first_byte_over():
    app = BodyReader()
    parts = [b"x" * 60, b"x" * 41, b"x" * 1000, b"x" * 1000]
    sent, read = asyncio.run(_post(_limited(app), "/upload/file", parts))
    status, body = _status_and_body(sent)
    assert status == 413 and "100 bytes" in body["error"]["message"]
    assert read == [60, 41]  # the rest was never read
    assert app.disconnected  # the application sees the client gone and answers nothing
    assert len([m for m in sent if m["type"] == "http.response.start"]) == 1


def test_other_routes_and_methods_pass_untouched():
    app = BodyReader()
    sent, _ = asyncio.run(_post(_limited(app), "/elsewhere/", [b"x" * 500], declared=500))
    assert _status_and_body(sent) == (200, b"500")
    sent, _ = asyncio.run(_post(_limited(app), "/upload/file", [b""], declared=500, method="GET"))
    assert _status_and_body(sent)[0] == 200


@pytest.mark.django_db(transaction=True)
def test_the_web_process_refuses_an_oversized_upload_before_django_reads_it(asgi_live_server, settings):
    """Through the real ASGI application and server: the knowledge upload routes, API and portal."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(asgi_live_server)
    limit = settings.KNOWLEDGE_MAX_UPLOAD_BYTES + settings.KNOWLEDGE_UPLOAD_OVERHEAD_BYTES
    for path in ("/api/v1/knowledge-bases/x/documents", "/o/acme/knowledge/x/upload/"):
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "multipart/form-data; boundary=b")
        connection.putheader("Content-Length", str(limit + 1))
        connection.endheaders()
        connection.send(b"--b\r\n")  # the rest is never sent: the answer comes first
        response = connection.getresponse()
        assert response.status == 413, path
        assert "20 MB" in response.read().decode()
        connection.close()
