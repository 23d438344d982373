"""The shapes of Twilio's SIDs, in one place.

A Twilio SID is two capital letters that name the kind of resource and 32
lowercase hexadecimal digits (https://www.twilio.com/docs/glossary/what-is-a-sid).
Anything else in a field that should hold one is not Twilio's: it is looked up
nowhere and stored nowhere (the columns hold 34 characters).
"""

from __future__ import annotations

import re

ACCOUNT = "AC"
CALL = "CA"
RECORDING = "RE"
PHONE_NUMBER = "PN"
APPLICATION = "AP"
API_KEY = "SK"

SID_LENGTH = 34
_SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}")


def twilio_sid_valid(value, prefix: str) -> bool:
    """True when ``value`` is a Twilio SID of the kind ``prefix`` names (``CA`` + 32 hex digits for a call)."""
    return (
        isinstance(value, str)
        and len(value) == SID_LENGTH
        and value.startswith(prefix)
        and _SID.fullmatch(value) is not None
    )
