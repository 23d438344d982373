"""What simulated mode adds for a newcomer: the demo agent seed_demo creates, the call page telling that the
recording, transcript and summary are on their way (and marking the section for its own refresh), and the
place-call page suggesting numbers inside calling hours."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organization
from telephony.models import Agent, Call, CallDirection, CallRecording, StepStatus
from telephony.tests.outbound_support import make_agent, make_number

pytestmark = pytest.mark.django_db


def test_seed_demo_gives_acme_dental_a_ready_agent_once():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=StringIO())
    organization = Organization.objects.get(slug="acme-dental")
    agent = Agent.objects.for_org(organization).get()
    assert agent.name == "Front desk" and agent.system_prompt and agent.record_calls
    assert agent.analysis_schema == [
        {"name": "appointment_requested", "type": "boolean",
         "description": "Did the caller ask to book or move an appointment?"},
    ]  # fmt: skip
    assert "Front desk" in out.getvalue()

    # An organization whose agents were changed keeps them as they are.
    agent.name = "Reception"
    agent.save(update_fields=["name"])
    call_command("seed_demo", stdout=StringIO())
    assert list(Agent.objects.for_org(organization).values_list("name", flat=True)) == ["Reception"]


def _call(organization, agent, **fields) -> Call:
    defaults = {"status": "completed", "answered_at": timezone.now() - timedelta(seconds=40),
                "ended_at": timezone.now() - timedelta(seconds=5)}  # fmt: skip
    return Call.objects.create(
        organization=organization, direction=CallDirection.OUTBOUND, agent=agent,
        from_number="+14155550123", to_number="+14155550111", **{**defaults, **fields},
    )  # fmt: skip


def _post_call(client, call) -> str:
    url = reverse("telephony:call-detail", kwargs={"org_slug": call.organization.slug, "call_id": call.id})
    html = client.get(url).content.decode()
    return html[html.index('<section class="post-call"') : html.index("</section>", html.index('class="post-call"'))]


def test_the_call_page_says_what_is_on_its_way_and_asks_to_be_refreshed(client, organization, member):
    client.force_login(member)
    agent = make_agent(organization, name="Front desk")

    just_ended = _call(organization, agent)
    section = _post_call(client, just_ended)
    assert "data-pending" in section and "its recording is on its way from Twilio" in section

    ongoing = _call(organization, agent, status="in-progress", ended_at=None)
    section = _post_call(client, ongoing)
    assert "data-pending" not in section and "this section fills in by itself" in section

    CallRecording.objects.create(
        organization=organization, call=just_ended, twilio_sid="RE" + "1" * 32, status=StepStatus.RUNNING
    )
    section = _post_call(client, just_ended)
    assert "data-pending" in section and "Preparing the recording, transcript and summary" in section

    long_ago = _call(organization, agent, ended_at=timezone.now() - timedelta(hours=2))
    section = _post_call(client, long_ago)
    assert "data-pending" not in section and "This call left no recording" in section

    agent_off = make_agent(organization, name="Quiet", record_calls=False)
    section = _post_call(client, _call(organization, agent_off))
    assert "data-pending" not in section and "This call left no recording" in section


def test_the_place_call_page_suggests_numbers_inside_calling_hours_in_simulated_mode(
    client, organization, member, settings
):
    client.force_login(member)
    make_number(organization, agent=make_agent(organization, name="Front desk"))
    url = reverse("telephony:call-place", kwargs={"org_slug": organization.slug})
    settings.SIMULATED_PROVIDERS = False
    assert "data-example-destination" not in client.get(url).content.decode()
    settings.SIMULATED_PROVIDERS = True
    html = client.get(url).content.decode()
    assert "Numbers you can call right now" in html and 'data-example-destination="+' in html
