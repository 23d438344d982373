"""`make run`'s demo data: Acme Dental has its patient handbook indexed, and its demo agent answers from it."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.models import Organization
from knowledge.models import Document, DocumentStatus, KnowledgeBase
from telephony.models import Agent
from telephony.selectors.agents import agent_knowledge_search
from telephony.services.agents import linked_knowledge_bases

pytestmark = pytest.mark.django_db


def test_seed_demo_indexes_a_handbook_once_and_the_demo_agent_answers_from_it():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=StringIO())  # idempotent
    organization = Organization.objects.get(slug="acme-dental")
    base = KnowledgeBase.objects.for_org(organization).get()
    document = Document.objects.for_org(organization).get()
    assert document.status == DocumentStatus.READY and base.chunk_count == document.chunks_total > 0
    assert "Patient handbook" in out.getvalue() and "indexed" in out.getvalue()

    agent = Agent.objects.for_org(organization).get(name="Front desk")
    assert linked_knowledge_bases(agent) == [str(base.pk)]
    hits = agent_knowledge_search(agent, "Can I park my car at the practice?", k=2)
    assert any("Elm Street" in hit.text for hit in hits)
    hits = agent_knowledge_search(agent, "How much is teeth whitening WH-200?", k=3)
    assert any("350 dollars" in hit.text for hit in hits)


def test_an_older_demo_front_desk_is_linked_once_and_a_choice_to_unlink_is_kept(client):
    call_command("seed_demo", stdout=StringIO())
    organization = Organization.objects.get(slug="acme-dental")
    agent = Agent.objects.for_org(organization).get(name="Front desk")
    Agent.knowledge_bases.through.objects.filter(agent_id=agent.pk).delete()  # as before knowledge bases existed
    call_command("seed_demo", stdout=StringIO())
    assert len(linked_knowledge_bases(agent)) == 1


def test_the_demo_playground_answers_at_once(client):
    from accounts.models import User

    call_command("seed_demo", stdout=StringIO())
    organization = Organization.objects.get(slug="acme-dental")
    base = KnowledgeBase.objects.for_org(organization).get()
    client.force_login(User.objects.get(email="member@acme-dental.test"))
    page = client.get(
        reverse("knowledge:playground", kwargs={"org_slug": organization.slug, "knowledge_base_id": base.pk}),
        {"query": "What are your opening hours on Saturday?", "k": 3},
    )
    assert page.status_code == 200 and "first Saturday of each month" in page.content.decode()
