"""The numbers page's "Simulate a caller" (simulated mode only): a scripted caller rings the number through the
Twilio stand-in's own route, and the person lands on the new call's page with a notice that it is simulated."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from compliance.models import AuditEvent
from jagcall.kernel.standins.twilio.media import Hangup, Pause
from telephony.models import Call
from telephony.tests.calls_support import line
from telephony.tests.outbound_support import make_agent, make_number
from telephony.views import numbers as views

BUTTON = "Simulate a caller</button>"


def _url(number):
    kwargs = {"org_slug": number.organization.slug, "number_id": number.id}
    return reverse("telephony:number-simulate-call", kwargs=kwargs)


def _list(organization):
    return reverse("telephony:number-list", kwargs={"org_slug": organization.slug})


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.django_db
def test_the_button_exists_only_in_simulated_mode_and_only_for_numbers_with_an_agent(
    client, organization, member, settings
):
    answered = make_number(organization, "+14155550123", agent=make_agent(organization, name="Front desk"))
    make_number(organization, "+14155550124")
    client.force_login(member)

    settings.SIMULATED_PROVIDERS = False
    html = client.get(_list(organization)).content.decode()
    assert BUTTON not in html and "data-simulate-hint" not in html

    settings.SIMULATED_PROVIDERS = True
    html = client.get(_list(organization)).content.decode()
    assert html.count(BUTTON) == 1
    row = html[html.index(f'id="number-{answered.id}"') :]
    assert _url(answered) in row[: row.index("</tr>")]
    assert "with no phone and no provider key" in html


@pytest.mark.django_db
def test_outside_simulated_mode_the_view_is_not_found(client, organization, member, settings):
    settings.SIMULATED_PROVIDERS = False
    number = make_number(organization, agent=make_agent(organization))
    client.force_login(member)
    assert client.post(_url(number)).status_code == 404
    assert client.get(_url(number)).status_code in (404, 405)


@pytest.mark.django_db
def test_it_takes_a_post_with_the_csrf_token(organization, member, settings):
    settings.SIMULATED_PROVIDERS = True
    number = make_number(organization, agent=make_agent(organization))
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    assert client.post(_url(number)).status_code == 403
    assert client.get(_url(number)).status_code == 405


@pytest.mark.django_db
def test_only_members_of_the_numbers_organization_may_ring_it(client, organization, other_organization, member,
                                                              other_owner, settings):  # fmt: skip
    settings.SIMULATED_PROVIDERS = True
    number = make_number(organization, agent=make_agent(organization))
    anonymous = client.post(_url(number))
    assert anonymous.status_code == 302 and "/auth/login/" in anonymous["Location"]
    client.force_login(other_owner)
    assert client.post(_url(number)).status_code == 404  # not a member of this organization
    foreign = make_number(other_organization, "+14155550155", agent=make_agent(other_organization))
    client.force_login(member)
    url = reverse("telephony:number-simulate-call", kwargs={"org_slug": organization.slug, "number_id": foreign.id})
    assert client.post(url).status_code == 404  # another organization's number under ours
    assert not Call.objects.for_org(other_organization).exists()


@pytest.mark.django_db
def test_a_number_without_an_agent_says_to_choose_one(client, organization, member, settings):
    settings.SIMULATED_PROVIDERS = True
    number = make_number(organization)
    client.force_login(member)
    response = client.post(_url(number))
    assert response.status_code == 302 and response["Location"] == _list(organization)
    assert _messages(response) == [f"No agent answers {number.number}: choose one under “Answered by” first."]


@pytest.mark.django_db
def test_a_refusal_of_the_stand_in_is_explained(client, organization, member, settings, twilio_standin):
    settings.SIMULATED_PROVIDERS = True
    number = line(organization)
    twilio_standin.numbers.clear()  # e.g. a stand-in restarted without the numbers the database holds
    client.force_login(member)
    response = client.post(_url(number))
    assert response.status_code == 302 and response["Location"] == _list(organization)
    (message,) = _messages(response)
    assert message.startswith(f"The simulated caller could not ring {number.number}:")
    assert "Restarting `make run`" in message and not twilio_standin.calls


@pytest.fixture
def simulated_line(asgi_live_server, providers, settings, organization):
    """Simulated mode with every stand-in; our hooks and media stream served for real."""
    settings.SIMULATED_PROVIDERS = True
    settings.PUBLIC_BASE_URL = asgi_live_server
    providers.twilio.caller_scripts = {"opening-hours": lambda: [Pause(0.3), Hangup()]}
    return line(organization)


def test_the_caller_rings_and_the_person_lands_on_the_new_calls_page(client, organization, member, simulated_line,
                                                                     providers):  # fmt: skip
    client.force_login(member)
    response = client.post(_url(simulated_line))
    call = Call.objects.for_org(organization).get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "telephony:call-detail", kwargs={"org_slug": organization.slug, "call_id": call.id}
    )
    assert _messages(response) == [views.SIMULATED_CALL_NOTICE]
    assert call.from_number == "+14155550134" and call.to_number == simulated_line.number
    assert call.twilio_sid in providers.twilio.calls
    audit = AuditEvent.objects.for_org(organization).get(action="call.simulated")
    assert audit.metadata["call_sid"] == call.twilio_sid and audit.metadata["number"] == simulated_line.number
    providers.twilio.media_callers[call.twilio_sid].wait(15)


def test_when_the_call_is_slow_to_appear_the_calls_list_says_so(client, organization, member, simulated_line,
                                                                providers, monkeypatch):  # fmt: skip
    monkeypatch.setattr(views, "SIMULATED_CALL_WAIT_SECONDS", 0.3)
    providers.twilio.transport = lambda method, url, params, headers: (None, "unreachable")  # the hook never hears
    client.force_login(member)
    response = client.post(_url(simulated_line))
    assert response.status_code == 302
    assert response["Location"] == reverse("telephony:call-list", kwargs={"org_slug": organization.slug})
    assert _messages(response) == [
        f"The simulated caller is ringing {simulated_line.number}; the call appears in this list in a moment. "
        "Open it to follow the conversation."
    ]
    providers.twilio.settle()
