"""/api/v1/calls: place a call (gate, idempotency, Twilio stand-in), list with cursor and filters, one call."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.api_keys.services import api_key_create
from accounts.principals import Principal
from compliance.models import AuditEvent
from compliance.services import do_not_call_add
from telephony.models import (
    Call,
    CallAnalysis,
    CallDirection,
    CallEvent,
    CallRecording,
    CallStatus,
    StepStatus,
    Transcript,
)
from telephony.tests.outbound_support import (
    call_creations,
    destination_closed_now,
    destination_open_now,
    make_agent,
    make_number,
    twilio_line,
)

pytestmark = pytest.mark.django_db

OPERATOR = Principal.system("operator")


def api_for(organization, scopes=("calls:read", "calls:write")) -> APIClient:
    _key, raw = api_key_create(
        organization=organization, actor=OPERATOR, service_role="owner", name="CRM", scopes=list(scopes)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def line(twilio_standin, organization, settings):
    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"
    return twilio_line(organization, "+14155550100")


@pytest.fixture
def agent(organization):
    return make_agent(organization, name="Reminders")


@pytest.fixture
def api(organization):
    return api_for(organization)


def _body(agent, line, to=None, **extra):
    return {"agent_id": str(agent.id), "to": to or destination_open_now(), "from_number_id": str(line.id), **extra}


def _nothing_written(organization, standin, before_requests):
    assert not Call.objects.for_org(organization).exists()
    assert not CallEvent.objects.for_org(organization).exists()
    assert not AuditEvent.objects.for_org(organization).filter(action="call.placed").exists()
    assert call_creations(standin) == [] and len(standin.requests) == before_requests


# --- placing ------------------------------------------------------------------------------


def test_post_places_a_call(api, organization, agent, line, twilio_standin):
    to = destination_open_now()
    response = api.post("/api/v1/calls", _body(agent, line, to, variables={"first_name": "Ada"}), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    call = Call.objects.for_org(organization).get()
    assert body["id"] == str(call.id) and response["Location"] == f"/api/v1/calls/{call.id}"
    assert body["direction"] == "outbound" and body["status"] == "queued"
    assert body["to_number"] == to and body["from_number"] == "+14155550100"  # in full for calls:read
    assert body["agent"] == {"id": str(agent.id), "name": "Reminders"}
    assert body["variables"] == {"first_name": "Ada"} and body["placed_by"].startswith("jc_live_")
    assert [e["kind"] for e in body["events"]] == ["queued"]
    assert body["recording"] is None and body["transcript"] is None and body["analysis"] is None
    (request,) = call_creations(twilio_standin)
    assert request.form["To"] == to and request.form["From"] == "+14155550100"
    assert request.form["Url"] == f"https://app.jagcall.test/hooks/twilio/voice/?call={call.id}"
    assert request.form["StatusCallback"] == f"https://app.jagcall.test/hooks/twilio/status/?call={call.id}"
    assert request.form["Record"] == "true"
    assert body["twilio_sid"] == call.twilio_sid and call.twilio_sid in twilio_standin.calls
    event = AuditEvent.objects.for_org(organization).get(action="call.placed")
    assert event.actor_type == "api_key" and event.resource_id == str(call.id) and to not in str(event.metadata)


def test_the_caller_number_may_be_given_by_its_e164(api, organization, agent, line, twilio_standin):
    body = {"agent_id": str(agent.id), "to": destination_open_now(), "from": "+14155550100"}
    assert api.post("/api/v1/calls", body, format="json").status_code == 201
    assert call_creations(twilio_standin)[0].form["From"] == "+14155550100"


def test_idempotent_post_places_one_call(api, organization, agent, line, twilio_standin):
    body = _body(agent, line)
    first = api.post("/api/v1/calls", body, format="json", HTTP_IDEMPOTENCY_KEY="call-ada-1")
    again = api.post("/api/v1/calls", body, format="json", HTTP_IDEMPOTENCY_KEY="call-ada-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert Call.objects.for_org(organization).count() == 1 and len(call_creations(twilio_standin)) == 1
    other = api.post(
        "/api/v1/calls", {**body, "variables": {"x": "y"}}, format="json", HTTP_IDEMPOTENCY_KEY="call-ada-1"
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(call_creations(twilio_standin)) == 1


# --- refusals: each rule, nothing written, nothing sent --------------------------------------


def _refused(api, body, code, field="to", status=422):
    response = api.post("/api/v1/calls", body, format="json")
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    if field:
        assert field in error["details"], error
    return error


def test_invalid_number_is_refused(api, organization, agent, line, twilio_standin):
    before = len(twilio_standin.requests)
    error = _refused(api, _body(agent, line, "0415 555 0100"), "invalid_number")
    assert "+14155550100" in error["message"]
    _refused(api, _body(agent, line, "+1 212 555 0123"), "invalid_number")
    _nothing_written(organization, twilio_standin, before)


def test_do_not_call_is_refused(api, organization, owner, agent, line, twilio_standin):
    to = destination_open_now()
    do_not_call_add(organization=organization, actor=owner, number=to)
    before = len(twilio_standin.requests)
    error = _refused(api, _body(agent, line, to), "do_not_call")
    assert "do-not-call list" in error["message"]
    _nothing_written(organization, twilio_standin, before)


def test_calling_hours_are_refused(api, organization, agent, line, twilio_standin):
    before = len(twilio_standin.requests)
    error = _refused(api, _body(agent, line, destination_closed_now()), "calling_hours")
    assert "Calling opens at" in error["message"]
    _nothing_written(organization, twilio_standin, before)


def test_a_caller_number_not_ours_is_refused(api, organization, other_organization, agent, line, twilio_standin):
    theirs = make_number(other_organization, "+14155550111")
    before = len(twilio_standin.requests)
    _refused(api, {**_body(agent, line), "from_number_id": str(theirs.id)}, "caller_number", field="from")
    body = {"agent_id": str(agent.id), "to": destination_open_now(), "from": "+14155550111"}
    _refused(api, body, "caller_number", field="from")
    _nothing_written(organization, twilio_standin, before)


def test_bad_bodies_are_400s_that_name_the_field(api, organization, other_organization, agent, line, twilio_standin):
    before = len(twilio_standin.requests)
    theirs = make_agent(other_organization)
    for body, field in [
        ({**_body(agent, line), "agent_id": str(theirs.id)}, "agent_id"),
        ({**_body(agent, line), "agent_id": "nope"}, "agent_id"),
        ({**_body(agent, line), "from": "+14155550100"}, "from"),  # both ways of naming the caller
        ({"agent_id": str(agent.id), "to": destination_open_now()}, "from"),  # neither
        ({**_body(agent, line), "variables": {"first name": "Ada"}}, "variables"),
        ({**_body(agent, line), "variables": {"note": "x" * 501}}, "variables"),
        ({**_body(agent, line), "variables": ["first_name"]}, "variables"),
        ({k: v for k, v in _body(agent, line).items() if k != "to"}, "to"),
    ]:
        response = api.post("/api/v1/calls", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json()["error"]["details"], (body, response.json())
    _nothing_written(organization, twilio_standin, before)


def test_twilio_refusing_is_a_502_and_the_call_is_listed_failed(api, organization, agent, line, twilio_standin):
    twilio_standin.fail_next(400, "Account not allowed to call this destination", path_prefix="/2010-04-01/Accounts")
    response = api.post("/api/v1/calls", _body(agent, line), format="json")
    assert response.status_code == 502 and response.json()["error"]["code"] == "provider_error"
    listed = api.get("/api/v1/calls").json()["results"]
    assert [c["status"] for c in listed] == ["failed"] and listed[0]["error_message"]


# --- scopes and tenancy ----------------------------------------------------------------------


def test_scopes(organization, agent, line, twilio_standin):
    reader = api_for(organization, ["calls:read"])
    assert reader.get("/api/v1/calls").status_code == 200
    refused = reader.post("/api/v1/calls", _body(agent, line), format="json")
    assert refused.status_code == 403 and "calls:write" in refused.json()["error"]["message"]
    writer = api_for(organization, ["calls:write"])
    assert writer.get("/api/v1/calls").status_code == 403
    assert api_for(organization, ["agents:read"]).get("/api/v1/calls").status_code == 403
    assert call_creations(twilio_standin) == []


def test_another_organizations_call_is_a_404(api, organization, other_organization):
    theirs = _call(other_organization)
    response = api.get(f"/api/v1/calls/{theirs.id}")
    assert response.status_code == 404
    assert api.get("/api/v1/calls").json()["results"] == []


def test_another_organizations_agent_or_number_cannot_be_used(
    api, organization, other_organization, agent, line, twilio_standin
):
    their_agent, their_line = make_agent(other_organization), make_number(other_organization, "+14155550122")
    assert (
        api.post("/api/v1/calls", {**_body(agent, line), "agent_id": str(their_agent.id)}, format="json").status_code
        == 400
    )
    response = api.post("/api/v1/calls", {**_body(agent, line), "from_number_id": str(their_line.id)}, format="json")
    assert response.status_code == 422 and response.json()["error"]["code"] == "caller_number"
    assert not Call.objects.for_org(other_organization).exists() and call_creations(twilio_standin) == []


# --- listing ---------------------------------------------------------------------------------


def _call(
    organization,
    *,
    agent=None,
    direction=CallDirection.OUTBOUND,
    status=CallStatus.COMPLETED,
    counterpart="+12125550123",
    created_at=None,
):
    ours = "+14155550100"
    inbound = direction == CallDirection.INBOUND
    return Call.objects.create(
        organization=organization,
        direction=direction,
        agent=agent,
        status=status,
        from_number=counterpart if inbound else ours,
        to_number=ours if inbound else counterpart,
        created_at=created_at or timezone.now(),
    )


def test_list_is_cursor_paginated_newest_first(api, organization):
    start = timezone.now() - dt.timedelta(hours=1)
    calls = [_call(organization, created_at=start + dt.timedelta(minutes=i)) for i in range(7)]
    seen, url = [], "/api/v1/calls?limit=3"
    while url:
        page = api.get(url).json()
        assert len(page["results"]) <= 3
        seen += [c["id"] for c in page["results"]]
        url = page["next"]
    assert seen == [str(c.id) for c in reversed(calls)]


def test_list_filters(api, organization, agent):
    now = timezone.now()
    other_agent = make_agent(organization)
    a = _call(
        organization,
        agent=agent,
        status=CallStatus.COMPLETED,
        counterpart="+12125550123",
        created_at=now - dt.timedelta(days=3),
    )
    b = _call(
        organization,
        agent=other_agent,
        status=CallStatus.FAILED,
        counterpart="+12125550199",
        created_at=now - dt.timedelta(days=2),
    )
    c = _call(
        organization,
        agent=agent,
        direction=CallDirection.INBOUND,
        counterpart="+12125550123",
        created_at=now - dt.timedelta(days=1),
    )

    def ids(query):
        response = api.get(f"/api/v1/calls?{query}")
        assert response.status_code == 200, response.content
        return {r["id"] for r in response.json()["results"]}

    assert ids("status=failed") == {str(b.id)}
    assert ids("direction=inbound") == {str(c.id)}
    assert ids(f"agent_id={agent.id}") == {str(a.id), str(c.id)}
    # The other party, whichever direction: the callee of an outbound call, the caller of an inbound one.
    assert ids("number=%2B12125550123") == {str(a.id), str(c.id)}
    after = (now - dt.timedelta(days=2, hours=1)).isoformat().replace("+00:00", "Z")
    before = (now - dt.timedelta(hours=12)).isoformat().replace("+00:00", "Z")
    assert ids(f"created_after={after}") == {str(b.id), str(c.id)}
    assert ids(f"created_after={after}&created_before={before}") == {str(b.id), str(c.id)}
    assert ids(f"created_before={after}") == {str(a.id)}
    assert ids(f"status=completed&direction=outbound&agent_id={agent.id}") == {str(a.id)}


def test_bad_filters_are_400s(api, organization):
    for query, field in [
        ("status=ringing-ish", "status"),
        ("direction=sideways", "direction"),
        ("agent_id=7", "agent_id"),
        ("number=12345", "number"),
        ("created_after=yesterday", "created_after"),
    ]:
        response = api.get(f"/api/v1/calls?{query}")
        assert response.status_code == 400 and field in response.json()["error"]["details"], query


# --- one call: timeline and what it left -------------------------------------------------------


def test_detail_shows_the_timeline_and_post_call_state(api, organization, agent):
    call = _call(organization, agent=agent)
    for kind in ("queued", "ringing", "in-progress", "completed"):
        CallEvent.objects.create(organization=organization, call=call, kind=kind)
    CallRecording.objects.create(
        organization=organization, call=call, twilio_sid="RE" + "0" * 32, status=StepStatus.DONE, duration_seconds=42
    )
    Transcript.objects.create(
        organization=organization,
        call=call,
        status=StepStatus.RUNNING,
        utterances=[{"speaker": 0, "start": 0.0, "end": 1.0, "text": "Not yet shown"}],
    )
    CallAnalysis.objects.create(
        organization=organization, call=call, status=StepStatus.FAILED, failure_reason="LLM down"
    )
    body = api.get(f"/api/v1/calls/{call.id}").json()
    assert [e["kind"] for e in body["events"]] == ["queued", "ringing", "in-progress", "completed"]
    assert body["recording"]["status"] == "done" and body["recording"]["duration_seconds"] == 42
    assert body["transcript"]["status"] == "running" and body["transcript"]["utterances"] is None
    assert body["analysis"] == {**body["analysis"], "status": "failed", "failure_reason": "LLM down", "summary": None}

    Transcript.objects.for_org(organization).filter(call=call).delete()
    Transcript.objects.create(
        organization=organization,
        call=call,
        status=StepStatus.DONE,
        language="en",
        utterances=[
            {"speaker": 0, "start": 0.0, "end": 1.2, "text": "Hello, this is Reminders."},
            {"speaker": 1, "start": 1.4, "end": 2.0, "text": "Hi!"},
        ],
    )
    CallAnalysis.objects.for_org(organization).filter(call=call).delete()
    CallAnalysis.objects.create(
        organization=organization,
        call=call,
        status=StepStatus.DONE,
        summary="Booked Tuesday.",
        fields={"appointment_requested": True},
    )
    body = api.get(f"/api/v1/calls/{call.id}").json()
    assert [u["text"] for u in body["transcript"]["utterances"]] == ["Hello, this is Reminders.", "Hi!"]
    assert body["analysis"]["summary"] == "Booked Tuesday." and body["analysis"]["fields"] == {
        "appointment_requested": True
    }
