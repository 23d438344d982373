"""The voice webhook: a call to one of our numbers is connected to its media stream, or refused politely.

Driven through the Twilio stand-in (its numbers point at our hooks; it signs the voice request with the
subaccount's auth token like Twilio) and, for requests the stand-in cannot make, signed with the SDK's
RequestValidator.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest
from django.db import connection
from django.utils import timezone

from telephony.models import Call, CallDirection, CallEvent, StreamToken
from telephony.tests.calls_support import line, signature_refusals, signed_post, written_rows

pytestmark = pytest.mark.django_db

PUBLIC = "https://app.jagcall.test"
CALLER = "+14155550100"


@pytest.fixture
def twilio(twilio_standin, settings, client):
    settings.PUBLIC_BASE_URL = PUBLIC
    twilio_standin.route_callbacks_to(client)
    return twilio_standin


def _stream(twiml: str):
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")} if stream is not None else {}
    return root, stream, params


def test_an_inbound_call_is_connected_to_a_wss_stream_with_a_single_use_token(twilio, organization):
    number = line(organization)
    answer = twilio.inbound_call(number.number, CALLER)
    assert answer.status == 200
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
    assert (call.direction, call.status, call.agent, call.phone_number) == (
        CallDirection.INBOUND, "ringing", number.agent, number
    )  # fmt: skip
    assert (call.from_number, call.to_number) == (CALLER, number.number)
    root, stream, params = _stream(answer)
    assert stream.get("url") == f"wss://app.jagcall.test/ws/telephony/stream/{call.id}/"
    assert root.find("./Start/Recording") is None  # this agent does not record
    token = params["token"]
    stored = StreamToken.objects.for_org(organization).get(call=call)
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert 55 <= (stored.expires_at - timezone.now()).total_seconds() <= 60
    assert list(CallEvent.objects.for_org(organization).filter(call=call).values_list("kind", flat=True)) == ["ringing"]


def test_numbers_are_not_stored_in_clear(twilio, organization):
    number = line(organization)
    answer = twilio.inbound_call(number.number, CALLER)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT from_number::text, to_number::text, from_number_index, to_number_index FROM telephony_call "
            "WHERE twilio_sid = %s",
            [answer.call_sid],
        )
        row = cursor.fetchone()
    raw = " ".join(str(value) for value in row)
    for clear in (CALLER, CALLER.lstrip("+"), "4155550100", number.number.lstrip("+")):
        assert clear not in raw and clear.encode().hex() not in raw


def test_an_agent_that_records_starts_the_recording_in_the_answer(twilio, organization):
    number = line(organization, record=True)
    answer = twilio.inbound_call(number.number, CALLER)
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
    recording = ET.fromstring(answer).find("./Start/Recording")
    assert recording.get("recordingStatusCallback") == f"{PUBLIC}/hooks/twilio/recording/?call={call.id}"
    assert recording.get("recordingStatusCallbackEvent") == "completed"


def test_twilios_retry_of_the_voice_request_gets_the_same_call_and_a_fresh_token(twilio, organization, client):
    number = line(organization)
    params = {"AccountSid": number.account_sid, "CallSid": "CA" + "b" * 32, "CallStatus": "ringing",
              "From": CALLER, "To": number.number, "Direction": "inbound"}  # fmt: skip
    headers = {"I-Twilio-Idempotency-Token": "retry-1"}
    first = signed_post(client, "twilio-hooks:voice", params, account_sid=number.account_sid, headers=headers)
    second = signed_post(client, "twilio-hooks:voice", params, account_sid=number.account_sid, headers=headers)
    assert first.status_code == second.status_code == 200
    tokens = [_stream(r.content.decode())[2]["token"] for r in (first, second)]
    assert tokens[0] != tokens[1]
    assert Call.objects.for_org(organization).filter(twilio_sid=params["CallSid"]).count() == 1


@pytest.mark.parametrize("case", ["unknown_number", "no_agent", "terminated", "other_account"])
def test_calls_that_cannot_be_taken_hear_a_short_refusal_and_a_hang_up(case, twilio, organization, client):
    number = line(organization, agent=case != "no_agent")
    to, account_sid = number.number, number.account_sid
    if case == "unknown_number":
        to = "+14155550999"
    elif case == "terminated":
        organization.status, organization.terminated_at = "terminated", timezone.now()
        organization.save(update_fields=["status", "terminated_at"])
    elif case == "other_account":  # a valid signature of the platform's account, about a subaccount's number
        from django.conf import settings

        account_sid = settings.TWILIO_ACCOUNT_SID
    params = {"AccountSid": account_sid, "CallSid": "CA" + "c" * 32, "CallStatus": "ringing", "From": CALLER, "To": to}
    response = signed_post(client, "twilio-hooks:voice", params, account_sid=account_sid)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root.find("Say").text
    assert root.find("./Connect") is None
    assert not Call.objects.unscoped("test").exists()
    assert not StreamToken.objects.unscoped("test").exists()



def test_an_admission_rule_added_later_is_heard_by_the_caller(twilio, organization, client, monkeypatch):
    """Billing adds "over its plan" as one more rule of the list; its sentence is what the caller hears."""
    from telephony.services import inbound

    over_plan = "This business has used all its calling minutes. Please call again later."
    monkeypatch.setattr(inbound, "CALL_ADMISSION_RULES", [*inbound.CALL_ADMISSION_RULES, lambda org: over_plan])
    number = line(organization)
    params = {"AccountSid": number.account_sid, "CallSid": "CA" + "e" * 32, "CallStatus": "ringing",
              "From": CALLER, "To": number.number}  # fmt: skip
    response = signed_post(client, "twilio-hooks:voice", params, account_sid=number.account_sid)
    root = ET.fromstring(response.content)
    assert [child.tag for child in root] == ["Say", "Hangup"] and root.find("Say").text == over_plan
    assert not Call.objects.unscoped("test").exists()

def test_a_caller_beyond_the_plans_lines_hears_they_are_busy_and_no_call_opens(twilio, organization, client):
    from telephony.services.inbound import LINES_BUSY

    number = line(organization)
    for n in range(5):  # the starter plan's five lines, all in use
        Call.objects.create(organization=organization, direction=CallDirection.INBOUND, phone_number=number,
                            status="in-progress", twilio_sid=f"CA{n:032d}", from_number=CALLER,
                            to_number=number.number)  # fmt: skip
    params = {"AccountSid": number.account_sid, "CallSid": "CA" + "f" * 32, "CallStatus": "ringing",
              "From": CALLER, "To": number.number}  # fmt: skip
    response = signed_post(client, "twilio-hooks:voice", params, account_sid=number.account_sid)
    root = ET.fromstring(response.content)
    assert [child.tag for child in root] == ["Say", "Hangup"] and root.find("Say").text == LINES_BUSY
    assert Call.objects.for_org(organization).count() == 5
    assert not StreamToken.objects.unscoped("test").exists()
    Call.objects.for_org(organization).filter(twilio_sid=f"CA{0:032d}").update(status="completed")
    response = signed_post(client, "twilio-hooks:voice", params, account_sid=number.account_sid)
    assert ET.fromstring(response.content).find("./Connect/Stream") is not None


def test_a_forged_voice_request_is_refused(twilio, organization, client):
    number = line(organization)
    params = {"AccountSid": number.account_sid, "CallSid": "CA" + "d" * 32, "From": CALLER, "To": number.number}
    response = client.post("/hooks/twilio/voice/", params, headers={"X-Twilio-Signature": "Zm9yZ2Vk"})
    assert response.status_code == 403
    assert not Call.objects.unscoped("test").exists()


@pytest.mark.parametrize("account_sid", ["AC" + "d" * 31 + "\x00", "AC1", "ac" + "d" * 32 + "; --"])
def test_a_malformed_account_sid_is_an_invalid_signature_not_a_failed_lookup(twilio, organization, client,
                                                                              account_sid):  # fmt: skip
    # A lookup that fails answers 503 and counts no refusal; an AccountSid that is no Twilio SID is not looked up.
    number = line(organization)
    params = {"AccountSid": account_sid, "CallSid": "CA" + "d" * 32, "From": CALLER, "To": number.number}
    response = client.post("/hooks/twilio/voice/", params, headers={"X-Twilio-Signature": "Zm9yZ2Vk"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    "field, value, outbound",
    [
        ("CallSid", "CA" + "f" * 60, False),  # the column holds 34 characters
        ("CallSid", "CA" + "F" * 32, False),
        ("CallSid", "PN" + "f" * 32, False),
        ("CallSid", "CA" + "f" * 60, True),
        ("ParentCallSid", "CA" + "f" * 33, False),
        ("From", CALLER + "\x00", False),
        ("To\x00", "+14155550123", False),
    ],
)
def test_a_signed_voice_request_with_a_malformed_value_is_a_400_that_writes_nothing(
    field, value, outbound, twilio, organization, client
):
    number = line(organization)
    query = None
    if outbound:
        call = Call.objects.create(
            organization=organization, direction=CallDirection.OUTBOUND, agent=number.agent, phone_number=number,
            from_number=number.number, to_number=CALLER, account_sid=number.account_sid, status="ringing",
        )  # fmt: skip
        query = {"call": call.id}
    params = {"AccountSid": number.account_sid, "CallSid": "CA" + "f" * 32, "CallStatus": "ringing",
              "From": CALLER, "To": number.number, field: value}  # fmt: skip
    before = written_rows()
    with signature_refusals() as refusals:
        response = signed_post(client, "twilio-hooks:voice", params, account_sid=number.account_sid, query=query)
    assert response.status_code == 400, response.content
    assert field.rstrip("\x00") in response.content.decode()
    assert written_rows() == before and refusals == []  # the provider's bug, not a forged signature
    if outbound:
        call.refresh_from_db()
        assert call.twilio_sid is None


def test_an_answered_outbound_call_gets_the_same_stream(twilio, organization, client):
    number = line(organization)
    call = Call.objects.create(
        organization=organization, direction=CallDirection.OUTBOUND, agent=number.agent, phone_number=number,
        from_number=number.number, to_number=CALLER, account_sid=number.account_sid, status="ringing",
    )  # fmt: skip
    params = {"AccountSid": number.account_sid, "CallSid": "CA" + "e" * 32, "CallStatus": "in-progress",
              "From": number.number, "To": CALLER, "Direction": "outbound-api"}  # fmt: skip
    response = signed_post(
        client, "twilio-hooks:voice", params, account_sid=number.account_sid, query={"call": call.id}
    )
    assert response.status_code == 200
    _root, stream, params_ = _stream(response.content.decode())
    assert stream.get("url") == f"wss://app.jagcall.test/ws/telephony/stream/{call.id}/" and params_["token"]
    call.refresh_from_db()
    assert call.twilio_sid == "CA" + "e" * 32


def test_the_stream_url_is_ws_only_in_development(settings, organization):
    from django.core.exceptions import ImproperlyConfigured

    from telephony.services.inbound import stream_url

    call = Call(organization=organization, direction=CallDirection.INBOUND)
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    assert stream_url(call).startswith("ws://127.0.0.1:8000/ws/telephony/stream/")
    settings.EMBEDDED_SERVICES_ALLOWED = False
    with pytest.raises(ImproperlyConfigured):
        stream_url(call)
    settings.PUBLIC_BASE_URL = "https://app.example.com"
    assert stream_url(call).startswith("wss://app.example.com/ws/telephony/stream/")


def test_an_inbound_call_is_audited_once_with_twilio_as_the_actor(twilio, organization):
    from compliance.models import AuditEvent

    number = line(organization)
    answer = twilio.inbound_call(number.number, CALLER)
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
    events = AuditEvent.objects.for_org(organization).filter(action="call.received")
    assert events.count() == 1
    event = events.get()
    assert (event.resource_id, event.actor_key) == (str(call.id), "webhook:twilio")
    assert CALLER not in str(event.metadata)


def test_the_recording_started_by_the_answer_reaches_the_recording_hook(twilio, organization):
    from telephony.models import CallRecording

    number = line(organization, record=True)
    answer = twilio.inbound_call(number.number, CALLER)
    posted = twilio.complete_call(answer.call_sid, duration=25, record=None)  # as the call's TwiML asked
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
    recording_callbacks = [c for c in posted if c.kind == "recording"]
    assert len(recording_callbacks) == 1 and recording_callbacks[0].status in (200, 204)
    assert recording_callbacks[0].params["RecordingSource"] == "StartCallRecordingTwiML"
    recording = CallRecording.objects.for_org(organization).get(call=call)
    assert recording.duration_seconds == 25
    call.refresh_from_db()
    assert (call.status, call.duration_seconds) == ("completed", 25)
