"""Status callbacks: a call's timeline, idempotent and never backwards, usage once, pushed live on commit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.tests.conftest import redis_channel_layer  # noqa: F401  (the real layer, per test loop)
from jagcall.asgi import application
from billing.models import UsageEvent
from telephony.models import Call, CallDirection, CallEvent
from telephony.services.twilio_accounts import twilio_for
from telephony.services.urls import public_url
from telephony.tests.calls_support import inbound_call, line, signature_refusals, signed_post, written_rows

PUBLIC = "https://app.jagcall.test"
CALLER = "+14155550100"


@pytest.fixture
def twilio(twilio_standin, settings, client):
    settings.PUBLIC_BASE_URL = PUBLIC
    twilio_standin.route_callbacks_to(client)
    return twilio_standin


def _status(client, call, status, sequence, **extra):
    params = {"AccountSid": call.account_sid, "CallSid": call.twilio_sid, "CallStatus": status,
              "SequenceNumber": str(sequence), "Timestamp": f"Fri, 04 Dec 2026 21:00:0{sequence} +0000",
              **extra}  # fmt: skip
    return signed_post(client, "twilio-hooks:status", params, account_sid=call.account_sid)


def _timeline(call):
    return list(CallEvent.objects.for_org(call.organization).filter(call=call).values_list("kind", flat=True))


@pytest.mark.django_db
def test_an_outbound_call_played_by_the_stand_in_fills_its_timeline_and_usage(twilio, organization):
    number = line(organization)
    call = Call.objects.create(
        organization=organization, direction=CallDirection.OUTBOUND, agent=number.agent, phone_number=number,
        from_number=number.number, to_number=CALLER, account_sid=number.account_sid,
    )  # fmt: skip
    access = twilio_for(organization)
    created = access.client.api.v2010.accounts(access.account_sid).calls.create(
        to=CALLER, from_=number.number, url=public_url("twilio-hooks:voice", call=call.id),
        status_callback=public_url("twilio-hooks:status", call=call.id),
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )  # fmt: skip
    callbacks = twilio.complete_call(created.sid, duration=42, record=False)
    assert all(c.status in (200, 204) for c in callbacks), [(c.kind, c.status, c.response_body) for c in callbacks]
    call.refresh_from_db()
    assert call.twilio_sid == created.sid
    assert (call.status, call.duration_seconds, call.billable_seconds) == ("completed", 42, 42)
    assert call.answered_at and call.ended_at and call.answered_at <= call.ended_at
    assert _timeline(call) == ["initiated", "ringing", "in-progress", "completed"]
    usage = UsageEvent.objects.for_org(organization).get()
    assert (usage.kind, usage.quantity, usage.source) == ("call_minutes", 1, f"call:{call.id}")  # 42 s: one minute


@pytest.mark.django_db
def test_a_duplicate_changes_nothing_and_a_late_status_never_moves_the_call_back(twilio, organization, client):
    call = inbound_call(organization, number=line(organization))
    assert _status(client, call, "in-progress", 1).status_code == 204
    assert _status(client, call, "completed", 3, CallDuration="61").status_code == 204
    call.refresh_from_db()
    before = (call.status, call.updated_at, call.duration_seconds, call.billable_seconds)
    # Twilio's retry (same idempotency token, or none): deduped before the handler, then by the timeline.
    headers = {"I-Twilio-Idempotency-Token": "same"}
    for _ in range(2):
        params = {"AccountSid": call.account_sid, "CallSid": call.twilio_sid, "CallStatus": "completed",
                  "SequenceNumber": "3", "CallDuration": "99"}  # fmt: skip
        response = signed_post(client, "twilio-hooks:status", params, account_sid=call.account_sid, headers=headers)
        assert response.status_code in (200, 204)
    assert _status(client, call, "completed", 3, CallDuration="99").status_code == 200  # CallSid+status+sequence seen
    # A "ringing" arriving after the call ended is kept in the timeline but moves nothing.
    assert _status(client, call, "ringing", 0).status_code == 204
    call.refresh_from_db()
    assert (call.status, call.duration_seconds, call.billable_seconds) == before[0:1] + before[2:]
    assert _timeline(call).count("completed") == 1
    late = CallEvent.objects.for_org(organization).get(call=call, kind="ringing")
    assert late.details.get("late") is True
    assert UsageEvent.objects.for_org(organization).count() == 1
    assert UsageEvent.objects.for_org(organization).get().quantity == 2  # 61 s: every started minute counts


@pytest.mark.django_db
def test_a_failed_call_says_why_and_bills_nothing(twilio, organization, client):
    call = inbound_call(organization, number=line(organization))
    assert _status(client, call, "failed", 2, ErrorCode="13224", SipResponseCode="404").status_code == 204
    call.refresh_from_db()
    assert call.status == "failed" and call.error_code == "13224"
    assert "not a valid phone number" in call.error_message
    assert not UsageEvent.objects.for_org(organization).exists()


@pytest.mark.django_db
def test_a_callback_about_another_accounts_call_is_not_found(twilio, organization, other_organization, client):
    call = inbound_call(organization, number=line(organization))
    other_account = twilio_for(other_organization).account_sid  # a valid signature, of another organization
    params = {"AccountSid": other_account, "CallSid": call.twilio_sid, "CallStatus": "completed", "SequenceNumber": "5"}
    response = signed_post(client, "twilio-hooks:status", params, account_sid=other_account, query={"call": call.id})
    assert response.status_code == 404
    call.refresh_from_db()
    assert call.status == "ringing" and _timeline(call) == []


@pytest.mark.django_db
def test_an_unknown_status_is_refused_with_400(twilio, organization, client):
    call = inbound_call(organization, number=line(organization))
    assert _status(client, call, "exploded", 1).status_code == 400
    assert _timeline(call) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("redis_channel_layer")
async def test_each_change_is_pushed_live_to_the_organizations_websocket(
    twilio_standin, settings, organization, member
):
    settings.PUBLIC_BASE_URL = PUBLIC
    number = await sync_to_async(line)(organization)
    call = await sync_to_async(inbound_call)(organization, number=number)
    browser = await sync_to_async(Client)()
    await sync_to_async(browser.force_login)(member)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    socket = WebsocketCommunicator(
        application,
        f"/ws/o/{organization.slug}/events/",
        headers=[(b"origin", b"http://127.0.0.1"), (b"cookie", cookie)],
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    assert (await socket.receive_json_from(timeout=5))["event"] == "subscribed"
    hooks = Client()
    await sync_to_async(_status)(hooks, call, "in-progress", 1)
    message = await socket.receive_json_from(timeout=5)
    assert message["event"] == "call.updated"
    payload = message["payload"]
    assert (payload["id"], payload["status"], payload["status_label"]) == (str(call.id), "in-progress", "In progress")
    assert payload["counterpart"] == "+1 415 ••• 0100" and CALLER not in str(message)
    await sync_to_async(_status)(hooks, call, "completed", 2, CallDuration="12")
    message = await socket.receive_json_from(timeout=5)
    assert (message["payload"]["status"], message["payload"]["duration_seconds"], message["payload"]["finished"]) == (
        "completed", 12, True
    )  # fmt: skip
    await socket.disconnect()
    assert settings.PUBLIC_BASE_URL == PUBLIC


@pytest.mark.django_db
def test_the_service_records_a_status_once_even_without_the_webhooks_dedupe(twilio, organization):
    from telephony.services.calls import call_status_record

    call = inbound_call(organization, number=line(organization))
    for _ in range(2):
        call_status_record(call=call, status="completed", sequence_number=4, duration_seconds="30")
    call_status_record(call=call, status="completed", sequence_number=5, duration_seconds="31")
    call.refresh_from_db()
    assert (call.status, call.duration_seconds, call.billable_seconds) == ("completed", 30, 30)
    assert _timeline(call).count("completed") == 2  # two different deliveries are both in the timeline
    assert UsageEvent.objects.for_org(organization).get().quantity == 1


@pytest.mark.django_db
def test_the_recording_hook_hands_a_finished_recording_to_the_pipeline_once(twilio, organization, client):
    from telephony.models import CallRecording

    call = inbound_call(organization, number=line(organization, record=True))
    params = {"AccountSid": call.account_sid, "CallSid": call.twilio_sid, "RecordingSid": "RE" + "1" * 32,
              "RecordingStatus": "completed", "RecordingDuration": "12", "RecordingChannels": "1",
              "RecordingUrl": f"{twilio.base_url}/2010-04-01/Accounts/{call.account_sid}/Recordings/RE{'1' * 32}",
              }  # fmt: skip
    # (The download queued on commit is the pipeline's test; this test's transaction never commits.)
    for _ in range(2):
        response = signed_post(
            client, "twilio-hooks:recording", params, account_sid=call.account_sid, query={"call": call.id}
        )
        assert response.status_code in (200, 204)
    recording = CallRecording.objects.for_org(organization).get(call=call)
    assert (recording.twilio_sid, recording.duration_seconds) == ("RE" + "1" * 32, 12)
    bad = {**params, "RecordingSid": "XX" + "1" * 32}
    assert signed_post(client, "twilio-hooks:recording", bad, account_sid=call.account_sid).status_code == 400


# --- signed callbacks with values Twilio never sends: 400, nothing written, no refusal counted ---------------

TOO_LONG_CALL_SID = "CA" + "1" * 60


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field, value",
    [
        ("CallDuration", "99999999999"),
        ("CallDuration", str(2**31)),
        ("CallDuration", "-5"),
        ("CallDuration", "soon"),
        ("SequenceNumber", "99999999999"),
        ("SequenceNumber", "-1"),
        ("Price", "-1e20"),
        ("Price", "-99999.999999"),  # rounds to 100000.00000: one digit too many
        ("Price", "NaN"),
        ("CallPrice", "1e999999999"),
        ("CallSid", TOO_LONG_CALL_SID),
        ("CallSid", "CA" + "A" * 32),
        ("CallSid", "RE" + "1" * 32),
        ("ParentCallSid", "CA" + "1" * 31),
        ("ErrorCode", "312\x00"),
        ("CallbackSource", "call-progress-events\x00"),
    ],
)
def test_a_signed_status_callback_with_a_value_out_of_range_is_a_400_that_writes_nothing(
    field, value, twilio, organization, client
):
    call = inbound_call(organization, number=line(organization), status="in-progress")
    before = written_rows()
    with signature_refusals() as refusals:
        response = _status(client, call, "completed", 3, **{"CallDuration": "42", "Price": "-0.013", field: value})
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("text/plain") and field in response.content.decode()
    assert written_rows() == before and refusals == []  # the sender's bug, not a forged signature
    call.refresh_from_db()
    assert (call.status, call.duration_seconds, call.price, call.billable_seconds) == ("in-progress", None, None, None)


@pytest.mark.django_db
def test_the_largest_values_the_columns_hold_are_recorded(twilio, organization, client):
    call = inbound_call(organization, number=line(organization), status="in-progress")
    largest = str(2**31 - 1)
    response = _status(client, call, "completed", 3, CallDuration=largest, Price="-99999.99999", SequenceNumber=largest)
    assert response.status_code == 204, response.content
    call.refresh_from_db()
    assert (call.duration_seconds, str(call.price)) == (2**31 - 1, "99999.99999")
    assert CallEvent.objects.for_org(organization).get(call=call, kind="completed").sequence_number == 2**31 - 1


def test_the_status_service_ignores_numbers_its_columns_cannot_hold():
    from telephony.services.calls import _int, _price

    given = ("42", str(2**31 - 1), str(2**31), "-1", "x", None)
    assert [_int(v) for v in given] == [42, 2**31 - 1, None, None, None, None]
    assert [_price(v) for v in ("-0.013", "-1e20", "99999.999999", "NaN", "-Infinity", "")] == [
        Decimal("0.01300"), None, None, None, None, None
    ]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field, value",
    [
        ("RecordingSid", "RE" + "1" * 60),
        ("RecordingSid", "CA" + "1" * 32),
        ("RecordingDuration", "99999999999"),
        ("RecordingDuration", "-2"),
        ("RecordingChannels", "0"),
        ("RecordingChannels", "3"),
        ("RecordingChannels", "40000"),
        ("CallSid", TOO_LONG_CALL_SID),
        ("RecordingUrl", "https://api.twilio.com/\x00"),
    ],
)
def test_a_signed_recording_callback_with_a_value_out_of_range_is_a_400_that_writes_nothing(
    field, value, twilio, organization, client
):
    call = inbound_call(organization, number=line(organization, record=True))
    params = {"AccountSid": call.account_sid, "CallSid": call.twilio_sid, "RecordingSid": "RE" + "1" * 32,
              "RecordingStatus": "completed", "RecordingDuration": "12", "RecordingChannels": "1",
              field: value}  # fmt: skip
    before = written_rows()
    with signature_refusals() as refusals:
        response = signed_post(
            client, "twilio-hooks:recording", params, account_sid=call.account_sid, query={"call": call.id}
        )
    assert response.status_code == 400, response.content
    assert field in response.content.decode()
    assert written_rows() == before and refusals == []


@pytest.mark.django_db
def test_an_absent_recording_reported_with_duration_minus_one_is_accepted_and_fetches_nothing(twilio, organization, client):
    from telephony.models import CallRecording

    call = inbound_call(organization, number=line(organization, record=True))
    params = {"AccountSid": call.account_sid, "CallSid": call.twilio_sid, "RecordingSid": "RE" + "4" * 32,
              "RecordingStatus": "absent", "RecordingDuration": "-1", "RecordingChannels": "1"}  # fmt: skip
    response = signed_post(client, "twilio-hooks:recording", params, account_sid=call.account_sid, query={"call": call.id})
    assert response.status_code == 204
    assert not CallRecording.objects.for_org(organization).exists()

@pytest.mark.django_db
@pytest.mark.parametrize("given", [{"recording_sid": "RE" + "1" * 60}, {"duration_seconds": 2**31}, {"channels": 3}])
def test_the_recording_service_refuses_what_its_columns_cannot_hold(given, twilio, organization):
    from jagcall.kernel.errors import ApplicationError
    from telephony.models import CallRecording
    from telephony.services.recordings import recording_received

    call = inbound_call(organization, number=line(organization, record=True))
    with pytest.raises(ApplicationError):
        recording_received(call=call, **{"recording_sid": "RE" + "1" * 32, "duration_seconds": 12, **given})
    assert not CallRecording.objects.for_org(organization).exists()
