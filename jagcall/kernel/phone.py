"""Phone numbers: one way to read, check and normalize them (E.164).

Used by every app that stores or dials a number, and by the blind indexes
that find a number without decrypting it, so "+1 (415) 555-0100" and
"+14155550100" are the same number everywhere.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as number_timezones


class InvalidPhoneNumber(ValueError):
    """A value that is not a dialable phone number; its message says why."""


def parse_e164(value: str, *, region: str | None = None) -> str:
    """``value`` as E.164 (``+14155550100``) or InvalidPhoneNumber saying what is wrong.

    Without ``region`` the number must start with ``+`` and its country code.
    """
    text = (value or "").strip()
    if not text:
        raise InvalidPhoneNumber("Enter a phone number in international format, e.g. +14155550100.")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber(
            f"{text!r} is not a phone number: use international format with the country code, e.g. +14155550100."
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(f"{text} is not a valid phone number for its country code.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_e164(value: str) -> bool:
    """Is ``value`` already a valid number written exactly in E.164?"""
    try:
        return parse_e164(value) == value
    except InvalidPhoneNumber:
        return False


@lru_cache(maxsize=4096)
def normalize_for_index(value: str) -> str:
    """The form a blind index hashes: E.164 when the value parses, else ``+`` and its digits.

    Cached (a pure function of the text): the gates look up the same few numbers on every text and call,
    and parsing one costs a quarter of a millisecond.
    """
    try:
        return parse_e164(value)
    except InvalidPhoneNumber:
        digits = "".join(ch for ch in str(value) if ch.isdigit())
        return f"+{digits}"


def region_of(value: str) -> str | None:
    """The ISO country (``US``) of an E.164 number, or None."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(value, None)) or None
    except phonenumbers.NumberParseException:
        return None


def time_zones_of(value: str) -> list[str]:
    """Every IANA time zone the number may be in (several for some area codes and countries).

    An empty list means the number's zone is unknown.
    """
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return []
    zones = [zone for zone in number_timezones.time_zones_for_number(number) if zone != "Etc/Unknown"]
    return sorted(set(zones))
