"""Acme Dental's demo agent (`make run`, ``manage.py seed_demo``): a "Front desk" ready to place and
answer calls, so a newcomer can buy a number and call at once. Connected to seed_demo's
``demo_organization_ready`` in TelephonyConfig.ready()."""

from __future__ import annotations

from telephony.models import Agent
from telephony.services.agents import agent_create

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
    agent renamed or replaced by the person trying the product is left alone)."""
    if Agent.objects.for_org(organization).exists():
        return None
    agent = agent_create(organization=organization, actor=owner, data=DEMO_AGENT)
    return f"agent  {agent.name} answers and places calls once it has a number (Numbers, then Calls -> Place a call)"
