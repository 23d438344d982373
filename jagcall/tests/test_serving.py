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
