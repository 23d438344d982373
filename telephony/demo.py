"""Acme Dental's demo agent (`make run`, ``manage.py seed_demo``): a "Front desk" ready to place and
answer calls, so a newcomer can buy a number and call at once. Connected to seed_demo's
``demo_organization_ready`` in TelephonyConfig.ready()."""

from __future__ import annotations

from knowledge.demo import demo_knowledge_base_ensure
from telephony.models import Agent
from telephony.services.agents import agent_create, agent_update, linked_knowledge_bases

DEMO_AGENT = {
    "name": "Front desk",
    "system_prompt": (
        "You are the front desk of Acme Dental, a friendly dental practice. Greet the caller, answer questions "
        "about opening hours (Monday to Friday, 8 am to 6 pm) and book check-ups and cleanings. Keep answers short."
    ),
    "first_message": "Hello, Acme Dental front desk. How can I help you today?",
    "analysis_schema": [
        {
            "name": "appointment_requested",
            "type": "boolean",
            "description": "Did the caller ask to book or move an appointment?",
        }
    ],
}


def demo_agent_create(sender, *, organization, owner, **kwargs) -> str | None:
    """The demo agent, created once: only while the organization has no agent at all (idempotent, and an
    agent renamed or replaced by the person trying the product is left alone). It answers from the demo
    knowledge base; a "Front desk" made before knowledge bases existed is linked to it once."""
    knowledge_base, _made = demo_knowledge_base_ensure(organization=organization, owner=owner)
    existing = Agent.objects.for_org(organization)
    if existing.exists():
        front_desk = existing.filter(name=DEMO_AGENT["name"]).first()
        if front_desk is not None and not linked_knowledge_bases(front_desk):
            agent_update(
                organization=organization, actor=owner, agent=front_desk, data={"knowledge_bases": [knowledge_base.pk]}
            )
            return f"agent  {front_desk.name} now answers from “{knowledge_base.name}”"
        return None
    agent = agent_create(organization=organization, actor=owner, data={**DEMO_AGENT, "knowledge_bases": [knowledge_base.pk]})
    return (
        f"agent  {agent.name} answers from “{knowledge_base.name}” and places calls once it has a number "
        "(Numbers, then Calls -> Place a call)"
    )
