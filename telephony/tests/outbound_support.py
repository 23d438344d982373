"""Helpers of the outbound-call tests: an organization's agent and caller number, the stand-in's calls."""

from __future__ import annotations

import itertools
from telephony.models import Agent, PhoneNumber

_serial = itertools.count(1)


def make_agent(organization, **fields) -> Agent:
    values = {"name": f"Receptionist {next(_serial)}", "system_prompt": "You book appointments for {first_name}."}
    values.update(fields)
    return Agent.objects.create(organization=organization, **values)


def make_number(
    organization, number: str = "+14155550100", *, account_sid: str = "", twilio_sid: str = "", agent=None, **fields
) -> PhoneNumber:
    serial = next(_serial)
    return PhoneNumber.objects.create(
        organization=organization,
        number=number,
        twilio_sid=twilio_sid or f"PN{serial:032d}",
        account_sid=account_sid or f"AC{serial:032d}",
        country="US",
        agent=agent,
        **fields,
    )


def call_creations(standin) -> list[dict]:
    """Every "create a call" request the Twilio stand-in received (``.form``, ``.form_lists``)."""
    return [r for r in standin.requests if r.method == "POST" and r.path.endswith("/Calls.json")]


# Destinations in one zone each, spread around the world: at any moment one of them is well inside
# 08:00-21:00 local time and one well outside, so tests that go through the real clock can pick.
ONE_ZONE_DESTINATIONS = {
    "+12125550123": "America/New_York",
    "+442079460123": "Europe/London",
    "+81312345678": "Asia/Tokyo",
    "+61212345678": "Australia/Sydney",
    "+18082345678": "Pacific/Honolulu",
    "+919876543210": "Asia/Kolkata",
}


def _local_hour(zone: str) -> float:
    import datetime as dt
    from zoneinfo import ZoneInfo

    local = dt.datetime.now(dt.UTC).astimezone(ZoneInfo(zone))
    return local.hour + local.minute / 60


def destination_open_now() -> str:
    """A destination where it is now between 09:00 and 20:00 (an hour's margin on each side)."""
    for number, zone in ONE_ZONE_DESTINATIONS.items():
        if 9 <= _local_hour(zone) < 20:
            return number
    raise AssertionError("no destination inside its calling window now")  # pragma: no cover


def destination_closed_now() -> str:
    """A destination where it is now between 22:00 and 07:00."""
    for number, zone in ONE_ZONE_DESTINATIONS.items():
        hour = _local_hour(zone)
        if hour >= 22 or hour < 7:
            return number
    raise AssertionError("no destination outside its calling window now")  # pragma: no cover


def twilio_line(organization, number: str = "+14155550100", **fields) -> PhoneNumber:
    """A caller number held at the Twilio stand-in, in the organization's subaccount (made on first use)."""
    from telephony.services.twilio_accounts import twilio_for

    access = twilio_for(organization)
    bought = access.client.incoming_phone_numbers.create(phone_number=number)
    return make_number(organization, number, account_sid=access.account_sid, twilio_sid=bought.sid, **fields)
