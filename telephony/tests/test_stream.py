"""The media stream (/ws/telephony/stream/<call id>/): opened only by its call's single-use, short-lived token.

Real ASGI application, real Redis channel layer, no cookie and no Origin (as Twilio connects).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from accounts.tests.conftest import redis_channel_layer  # noqa: F401  (the real layer, per test loop)
from jagcall.asgi import application
from telephony.models import Call, CallDirection, CallEvent, StreamToken
from telephony.services.streams import StreamTokenRefused, stream_token_issue, stream_token_redeem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_channel_layer")]


def _call(organization) -> Call:
    return Call.objects.create(
        organization=organization, direction=CallDirection.INBOUND, from_number="+14155550100",
        to_number="+14155550123", twilio_sid="CA" + "a" * 32, status="ringing",
    )  # fmt: skip


def _start(token, call_sid="CA" + "a" * 32) -> str:
    return json.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": "MZ" + "0" * 32,
        "start": {"streamSid": "MZ" + "0" * 32, "callSid": call_sid, "tracks": ["inbound"],
                  "customParameters": {"token": token} if token is not None else {},
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
    })  # fmt: skip


async def _open(call_id):
    communicator = WebsocketCommunicator(application, f"/ws/telephony/stream/{call_id}/")  # no cookie, no Origin
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.send_to(text_data=json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    return communicator


async def _closed_with(communicator, code):
    message = await communicator.receive_output(timeout=5)
    while message["type"] == "websocket.send":
        message = await communicator.receive_output(timeout=5)
    return message == {"type": "websocket.close", "code": code}


def _kinds(call):
    return list(CallEvent.objects.for_org(call.organization).filter(call=call).values_list("kind", flat=True))


async def test_the_calls_token_opens_its_stream_which_records_start_and_stop(organization):
    layer = get_channel_layer()
    buffers_before = set(layer.receive_buffer)
    call = await sync_to_async(_call)(organization)
    token = await sync_to_async(stream_token_issue)(call)
    communicator = await _open(call.id)
    await communicator.send_to(text_data=_start(token))
    await communicator.send_to(text_data=json.dumps({"event": "media", "media": {"payload": "//8="}}))
    await communicator.send_to(text_data=json.dumps({"event": "stop", "stop": {"callSid": call.twilio_sid}}))
    assert await _closed_with(communicator, 1000)
    await communicator.disconnect()
    # the call has no agent: the stream opens (so the call was answered), says why no conversation runs, and closes
    assert await sync_to_async(_kinds)(call) == ["stream.started", "in-progress", "engine.unavailable", "stream.stopped"]
    await call.arefresh_from_db()
    assert call.status == "in-progress" and call.answered_at is not None
    stored = await sync_to_async(lambda: StreamToken.objects.for_org(organization).get(call=call))()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest() and token not in stored.token_hash
    assert stored.used_at is not None
    assert set(layer.receive_buffer) == buffers_before  # the ended stream's queue is gone


@pytest.mark.parametrize("case", ["missing", "unknown", "reused", "expired", "other_call", "no_start"])
async def test_a_stream_without_its_calls_valid_token_is_closed_4403(case, organization, other_organization, events):
    call = await sync_to_async(_call)(organization)
    token = await sync_to_async(stream_token_issue)(call)
    target = call.id
    if case == "missing":
        token = None
    elif case == "unknown":
        token = "not-a-token-we-issued"
    elif case == "reused":
        await sync_to_async(stream_token_redeem)(call.id, token)
    elif case == "expired":
        await sync_to_async(
            lambda: StreamToken.objects.for_org(organization).update(expires_at=timezone.now() - timedelta(seconds=1))
        )()
    elif case == "other_call":  # a token of another organization's call presented on this call's stream
        other = await sync_to_async(
            lambda: Call.objects.create(organization=other_organization, direction=CallDirection.INBOUND,
                                        from_number="+14155550101", to_number="+14155550124")
        )()  # fmt: skip
        token = await sync_to_async(stream_token_issue)(other)
    communicator = await _open(target)
    if case == "no_start":
        await communicator.send_to(text_data=json.dumps({"event": "media", "media": {"payload": "//8="}}))
    else:
        await communicator.send_to(text_data=_start(token))
    assert await _closed_with(communicator, 4403)
    await communicator.disconnect()
    assert await sync_to_async(_kinds)(call) == []  # nothing was opened
    refusals = [e for e in events if e["event"] == "telephony.stream_refused"]
    assert len(refusals) == 1 and refusals[0]["call_id"] == str(target)


async def test_a_replayed_voice_request_gets_a_token_that_cannot_open_a_second_stream(
    organization, twilio_standin, settings, events
):
    """Twilio's signatures carry no time: a replay of the signed voice request is answered with a fresh token,
    but the call's media stream opens once."""
    import xml.etree.ElementTree as ET

    from django.test import Client

    from telephony.tests.calls_support import line, signed_post

    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"

    def answer_twice():
        number = line(organization)
        params = {"AccountSid": number.account_sid, "CallSid": "CA" + "a" * 32, "CallStatus": "ringing",
                  "From": "+14155550100", "To": number.number}  # fmt: skip
        answers = [signed_post(Client(), "twilio-hooks:voice", params, account_sid=number.account_sid) for _ in "12"]
        assert [answer.status_code for answer in answers] == [200, 200]
        tokens = [ET.fromstring(a.content).find("./Connect/Stream/Parameter").get("value") for a in answers]
        return Call.objects.for_org(organization).get(twilio_sid=params["CallSid"]), tokens

    call, (first, replayed) = await sync_to_async(answer_twice)()
    assert first != replayed
    streaming = await _open(call.id)
    await streaming.send_to(text_data=_start(first))
    second = await _open(call.id)  # while the first stream is open
    await second.send_to(text_data=_start(replayed))
    assert await _closed_with(second, 4403)
    await second.disconnect()
    await streaming.send_to(text_data=json.dumps({"event": "stop", "stop": {"callSid": call.twilio_sid}}))
    assert await _closed_with(streaming, 1000)
    await streaming.disconnect()
    # one stream opened (no provider keys here, so no conversation ran on it) and closed
    assert await sync_to_async(_kinds)(call) == [
        "ringing", "stream.started", "in-progress", "engine.unavailable", "stream.stopped"
    ]  # fmt: skip
    refusals = [e for e in events if e["event"] == "telephony.stream_refused"]
    assert [(r["reason"], r["call_id"]) for r in refusals] == [("already_streamed", str(call.id))]


