"""C20: two organizations upload the same document; no search, by any path, returns the other's chunk.

The paths walked: the retrieval selector itself (asked with both organizations' knowledge bases), the
portal's playground, the API's search, and an agent's retrieval during a call (even with a forged link to
the other organization's knowledge base). Underneath, row-level security on the chunk table is checked as
a second wall: a query that names no organization, or the wrong one, sees nothing.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from accounts.api_keys.services import api_key_create
from knowledge.models import Chunk
from knowledge.scope import organization_scope
from knowledge.selectors import search
from knowledge.services import document_add, document_process, knowledge_base_create
from knowledge.tests.test_documents import HANDBOOK
from telephony.models import Agent
from telephony.selectors.agents import agent_knowledge_search
from telephony.tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

QUESTIONS = ("When is the practice open on Friday?", "What does a missed appointment cost?", "extension 4410")


class Tenant:
    def __init__(self, organization, owner, label):
        self.organization, self.owner, self.label = organization, owner, label
        self.base = knowledge_base_create(organization=organization, actor=owner, name="Handbook")
        # The same bytes in both organizations; only the file's name tells them apart on a page.
        self.document = document_add(
            organization=organization, actor=owner, knowledge_base=self.base, name=f"handbook-{label}.md",
            content=HANDBOOK.encode(),
        )  # fmt: skip
        document_process(self.document)
        with organization_scope(organization):
            self.chunk_ids = set(Chunk.objects.for_org(organization).values_list("pk", flat=True))
        assert self.chunk_ids


@pytest.fixture
def tenants(organization, owner, other_organization, other_owner):
    return Tenant(organization, owner, "ours"), Tenant(other_organization, other_owner, "theirs")


def test_the_selector_keeps_each_organization_to_its_own_chunks(tenants):
    ours, theirs = tenants
    both = [ours.base, theirs.base]
    for me, them in ((ours, theirs), (theirs, ours)):
        for question in QUESTIONS:
            for mode in ("hybrid", "vector", "keyword"):
                hits = search(me.organization, both, question, k=50, mode=mode)
                assert hits and {hit.chunk_id for hit in hits} <= me.chunk_ids, (question, mode)
                assert {hit.document_id for hit in hits} == {me.document.pk}
            # Asked only with the other organization's knowledge base: nothing at all.
            assert search(me.organization, [them.base], question, k=50) == []
            assert search(me.organization, [str(them.base.pk)], question, k=50) == []


def test_the_playground_shows_only_the_organizations_own_passages(client, tenants):
    ours, theirs = tenants
    client.force_login(ours.owner)
    page = client.get(
        reverse("knowledge:playground", kwargs={"org_slug": ours.organization.slug, "knowledge_base_id": ours.base.pk}),
        {"query": QUESTIONS[0], "k": 10},
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert "handbook-ours.md" in html and "handbook-theirs.md" not in html
    # The other organization's knowledge base through our organization's address: not found, nothing shown.
    foreign = client.get(
        reverse("knowledge:playground", kwargs={"org_slug": ours.organization.slug, "knowledge_base_id": theirs.base.pk}),
        {"query": QUESTIONS[0], "k": 10},
    )
    assert foreign.status_code == 404 and "handbook-theirs.md" not in foreign.content.decode()


def test_an_agent_retrieves_only_from_its_own_organization_even_with_a_forged_link(tenants):
    ours, theirs = tenants
    agent = AgentFactory(organization=ours.organization)
    through = Agent.knowledge_bases.through
    through.objects.create(agent_id=agent.pk, knowledgebase_id=ours.base.pk)
    # A link no service would make (the editor and the API refuse it), written straight into the table.
    through.objects.create(agent_id=agent.pk, knowledgebase_id=theirs.base.pk)
    for question in QUESTIONS:
        hits = agent_knowledge_search(agent, question, k=50)
        assert hits and {hit.chunk_id for hit in hits} <= ours.chunk_ids
    through.objects.filter(agent_id=agent.pk, knowledgebase_id=ours.base.pk).delete()
    assert agent_knowledge_search(agent, QUESTIONS[0], k=50) == []


def test_the_api_search_keeps_each_key_to_its_organization(api_client, tenants):
    ours, theirs = tenants
    _key, raw = api_key_create(organization=ours.organization, actor=ours.owner, name="Search", scopes=["knowledge:read"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    for question in QUESTIONS:
        response = api_client.post(
            f"/api/v1/knowledge-bases/{ours.base.pk}/search", {"query": question, "k": 50}, format="json"
        )
        assert response.status_code == 200, response.json()
        results = response.json()["results"]
        assert results and {r["document"]["id"] for r in results} == {str(ours.document.pk)}
        assert all(r["document"]["name"] == "handbook-ours.md" for r in results)
        foreign = api_client.post(
            f"/api/v1/knowledge-bases/{theirs.base.pk}/search", {"query": question, "k": 50}, format="json"
        )
        assert foreign.status_code == 404 and "handbook-theirs" not in foreign.content.decode()


def test_row_level_security_is_a_second_wall_under_every_path(tenants):
    ours, theirs = tenants
    everything = "SELECT id FROM knowledge_chunk"
    with connection.cursor() as cursor:
        cursor.execute(everything)
        assert cursor.fetchall() == []
    for me, them in ((ours, theirs), (theirs, ours)):
        with organization_scope(me.organization), connection.cursor() as cursor:
            cursor.execute(everything)  # no filter on the organization at all
            assert {row[0] for row in cursor.fetchall()} == me.chunk_ids
            cursor.execute("SELECT count(*) FROM knowledge_chunk WHERE organization_id = %s", [them.organization.pk])
            assert cursor.fetchone()[0] == 0
