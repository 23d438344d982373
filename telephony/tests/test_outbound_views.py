"""The "Place a call" page: the gate's refusals at their fields, nothing written on refusal, success to the call."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from compliance.models import AuditEvent
from compliance.services import do_not_call_add
from telephony.models import Call
from telephony.tests.outbound_support import (
    call_creations,
    destination_closed_now,
    destination_open_now,
    make_agent,
    make_number,
    twilio_line,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def line(twilio_standin, organization, settings):
    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"
    return twilio_line(organization, "+14155550100", friendly_name="Front desk")


@pytest.fixture
def agent(organization):
    return make_agent(organization, name="Reminders")


@pytest.fixture
def url(organization):
    return reverse("telephony:call-place", kwargs={"org_slug": organization.slug})


def _data(agent, line, to=None, **extra):
    data = {
        "agent": str(agent.id),
        "from_number": str(line.id),
        "to": to or destination_open_now(),
        "variable_name": ["first_name", ""],
        "variable_value": ["Ada", ""],
    }
    data.update(extra)
    return data


def _error_at(html: str, field: str) -> str:
    found = re.search(rf'<small class="field-error" id="id_{field}_error">(.*?)</small>', html, re.S)
    assert found, f"no error at {field}"
    return found.group(1)


def _nothing_written(organization, standin):
    assert not Call.objects.for_org(organization).exists()
    assert call_creations(standin) == []
    assert not AuditEvent.objects.for_org(organization).filter(action="call.placed").exists()


def test_the_page_says_what_is_missing(client, organization, member, url):
    client.force_login(member)
    page = client.get(url).content.decode()
    assert "Create an agent" in page and "Get a number" in page and "Place the call" not in page


def test_a_member_places_a_call(client, organization, member, agent, line, url, twilio_standin):
    client.force_login(member)
    page = client.get(url).content.decode()
    assert "Reminders" in page and "+14155550100 Front desk" in page and "Place the call" in page
    to = destination_open_now()
    response = client.post(url, _data(agent, line, to))
    call = Call.objects.for_org(organization).get()
    assert response.status_code == 302
    assert response["Location"] == f"/o/{organization.slug}/calls/{call.id}/"
    assert call.to_number == to and call.variables == {"first_name": "Ada"} and call.placed_by == "member@acme.test"
    (request,) = call_creations(twilio_standin)
    assert request.form["To"] == to and request.form["From"] == "+14155550100"
    event = AuditEvent.objects.for_org(organization).get(action="call.placed")
    assert event.actor_label == "member@acme.test" and event.outcome == "success"


@pytest.mark.parametrize(
    "to,expected",
    [
        ("4155550100", "international format"),
        ("+1 415 555 0100", "without spaces or punctuation: +14155550100"),
    ],
)
def test_an_invalid_destination_is_shown_at_its_field(
    client, organization, member, agent, line, url, twilio_standin, to, expected
):
    client.force_login(member)
    response = client.post(url, _data(agent, line, to))
    assert response.status_code == 422
    assert expected in _error_at(response.content.decode(), "to")
    _nothing_written(organization, twilio_standin)


def test_do_not_call_is_shown_at_the_destination(client, organization, member, agent, line, url, twilio_standin):
    to = destination_open_now()
    do_not_call_add(organization=organization, actor=member, number=to)
    client.force_login(member)
    response = client.post(url, _data(agent, line, to))
    assert response.status_code == 422
    assert "do-not-call list" in _error_at(response.content.decode(), "to")
    _nothing_written(organization, twilio_standin)


def test_calling_hours_are_shown_at_the_destination(client, organization, member, agent, line, url, twilio_standin):
    client.force_login(member)
    response = client.post(url, _data(agent, line, destination_closed_now()))
    assert response.status_code == 422
    error = _error_at(response.content.decode(), "to")
    assert "08:00-21:00" in error and "Calling opens at" in error
    _nothing_written(organization, twilio_standin)


def test_another_organizations_agent_or_number_is_not_a_choice(
    client, organization, other_organization, member, agent, line, url, twilio_standin
):
    client.force_login(member)
    theirs = make_number(other_organization, "+14155550111")
    response = client.post(url, _data(agent, line, from_number=str(theirs.id)))
    assert response.status_code == 400 and _error_at(response.content.decode(), "from_number")
    response = client.post(url, {**_data(agent, line), "agent": str(make_agent(other_organization).id)})
    assert response.status_code == 400 and _error_at(response.content.decode(), "agent")
    released = make_number(organization, "+14155550122")
    released.released_at = released.created_at
    released.save()
    response = client.post(url, _data(agent, line, from_number=str(released.id)))
    assert response.status_code == 400 and _error_at(response.content.decode(), "from_number")
    _nothing_written(organization, twilio_standin)


def test_bad_variables_are_explained_and_kept(client, organization, member, agent, line, url, twilio_standin):
    client.force_login(member)
    response = client.post(url, _data(agent, line, variable_name=["first name"], variable_value=["Ada"]))
    page = response.content.decode()
    assert response.status_code == 400 and "letters, digits and underscores" in page
    assert 'value="first name"' in page and 'value="Ada"' in page  # what was typed stays
    response = client.post(url, _data(agent, line, variable_name=[""], variable_value=["Ada"]))
    assert response.status_code == 400 and "has no name" in response.content.decode()
    _nothing_written(organization, twilio_standin)


def test_twilio_refusing_shows_the_reason_and_the_failed_call(
    client, organization, member, agent, line, url, twilio_standin
):
    twilio_standin.fail_next(400, "Account not allowed to call this destination", path_prefix="/2010-04-01/Accounts")
    client.force_login(member)
    response = client.post(url, _data(agent, line))
    call = Call.objects.for_org(organization).get()
    page = response.content.decode()
    assert response.status_code == 502 and "Twilio did not place the call" in page
    assert f"/o/{organization.slug}/calls/{call.id}/" in page and call.status == "failed"


def test_another_organizations_page_is_a_404(client, other_organization, member):
    client.force_login(member)
    assert client.get(reverse("telephony:call-place", kwargs={"org_slug": other_organization.slug})).status_code == 404


def test_a_link_prefills_the_destination_and_the_caller_line(client, owner, organization, line, agent, url):
    twilio_line(organization, "+14155550111", friendly_name="Sales")
    client.force_login(owner)
    page = client.get(url, {"to": "+14155550123", "from_number": line.number}).content.decode()
    assert 'value="+14155550123"' in page
    assert re.search(rf'<option value="{line.id}"[^>]*selected', page), "the caller line named by the link is chosen"
    # A number that is not one of the organization's lines chooses nothing and is not an error.
    page = client.get(url, {"from_number": "+19995550000"}).content.decode()
    assert "selected" not in re.search(r'<select name="from_number".*?</select>', page, re.S).group(0)