@pytest.mark.parametrize("status", ["in-progress", "completed"])
def test_a_stream_leaves_a_call_already_answered_or_over_as_it_is(organization, status):
    from telephony.services.calls import call_answered_by_stream

    call = _call(organization)
    call.status = status
    call.save()
    assert call_answered_by_stream(call=call).status == status
    assert _kinds(call) == []


def test_a_calls_stream_opens_once_whatever_the_number_of_its_tokens(organization):
    call = _call(organization)
    first, second, third = (stream_token_issue(call) for _ in range(3))
    assert stream_token_redeem(call.id, second) == call
    for token in (first, third):
        with pytest.raises(StreamTokenRefused) as refused:
            stream_token_redeem(call.id, token)
        assert refused.value.reason == "already_streamed" and refused.value.call == call
    assert StreamToken.objects.for_org(organization).filter(call=call, used_at__isnull=False).count() == 1
    with pytest.raises(StreamTokenRefused) as again:
        stream_token_redeem(call.id, second)
    assert again.value.reason == "used"


def test_two_tokens_of_one_call_redeemed_at_once_open_one_stream(organization):
    import threading

    from django.db import connection

    call = _call(organization)
    tokens = [stream_token_issue(call) for _ in range(6)]
    start, outcomes = threading.Barrier(len(tokens)), []

    def redeem(token):
        try:
            start.wait(timeout=5)
            try:
                stream_token_redeem(call.id, token)
                outcomes.append("opened")
            except StreamTokenRefused as refused:
                outcomes.append(refused.reason)
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(outcomes) == ["already_streamed"] * (len(tokens) - 1) + ["opened"]


def test_redeeming_is_single_use_and_bound_to_the_call(organization):
    call = _call(organization)
    token = stream_token_issue(call)
    with pytest.raises(StreamTokenRefused) as other:
        stream_token_redeem("00000000-0000-0000-0000-000000000000", token)
    assert other.value.reason == "other_call"
    assert stream_token_redeem(call.id, token) == call
    with pytest.raises(StreamTokenRefused) as again:
        stream_token_redeem(call.id, token)
    assert again.value.reason == "used"


