"""The page to test an agent (/o/<slug>/agents/<id>/test/): for those who may edit agents, of their own
organization's agents; linked from the agent's page; it says when the replies are simulated."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from telephony.tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def _url(organization, agent):
    return reverse("telephony:agent-test", kwargs={"org_slug": organization.slug, "agent_id": agent.id})


def test_the_agents_page_links_to_its_test_page_which_opens_its_test_socket(client, organization, owner, settings):
    settings.SIMULATED_PROVIDERS = False
    agent = AgentFactory(organization=organization, name="Front desk", max_call_seconds=300)
    client.force_login(owner)
    detail = client.get(reverse("telephony:agent-detail", kwargs={"org_slug": organization.slug, "agent_id": agent.id}))
    assert _url(organization, agent) in detail.content.decode()

    page = client.get(_url(organization, agent))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Test Front desk" in html
    assert f'data-socket-path="/ws/o/{organization.slug}/agents/{agent.id}/test/"' in html
    assert "at most 300 seconds" in html
    assert "Talk in the browser" in html and "Your message" in html
    assert "Replies come from simulated providers" not in html
    # The page is one of the agents' pages: the navigation says where the person is.
    assert re.search(r'href="/o/[^"]+/agents/" aria-current="page">Agents<', html)


def test_in_simulated_mode_the_page_says_the_replies_are_simulated(client, organization, owner, settings):
    settings.SIMULATED_PROVIDERS = True
    agent = AgentFactory(organization=organization)
    client.force_login(owner)
    assert "Replies come from simulated providers" in client.get(_url(organization, agent)).content.decode()


def test_members_who_may_not_edit_agents_and_other_organizations_cannot_open_it(
    client, organization, member, owner, other_organization
):
    agent = AgentFactory(organization=organization)
    client.force_login(member)
    assert client.get(_url(organization, agent)).status_code == 403
    # Nor is the link shown to them on the (read-only) agent page.
    detail = client.get(reverse("telephony:agent-detail", kwargs={"org_slug": organization.slug, "agent_id": agent.id}))
    assert _url(organization, agent) not in detail.content.decode()
    client.force_login(owner)
    stranger = AgentFactory(organization=other_organization)
    assert client.get(_url(organization, stranger)).status_code == 404
