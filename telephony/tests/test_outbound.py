"""Placing an outbound call through the real twilio SDK against the Twilio stand-in."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection

from compliance.models import AuditEvent
from compliance.services import do_not_call_add
from telephony.models import Call, CallEvent, CallStatus
from telephony.services.dialing import DialRefused
from telephony.services.outbound import CallNotPlaced, clean_variables, place_call
from telephony.tests.outbound_support import call_creations, make_agent, twilio_line
from jagcall.kernel.errors import ApplicationError

pytestmark = pytest.mark.django_db

TO = "+12125550123"  # New York
NOON_IN_NEW_YORK = dt.datetime(2027, 1, 15, 17, 0, tzinfo=dt.UTC)


@pytest.fixture
def line(twilio_standin, organization, settings):
    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"
    return twilio_line(organization, "+14155550100")


@pytest.fixture
def agent(organization):
    return make_agent(organization, name="Reminders", record_calls=True, max_call_seconds=300)


def _calls(organization):
    return list(Call.objects.for_org(organization))


def test_place_a_call(organization, owner, agent, line, twilio_standin):
    call = place_call(
        organization=organization,
        actor=owner,
        agent=agent,
        to_number=TO,
        from_number=line,
        variables={"first_name": "Ada", "appointment": "Tuesday 10:00"},
        now=NOON_IN_NEW_YORK,
    )
    call.refresh_from_db()
    assert call.direction == "outbound" and call.status == CallStatus.QUEUED
    assert call.to_number == TO and call.from_number == line.number and call.phone_number == line
    assert call.agent == agent and call.placed_by == "owner@acme.test"
    assert call.variables == {"first_name": "Ada", "appointment": "Tuesday 10:00"}
    assert call.twilio_sid and call.twilio_sid in twilio_standin.calls
    assert call.account_sid == line.account_sid

    (request,) = call_creations(twilio_standin)
    assert request.path == f"/2010-04-01/Accounts/{line.account_sid}/Calls.json"
    form = request.form
    assert form["To"] == TO and form["From"] == "+14155550100"
    assert form["Url"] == f"https://app.jagcall.test/hooks/twilio/voice/?call={call.id}"
    assert form["StatusCallback"] == f"https://app.jagcall.test/hooks/twilio/status/?call={call.id}"
    assert sorted(request.form_lists["StatusCallbackEvent"]) == ["answered", "completed", "initiated", "ringing"]
    assert form["Record"] == "true"
    assert form["RecordingStatusCallback"] == f"https://app.jagcall.test/hooks/twilio/recording/?call={call.id}"
    assert form["TimeLimit"] == "300"
    assert form["MachineDetection"] == "Enable"  # the agent hangs up on a machine: detection says who answered
    assert "first_name" not in str(form) and "Ada" not in str(form)  # variables stay with us

    assert [e.kind for e in CallEvent.objects.for_org(organization).filter(call=call)] == ["queued"]
    event = AuditEvent.objects.for_org(organization).get(action="call.placed")
    assert event.outcome == "success" and event.resource_id == str(call.id) and event.actor_label == "owner@acme.test"
    assert TO not in str(event.metadata)


def test_an_agent_that_does_not_record_asks_for_no_recording(organization, owner, line, twilio_standin):
    agent = make_agent(organization, record_calls=False)
    place_call(
        organization=organization, actor=owner, agent=agent, to_number=TO, from_number=line, now=NOON_IN_NEW_YORK
    )
    form = call_creations(twilio_standin)[0].form
    assert form["Record"] == "false" and "RecordingStatusCallback" not in form


def test_the_numbers_are_not_stored_in_clear(organization, owner, agent, line):
    call = place_call(
        organization=organization,
        actor=owner,
        agent=agent,
        to_number=TO,
        from_number=line,
        variables={"first_name": "Ada"},
        now=NOON_IN_NEW_YORK,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_number::text, from_number::text, to_number_index, variables::text"
            " FROM telephony_call WHERE id = %s",
            [call.id],
        )
        row = cursor.fetchone()
    for column in row:
        assert "2125550123" not in column and "Ada" not in column
    # Found by blind index, without decrypting.
    field = Call._meta.get_field("to_number_index")
    found = Call.objects.for_org(organization).filter(
        to_number_index__in=field.candidates(TO, organization_id=organization.id)
    )
    assert list(found) == [call]


@pytest.mark.parametrize(
    "to,now,code",
    [
        ("2125550123", NOON_IN_NEW_YORK, "invalid_number"),
        (TO, dt.datetime(2027, 1, 15, 12, 59, 59, tzinfo=dt.UTC), "calling_hours"),  # 07:59:59 in New York
        (TO, dt.datetime(2027, 1, 16, 2, 0, tzinfo=dt.UTC), "calling_hours"),  # 21:00 in New York
    ],
)
def test_a_refusal_writes_nothing_and_never_reaches_twilio(
    organization, owner, agent, line, twilio_standin, to, now, code
):
    before = len(twilio_standin.requests)
    with pytest.raises(DialRefused) as refused:
        place_call(organization=organization, actor=owner, agent=agent, to_number=to, from_number=line, now=now)
    assert refused.value.code == code
    assert _calls(organization) == [] and not CallEvent.objects.for_org(organization).exists()
    assert not AuditEvent.objects.for_org(organization).filter(action="call.placed").exists()
    assert len(twilio_standin.requests) == before


def test_do_not_call_is_refused_before_twilio(organization, owner, agent, line, twilio_standin):
    do_not_call_add(organization=organization, actor=owner, number=TO)
    before = len(twilio_standin.requests)
    with pytest.raises(DialRefused) as refused:
        place_call(
            organization=organization, actor=owner, agent=agent, to_number=TO, from_number=line, now=NOON_IN_NEW_YORK
        )
    assert refused.value.code == "do_not_call"
    assert _calls(organization) == [] and len(twilio_standin.requests) == before


def test_a_released_caller_number_is_refused(organization, owner, agent, line, twilio_standin):
    line.released_at = NOON_IN_NEW_YORK
    line.save()
    with pytest.raises(DialRefused) as refused:
        place_call(
            organization=organization, actor=owner, agent=agent, to_number=TO, from_number=line, now=NOON_IN_NEW_YORK
        )
    assert refused.value.code == "caller_number" and refused.value.field == "from"
    assert _calls(organization) == []


def test_another_organizations_agent_is_refused(organization, other_organization, owner, line):
    theirs = make_agent(other_organization)
    with pytest.raises(ApplicationError) as refused:
        place_call(
            organization=organization, actor=owner, agent=theirs, to_number=TO, from_number=line, now=NOON_IN_NEW_YORK
        )
    assert refused.value.field == "agent"
    assert _calls(organization) == []


def test_twilio_refusing_marks_the_call_failed_with_the_reason(organization, owner, agent, line, twilio_standin):
    twilio_standin.fail_next(
        400, "Permission to call +12125550123 has not been enabled", path_prefix="/2010-04-01/Accounts"
    )
    with pytest.raises(CallNotPlaced) as failed:
        place_call(
            organization=organization, actor=owner, agent=agent, to_number=TO, from_number=line, now=NOON_IN_NEW_YORK
        )
    error = failed.value
    assert error.status == 502 and error.code == "provider_error" and "listed as failed" in error.message
    (call,) = _calls(organization)
    assert call == error.call and call.status == CallStatus.FAILED and call.twilio_sid is None
    assert call.error_message and call.ended_at is not None
    assert [e.kind for e in CallEvent.objects.for_org(organization).filter(call=call)] == ["queued", "failed"]
    event = AuditEvent.objects.for_org(organization).get(action="call.placed")
    assert event.outcome == "failed" and event.metadata["reason"] == call.error_message


def test_twilio_unavailable_is_a_retryable_failure(organization, owner, agent, line, twilio_standin):
    twilio_standin.fail_next(503, "Service unavailable", path_prefix="/2010-04-01/Accounts", times=5)
    with pytest.raises(CallNotPlaced) as failed:
        place_call(
            organization=organization, actor=owner, agent=agent, to_number=TO, from_number=line, now=NOON_IN_NEW_YORK
        )
    assert failed.value.status == 503 and failed.value.retryable
    assert _calls(organization)[0].status == CallStatus.FAILED


def test_a_call_placed_is_driven_by_the_stand_ins_callbacks(organization, owner, agent, line, twilio_standin, client):
    """The stand-in posts signed callbacks to the URLs we gave it; here we only check it was given ours."""
    call = place_call(
        organization=organization, actor=owner, agent=agent, to_number=TO, from_number=line, now=NOON_IN_NEW_YORK
    )
    remote = twilio_standin.calls[call.twilio_sid]
    assert parse_qs(urlsplit(remote.params["Url"]).query) == {"call": [str(call.id)]}
    assert remote.account_sid == line.account_sid


# --- variables --------------------------------------------------------------------------


def test_variables_are_validated():
    assert clean_variables(None) == {} and clean_variables({"first_name": "Ada"}) == {"first_name": "Ada"}
    for bad in (
        ["first_name"],
        {"first name": "Ada"},
        {"1st": "Ada"},
        {"prénom": "Ada"},
        {"n" * 65: "x"},
        {"first_name": 3},
        {"first_name": None},
        {"note": "x" * 501},
        {f"v{i}": "x" for i in range(21)},
    ):
        with pytest.raises(ApplicationError) as refused:
            clean_variables(bad)
        assert refused.value.field == "variables", bad
    assert clean_variables({"note": "x" * 500, **{f"v{i}": "" for i in range(19)}})


def test_bad_variables_write_nothing(organization, owner, agent, line, twilio_standin):
    with pytest.raises(ApplicationError):
        place_call(
            organization=organization,
            actor=owner,
            agent=agent,
            to_number=TO,
            from_number=line,
            variables={"bad name": "x"},
            now=NOON_IN_NEW_YORK,
        )
    assert _calls(organization) == [] and call_creations(twilio_standin) == []
