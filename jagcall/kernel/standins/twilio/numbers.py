"""Available local numbers for the Twilio stand-in: plausible numbers that the `phonenumbers`
library accepts as valid, in a few real area codes per country (US, CA, GB), with Twilio's
AvailablePhoneNumbers/{CC}/Local filters (AreaCode, Contains, SmsEnabled, VoiceEnabled)."""

from __future__ import annotations

import random
import re

import phonenumbers

# area code -> (locality, region, rate center, lat, long, postal code)
AREAS = {
    "US": {
        "415": ("San Francisco", "CA", "SNFC CNTRL", "37.77", "-122.42", "94103"),
        "212": ("New York", "NY", "NWYRCYZN01", "40.71", "-74.01", "10007"),
        "312": ("Chicago", "IL", "CHICAGO", "41.88", "-87.63", "60601"),
        "512": ("Austin", "TX", "AUSTIN", "30.27", "-97.74", "78701"),
        "206": ("Seattle", "WA", "SEATTLE", "47.61", "-122.33", "98101"),
        "617": ("Boston", "MA", "BOSTON", "42.36", "-71.06", "02108"),
        "303": ("Denver", "CO", "DENVER", "39.74", "-104.99", "80202"),
        "305": ("Miami", "FL", "MIAMI", "25.76", "-80.19", "33130"),
    },
    "CA": {
        "416": ("Toronto", "ON", "TORONTO", "43.65", "-79.38", "M5H"),
        "604": ("Vancouver", "BC", "VANCOUVER", "49.28", "-123.12", "V6B"),
        "514": ("Montreal", "QC", "MONTREAL", "45.50", "-73.57", "H2Y"),
        "403": ("Calgary", "AB", "CALGARY", "51.05", "-114.07", "T2P"),
    },
    "GB": {
        "20": ("London", "", "London", "51.51", "-0.13", "EC1A"),
        "161": ("Manchester", "", "Manchester", "53.48", "-2.24", "M1"),
        "121": ("Birmingham", "", "Birmingham", "52.49", "-1.89", "B1"),
        "131": ("Edinburgh", "", "Edinburgh", "55.95", "-3.19", "EH1"),
    },
}
# Local geographic numbers in the UK take calls only; in North America they also take texts.
SMS_CAPABLE = {"US": True, "CA": True, "GB": False}
KEYPAD = {
    letter: str(digit)
    for digit, letters in enumerate(["", "", "abc", "def", "ghi", "jkl", "mno", "pqrs", "tuv", "wxyz"])
    for letter in letters
}
NATIONAL_LENGTH = {"US": 10, "CA": 10, "GB": 10}


def known_country(country: str) -> bool:
    return country in AREAS


def contains_regex(pattern: str) -> re.Pattern | None:
    """Twilio's Contains: digits, letters (keypad digits) and * (any one digit); None if malformed."""
    digits = "".join(KEYPAD.get(c, c) for c in pattern.lower().lstrip("+"))
    if not digits or not re.fullmatch(r"[0-9*]+", digits):
        return None
    return re.compile(digits.replace("*", r"\d"))


def _national(number: str) -> str:
    return str(phonenumbers.parse(number).national_number)


def is_valid(number: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return False


def area_of(country: str, number: str) -> str | None:
    national = _national(number)
    return next((area for area in AREAS.get(country, {}) if national.startswith(area)), None)


def country_of(number: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return None


def _candidate(rng: random.Random, country: str, area: str, tail: str) -> str:
    length = NATIONAL_LENGTH[country] - len(area)
    if country in ("US", "CA"):
        subscriber = str(rng.randint(2, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(length - 1))
    else:  # London 20 7xxx/3xxx, elsewhere a leading 2-4
        first = rng.choice("37") if area == "20" else str(rng.randint(2, 4))
        subscriber = first + "".join(str(rng.randint(0, 9)) for _ in range(length - 1))
    if tail and len(tail) < length:
        subscriber = subscriber[: length - len(tail)] + tail
    code = phonenumbers.country_code_for_region(country)
    return f"+{code}{area}{subscriber}"


def available_numbers(
    country: str,
    *,
    area_code: str | None = None,
    contains: str | None = None,
    sms_enabled: bool | None = None,
    voice_enabled: bool | None = None,
    exclude: set[str] = frozenset(),
    count: int = 20,
    seed: int | None = None,
) -> list[dict]:
    """Up to ``count`` valid numbers matching the filters, as AvailablePhoneNumber JSON."""
    areas = AREAS[country]
    sms = SMS_CAPABLE[country]
    if (sms_enabled and not sms) or voice_enabled is False:
        return []
    if area_code is not None:
        areas = {area_code: areas[area_code]} if area_code in areas else {}
    if not areas:
        return []
    pattern = contains_regex(contains) if contains else None
    tail_pattern = pattern.pattern.replace(r"\d", "*") if pattern else ""
    rng = random.Random(seed)
    found: dict[str, dict] = {}
    for _ in range(count * 20):
        if len(found) >= count:
            break
        area = rng.choice(sorted(areas))
        tail = "".join(str(rng.randint(0, 9)) if c == "*" else c for c in tail_pattern)
        number = _candidate(rng, country, area, tail)
        if number in exclude or number in found or not is_valid(number):
            continue
        if pattern and not (pattern.search(_national(number)) or pattern.search(number[1:])):
            continue
        found[number] = available_number_json(country, area, number, sms)
    return list(found.values())


def available_number_json(country: str, area: str, number: str, sms: bool) -> dict:
    locality, region, rate_center, lat, lng, postal = AREAS[country][area]
    parsed = phonenumbers.parse(number)
    return {
        "friendly_name": phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL),
        "phone_number": number,
        "lata": "722" if country in ("US", "CA") else None,
        "locality": locality,
        "rate_center": rate_center,
        "latitude": lat,
        "longitude": lng,
        "region": region or None,
        "postal_code": postal,
        "iso_country": country,
        "address_requirements": "none" if country in ("US", "CA") else "any",
        "beta": False,
        # [sic] Twilio spells these capabilities "SMS" and "MMS" here, "sms"/"mms" on IncomingPhoneNumbers.
        "capabilities": {"voice": True, "SMS": sms, "MMS": sms, "fax": False},
    }