async def test_a_flood_of_forged_stream_tokens_is_refused_and_the_audit_log_stays_bounded(organization, settings):
    """Nobody signs in to open a media stream: a stranger's flood of guesses opens nothing and writes a bounded log."""
    from compliance.models import AuditEvent

    call = await sync_to_async(_call)(organization)
    await sync_to_async(stream_token_issue)(call)
    closed = []
    for n in range(25):
        communicator = WebsocketCommunicator(application, f"/ws/telephony/stream/{call.id}/")
        communicator.scope["client"] = ("203.0.113.77", 40000 + n)  # as uvicorn fills it in
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        await communicator.send_to(text_data=_start(f"guess-{n}"))
        closed.append(await _closed_with(communicator, 4403))
        await communicator.disconnect()
    assert all(closed)
    assert await sync_to_async(_kinds)(call) == []

    def recorded():
        return AuditEvent.objects.platform().filter(action="telephony.stream_refused").count()

    assert 1 <= await sync_to_async(recorded)() <= settings.AUDIT_FAILURES_RECORDED_PER_WINDOW


async def test_media_messages_do_not_each_sweep_database_connections(organization, monkeypatch):
    """Channels sweeps stale database connections (a thread hop) before each message; a call's 50 audio
    messages a second skip it (handlers reach the database through database_sync_to_async, which sweeps)."""
    import channels.consumer

    sweeps = []
    real = channels.consumer.aclose_old_connections

    async def counted():
        sweeps.append(1)
        await real()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    call = await sync_to_async(_call)(organization)
    token = await sync_to_async(stream_token_issue)(call)
    communicator = await _open(call.id)
    await communicator.send_to(text_data=_start(token))
    for _ in range(100):
        await communicator.send_to(text_data=json.dumps({"event": "media", "media": {"payload": "//8="}}))
    await communicator.send_to(text_data=json.dumps({"event": "stop", "stop": {"callSid": call.twilio_sid}}))
    assert await _closed_with(communicator, 1000)
    await communicator.disconnect()
    assert len(sweeps) <= 2, f"{len(sweeps)} sweeps for 103 messages"  # the connect and the disconnect
    assert await sync_to_async(_kinds)(call) == ["stream.started", "in-progress", "engine.unavailable", "stream.stopped"]


async def test_media_messages_are_read_in_order_without_a_task_each_or_a_channel_of_the_layer(organization):
    """Channels' consumer listens on the channel layer too, and makes a task for every message it receives so
    as to wait on both; a call's stream takes its 50 messages a second straight from the server instead."""
    import asyncio

    layer = get_channel_layer()
    channels_before = set(layer.receive_buffer)
    loop = asyncio.get_running_loop()
    made = []
    factory = loop.get_task_factory()

    def counting(loop, coro, **kwargs):
        made.append(getattr(coro, "__qualname__", repr(coro)))
        return factory(loop, coro, **kwargs) if factory else asyncio.Task(coro, loop=loop, **kwargs)

    call = await sync_to_async(_call)(organization)
    token = await sync_to_async(stream_token_issue)(call)
    communicator = await _open(call.id)
    await communicator.send_to(text_data=_start(token))
    loop.set_task_factory(counting)
    try:
        for _ in range(100):
            await communicator.send_to(text_data=json.dumps({"event": "media", "media": {"payload": "//8="}}))
        await communicator.send_to(text_data=json.dumps({"event": "stop", "stop": {"callSid": call.twilio_sid}}))
        assert await _closed_with(communicator, 1000)
    finally:
        loop.set_task_factory(factory)
    await communicator.disconnect()
    assert len(made) < 20, f"{len(made)} tasks for 101 messages: {sorted(set(made))}"
    assert set(layer.receive_buffer) == channels_before  # no channel was made for the stream
    assert await sync_to_async(_kinds)(call) == ["stream.started", "in-progress", "engine.unavailable", "stream.stopped"]


@pytest.mark.parametrize(("answered_by", "carried"), [("machine_end_beep", True), ("human", True),
                                                      ("robot", False), ('"/><Hangup/><x a="', False), ("", False)])  # fmt: skip
def test_the_stream_carries_only_twilios_own_answered_by_values(organization, settings, answered_by, carried):
    import xml.etree.ElementTree as ET

    from telephony.services.inbound import stream_twiml

    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"
    twiml = ET.fromstring(stream_twiml(_call(organization), record=False, answered_by=answered_by))
    parameters = {p.get("name"): p.get("value") for p in twiml.iter("Parameter")}
    assert set(parameters) == ({"token", "answered_by"} if carried else {"token"})
    assert not carried or parameters["answered_by"] == answered_by
    assert twiml.find("Hangup") is None
