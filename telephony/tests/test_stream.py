"""The media stream (/ws/telephony/stream/<call id>/): opened only by its call's single-use, short-lived token.

Real ASGI application, real Redis channel layer, no cookie and no Origin (as Twilio connects).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
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
    call = await sync_to_async(_call)(organization)
    token = await sync_to_async(stream_token_issue)(call)
    communicator = await _open(call.id)
    await communicator.send_to(text_data=_start(token))
    await communicator.send_to(text_data=json.dumps({"event": "media", "media": {"payload": "//8="}}))
    await communicator.send_to(text_data=json.dumps({"event": "stop", "stop": {"callSid": call.twilio_sid}}))
    assert await _closed_with(communicator, 1000)
    await communicator.disconnect()
    assert await sync_to_async(_kinds)(call) == ["stream.started", "stream.stopped"]
    stored = await sync_to_async(lambda: StreamToken.objects.for_org(organization).get(call=call))()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest() and token not in stored.token_hash
    assert stored.used_at is not None


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
