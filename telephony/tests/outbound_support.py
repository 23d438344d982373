"""Helpers of the outbound-call tests: an organization's agent and caller number, the stand-in's calls."""

from __future__ import annotations

import itertools
from telephony.models import Agent, PhoneNumber

_serial = itertools.count(1)


def make_agent(organization, **fields) -> Agent:
    values = {"name": f"Receptionist {next(_serial)}", "system_prompt": "You book appointments for {first_name}."}
    values.update(fields)
    return Agent.objects.create(organization=organization, **values)


def make_number(organization, number: str = "+14155550100", *, account_sid: str = "", agent=None, **fields) -> PhoneNumber:
    serial = next(_serial)
    return PhoneNumber.objects.create(
        organization=organization,
        number=number,
        twilio_sid=f"PN{serial:032d}",
        account_sid=account_sid or f"AC{serial:032d}",
        country="US",
        agent=agent,
        **fields,
    )


def call_creations(standin) -> list[dict]:
    """Every "create a call" request the Twilio stand-in received (``.form``, ``.form_lists``)."""
    return [r for r in standin.requests if r.method == "POST" and r.path.endswith("/Calls.json")]
