"""A signed voice request (or status callback) whose CallSid is already another call's.

Another organization's call: 409 with a plain line, nothing written (the dedupe record included), and
neither that call nor its organization named. The same organization's call: Twilio's retry of that call,
which gets its stream.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from telephony.models import Call, CallDirection
from telephony.tests.calls_support import line, signature_refusals, signed_post, written_rows

pytestmark = pytest.mark.django_db

CALLER = "+14155550100"


@pytest.fixture
def twilio(twilio_standin, settings):
    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"
    return twilio_standin


def _voice(number, sid: str) -> dict:
    return {"AccountSid": number.account_sid, "CallSid": sid, "CallStatus": "ringing", "From": CALLER,
            "To": number.number, "Direction": "inbound"}  # fmt: skip


def test_a_call_sid_of_another_organizations_call_is_a_409_that_writes_nothing(twilio, organization,
                                                                             other_organization, client):  # fmt: skip
    number = line(organization)
    theirs = line(other_organization, "+14155550124")
    sid = "CA" + "3" * 32
    signed_post(client, "twilio-hooks:voice", _voice(theirs, sid), account_sid=theirs.account_sid)
    their_call = Call.objects.for_org(other_organization).get(twilio_sid=sid)

    before = written_rows()
    with signature_refusals() as refusals:
        response = signed_post(client, "twilio-hooks:voice", _voice(number, sid), account_sid=number.account_sid,
                               headers={"I-Twilio-Idempotency-Token": "collision"})  # fmt: skip
    assert response.status_code == 409, response.content
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "This CallSid belongs to another call; nothing was recorded."
    assert other_organization.name not in response.content.decode()
    assert written_rows() == before and refusals == []  # nothing kept, the dedupe record included
    assert Call.objects.for_org(organization).count() == 0
    their_call.refresh_from_db()
    assert their_call.organization_id == other_organization.pk and their_call.phone_number_id == theirs.pk


def test_a_call_sid_of_the_organizations_own_call_is_a_retry_of_that_call(twilio, organization, client):
    number = line(organization)
    sid = "CA" + "4" * 32
    first = signed_post(client, "twilio-hooks:voice", _voice(number, sid), account_sid=number.account_sid,
                        headers={"I-Twilio-Idempotency-Token": "first"})  # fmt: skip
    again = signed_post(client, "twilio-hooks:voice", _voice(number, sid), account_sid=number.account_sid,
                        headers={"I-Twilio-Idempotency-Token": "another"})  # fmt: skip
    assert first.status_code == again.status_code == 200
    call = Call.objects.for_org(organization).get(twilio_sid=sid)
    url = ET.fromstring(again.content).find("./Connect/Stream").get("url")
    assert url.endswith(f"/ws/telephony/stream/{call.id}/")


def test_an_answered_outbound_call_whose_call_sid_is_another_calls_is_a_409(twilio, organization,
                                                                          other_organization, client):  # fmt: skip
    number = line(organization)
    theirs = line(other_organization, "+14155550124")
    sid = "CA" + "5" * 32
    signed_post(client, "twilio-hooks:voice", _voice(theirs, sid), account_sid=theirs.account_sid)
    call = Call.objects.create(
        organization=organization, direction=CallDirection.OUTBOUND, agent=number.agent, phone_number=number,
        from_number=number.number, to_number=CALLER, account_sid=number.account_sid, status="ringing",
    )  # fmt: skip
    params = {"AccountSid": number.account_sid, "CallSid": sid, "CallStatus": "in-progress",
              "From": number.number, "To": CALLER, "Direction": "outbound-api"}  # fmt: skip
    before = written_rows()
    response = signed_post(client, "twilio-hooks:voice", params, account_sid=number.account_sid,
                           query={"call": call.id})  # fmt: skip
    assert response.status_code == 409, response.content
    assert written_rows() == before
    call.refresh_from_db()
    assert call.twilio_sid is None


def test_a_status_callback_giving_a_call_another_calls_call_sid_is_a_409(twilio, organization, other_organization,
                                                                         client):  # fmt: skip
    number = line(organization)
    theirs = line(other_organization, "+14155550124")
    sid = "CA" + "6" * 32
    signed_post(client, "twilio-hooks:voice", _voice(theirs, sid), account_sid=theirs.account_sid)
    call = Call.objects.create(
        organization=organization, direction=CallDirection.OUTBOUND, agent=number.agent, phone_number=number,
        from_number=number.number, to_number=CALLER, account_sid=number.account_sid, status="queued",
    )  # fmt: skip
    params = {"AccountSid": number.account_sid, "CallSid": sid, "CallStatus": "ringing", "SequenceNumber": "0"}
    before = written_rows()
    response = signed_post(client, "twilio-hooks:status", params, account_sid=number.account_sid,
                           query={"call": call.id})  # fmt: skip
    assert response.status_code == 409, response.content
    assert written_rows() == before
    call.refresh_from_db()
    assert (call.twilio_sid, call.status) == (None, "queued")
