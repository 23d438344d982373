"""telephony's cases for the cross-tenant walk (accounts/tests/urlwalk.py): one section per area."""

from __future__ import annotations

# kwarg -> how to make an object of that kind inside an organization
OBJECT_KWARGS: dict = {}

# url name -> why it needs no organization in its route
PUBLIC_ROUTES: dict = {}

# url name -> how to reach a signed inbound route (the walk posts unsigned and forged requests to each)
SIGNED_INBOUND: dict = {}

# --- agents --------------------------------------------------------------------------------------


def _make_agent(organization):
    from telephony.tests.factories import AgentFactory

    return AgentFactory(organization=organization).id


OBJECT_KWARGS["agent_id"] = _make_agent
