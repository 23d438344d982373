"""Reads of the organization's agents."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from accounts.tenancy import get_for_org_or_404
from knowledge.models import KnowledgeBase
from telephony.models import Agent, PhoneNumber


def _with_numbers(queryset: QuerySet[Agent], organization) -> QuerySet[Agent]:
    """Each agent with the held numbers it answers (``agent.answered_numbers``) and the knowledge bases it
    answers from (``agent.linked_knowledge_bases``), in one extra query each."""
    held = PhoneNumber.objects.for_org(organization).filter(released_at__isnull=True).order_by("number")
    bases = KnowledgeBase.objects.for_org(organization).order_by("name")
    return queryset.prefetch_related(
        Prefetch("phone_numbers", queryset=held, to_attr="answered_numbers"),
        Prefetch("knowledge_bases", queryset=bases, to_attr="linked_knowledge_bases"),
    )


def agent_list(*, organization) -> QuerySet[Agent]:
    """The organization's agents by name, each with the numbers it answers."""
    return _with_numbers(Agent.objects.for_org(organization), organization).order_by("name", "id")


def agent_get(*, organization, id) -> Agent:
    """One agent of the organization, with the numbers it answers; 404 for another organization's or an unknown id."""
    return get_for_org_or_404(_with_numbers(Agent.objects.all(), organization), organization=organization, id=id)


def agent_knowledge_search(agent: Agent, query: str, k: int = 5):
    """What ``agent`` retrieves for ``query`` during a call: passages of the knowledge bases it answers from.

    [!!] Through knowledge.selectors.search with the agent's own organization, which keeps only that
    organization's knowledge bases and chunks whatever the link table says.
    """
    from knowledge.selectors import search

    bases = KnowledgeBase.objects.for_org(agent.organization_id).filter(agents=agent).values_list("pk", flat=True)
    return search(agent.organization, list(bases), query, k)
