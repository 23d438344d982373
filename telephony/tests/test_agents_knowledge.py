"""Agents answer from knowledge bases: linked in the service, the API and the editor; this organization's only."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from compliance.models import AuditEvent
from knowledge.services import knowledge_base_create
from telephony.models import Agent
from telephony.services.agents import AgentInvalid, agent_update, linked_knowledge_bases
from telephony.tests.factories import AgentFactory
from telephony.tests.test_agents_api import client_with
from telephony.tests.test_agents_portal import FORM

pytestmark = pytest.mark.django_db


@pytest.fixture
def bases(organization, owner):
    return [
        knowledge_base_create(organization=organization, actor=owner, name=name)
        for name in ("Patient handbook", "Price list")
    ]


@pytest.fixture
def foreign_base(other_organization, other_owner):
    return knowledge_base_create(organization=other_organization, actor=other_owner, name="Their handbook")


def test_the_service_links_and_unlinks_and_audits_the_change(organization, owner, bases):
    agent = AgentFactory(organization=organization)
    agent_update(organization=organization, actor=owner, agent=agent, data={"knowledge_bases": [bases[1].pk, bases[0].pk]})
    assert linked_knowledge_bases(agent) == sorted(str(b.pk) for b in bases)
    agent_update(organization=organization, actor=owner, agent=agent, data={"knowledge_bases": [str(bases[0].pk)]})
    assert linked_knowledge_bases(agent) == [str(bases[0].pk)]
    event = AuditEvent.objects.unscoped("test").filter(action="agent.updated").order_by("occurred_at", "seq").last()
    assert event.changes["knowledge_bases"] == {
        "before": sorted(str(b.pk) for b in bases), "after": [str(bases[0].pk)]
    }


def test_another_organizations_knowledge_base_reads_as_unknown(organization, owner, bases, foreign_base):
    agent = AgentFactory(organization=organization)
    unknown = uuid.uuid4()
    for candidate in (foreign_base.pk, unknown):
        with pytest.raises(AgentInvalid) as refused:
            agent_update(organization=organization, actor=owner, agent=agent, data={"knowledge_bases": [candidate]})
        assert refused.value.errors["knowledge_bases"] == [
            f"There is no knowledge base {candidate} in this organization."
        ]
    assert linked_knowledge_bases(agent) == []


def test_the_api_reads_and_writes_the_link(api_client, organization, owner, bases, foreign_base):
    client = client_with(api_client, organization, owner, "agents:read", "agents:write")
    agent = AgentFactory(organization=organization)
    url = f"/api/v1/agents/{agent.pk}"
    assert client.get(url).json()["knowledge_bases"] == []
    changed = client.patch(url, {"knowledge_bases": [str(bases[0].pk)]}, format="json")
    assert changed.status_code == 200 and changed.json()["knowledge_bases"] == [str(bases[0].pk)]
    refused = client.patch(url, {"knowledge_bases": [str(foreign_base.pk)]}, format="json")
    assert refused.status_code == 400
    assert "knowledge_bases" in refused.json()["error"]["details"]
    bad = client.patch(url, {"knowledge_bases": ["not-an-id"]}, format="json")
    assert bad.status_code == 400 and "knowledge_bases" in bad.json()["error"]["details"]
    listed = client.get("/api/v1/agents").json()["results"]
    assert listed[0]["knowledge_bases"] == [str(bases[0].pk)]


def test_the_editor_offers_the_organizations_knowledge_bases(client, organization, owner, bases, foreign_base):
    client.force_login(owner)
    create = reverse("telephony:agent-create", kwargs={"org_slug": organization.slug})
    page = client.get(create).content.decode()
    assert "Patient handbook" in page and "Price list" in page and "Their handbook" not in page
    response = client.post(create, {**FORM, "knowledge_bases": [str(bases[1].pk)]})
    assert response.status_code == 302, response.content.decode()[:2000]
    agent = Agent.objects.for_org(organization).get()
    assert linked_knowledge_bases(agent) == [str(bases[1].pk)]
    # A forged choice of another organization's base is refused on the field.
    update = reverse("telephony:agent-update", kwargs={"org_slug": organization.slug, "agent_id": agent.pk})
    response = client.post(update, {**FORM, "knowledge_bases": [str(foreign_base.pk)]})
    assert response.status_code == 400
    assert linked_knowledge_bases(agent) == [str(bases[1].pk)]


def test_the_editor_says_what_to_do_without_a_knowledge_base(client, organization, owner):
    client.force_login(owner)
    page = client.get(reverse("telephony:agent-create", kwargs={"org_slug": organization.slug})).content.decode()
    assert "No knowledge base yet" in page
