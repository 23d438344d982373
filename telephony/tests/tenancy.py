"""telephony's cases for the cross-tenant walk (accounts/tests/urlwalk.py): one section per area."""

from __future__ import annotations

# kwarg -> how to make an object of that kind inside an organization
OBJECT_KWARGS: dict = {}

# url name -> why it needs no organization in its route
PUBLIC_ROUTES: dict = {}

# url name -> how to reach a signed inbound route (the walk posts unsigned and forged requests to each)
SIGNED_INBOUND: dict = {}

# --- calls: Twilio's call hooks, and a call's page -----------------------------------------------


def _make_call(organization):
    from telephony.models import Call, CallDirection

    return Call.objects.create(
        organization=organization, direction=CallDirection.INBOUND, from_number="+14155550100", to_number="+14155550199"
    ).id


OBJECT_KWARGS["call_id"] = _make_call
SIGNED_INBOUND.update(
    {
        "twilio-hooks:voice": {"kwargs": {}, "provider": "twilio"},
        "twilio-hooks:status": {"kwargs": {}, "provider": "twilio"},
        "twilio-hooks:recording": {"kwargs": {}, "provider": "twilio"},
    }
)

# --- agents --------------------------------------------------------------------------------------


def _make_agent(organization):
    from telephony.tests.factories import AgentFactory

    return AgentFactory(organization=organization).id


OBJECT_KWARGS["agent_id"] = _make_agent

# --- browser calling: the voice URL of the softphone's TwiML application ----------------------------

SIGNED_INBOUND["twilio-hooks:browser-voice"] = {"kwargs": {}, "provider": "twilio"}

# --- phone numbers ---------------------------------------------------------------------------------


def _make_number(organization):
    from telephony.tests.factories import PhoneNumberFactory

    return PhoneNumberFactory(organization=organization).id


OBJECT_KWARGS["number_id"] = _make_number
