"""Phone numbers: search, buy, assign to an agent, release, import from the organization's own Twilio account.

Every write needs ``numbers.manage`` and is audited. Twilio is asked first and
the row written only after Twilio succeeded; should the row fail to be written
after a purchase, the number is released at Twilio again, so neither side
keeps half of it. Twilio's refusals are ApplicationErrors with what to do.

A number bought or imported points Twilio at our voice webhook, status
callback and SMS webhook, all POST (jagcall/kernel/webhooks/, telephony/hooks.py,
messaging/webhooks.py): texts to the number reach messaging's inbox and opt-outs.
Releasing an imported number clears all three in the organization's account.

The plan limits the organization's active numbers (``phone_numbers``, bought and imported alike):
a number beyond it is refused before Twilio is asked (``plan_limit``, 409), and counted again when
the row is written, under a lock of the organization, so two purchases at once cannot both take the
last place (the later one is released at Twilio again). An organization in the restricted billing
standing (its subscription unpaid or canceled) buys nothing (``billing_restricted``, 409).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import phonenumbers
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from accounts.entitlements import Standing, limit_refusal, outbound_refusal
from accounts.models import Organization
from accounts.principals import as_principal
from compliance.services.audit import audit_record
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.phone import InvalidPhoneNumber, parse_e164, region_of
from jagcall.kernel.providers import ProviderError, provider_operation
from telephony.models import Agent, NumberSource, PhoneNumber
from telephony.services.twilio_accounts import TwilioAccess, twilio_for, twilio_for_account
from telephony.services.urls import public_url

logger = logging.getLogger("jagcall.telephony")

PERMISSION = "numbers.manage"
SEARCH_LIMIT = 20
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_AREA_CODE = re.compile(r"^\d{2,5}$")
_CONTAINS = re.compile(r"^[0-9A-Za-z*]{1,16}$")
_NUMBER_SID = re.compile(r"^PN[0-9a-f]{32}$")


@dataclass(frozen=True)
class AvailableNumber:
    phone_number: str
    friendly_name: str
    locality: str
    region: str
    country: str
    voice: bool
    sms: bool


def webhook_settings() -> dict:
    """What every number of ours is set to at Twilio (voice, status and SMS hooks, POST)."""
    return {
        "voice_url": public_url("twilio-hooks:voice"),
        "voice_method": "POST",
        "status_callback": public_url("twilio-hooks:status"),
        "status_callback_method": "POST",
        "sms_url": public_url("twilio-hooks:sms"),
        "sms_method": "POST",
    }


def _twilio_error(error: ProviderError, doing: str) -> ApplicationError:
    """Twilio's refusal as a message saying what to do; nothing was written."""
    hints = {
        21421: "that is not a number Twilio offers: search again and pick one from the results",
        21422: "that number was just taken by someone else: search again and pick another",
        21452: "Twilio has no numbers in that area code right now: try a nearby one",
        21631: "Twilio needs an address or regulatory bundle for numbers of this country",
        21649: "Twilio needs an address or regulatory bundle for numbers of this country",
        20003: "Twilio refused the account's credentials: check them under Settings, Provider accounts",
        20404: "Twilio no longer has it",
    }
    hint = hints.get(error.code) if isinstance(error.code, int) else None
    detail = hint or error.message
    status = 503 if error.retryable else 400
    code = "provider_unavailable" if error.retryable else "provider_refused"
    return ApplicationError(f"Could not {doing}: {detail}. Nothing was changed.", code=code, status=status)


def _require(actor, organization):
    principal = as_principal(actor, organization)
    principal.require(PERMISSION)
    return principal


def numbers_in_use(organization) -> int:
    """The plan's ``phone_numbers`` in use: the organization's numbers not released."""
    return PhoneNumber.objects.for_org(organization).filter(released_at__isnull=True).count()


def _check_number_limit(organization, *, field: str = "phone_number") -> None:
    """Refuse one more number beyond the plan's ``phone_numbers``."""
    refusal = limit_refusal(organization, "phone_numbers", used=numbers_in_use(organization))
    if refusal:
        raise ApplicationError(refusal, code="plan_limit", field=field, status=409)


def _check_may_buy(organization) -> None:
    """A restricted organization buys nothing (a number is billed by Twilio from the day it is bought)."""
    if getattr(organization, "billing_standing", Standing.GOOD) == Standing.RESTRICTED:
        raise ApplicationError(
            outbound_refusal(organization) or "This organization's subscription is unpaid or canceled.",
            code="billing_restricted", status=409,
        )  # fmt: skip


def _access(organization, doing: str) -> TwilioAccess:
    try:
        return twilio_for(organization)
    except ProviderError as error:
        raise _twilio_error(error, doing) from None


# --- search -------------------------------------------------------------------------------


def number_search(
    *, organization, actor, country: str = "US", area_code: str = "", contains: str = "", limit: int = SEARCH_LIMIT
) -> list[AvailableNumber]:
    """Local numbers Twilio offers in ``country`` (ISO code), optionally in an area code or containing digits."""
    _require(actor, organization)
    country = (country or "").strip().upper()
    area_code = (area_code or "").strip()
    contains = (contains or "").strip()
    if not _COUNTRY.match(country) or country not in phonenumbers.SUPPORTED_REGIONS:
        raise ApplicationError("Enter the country as its two-letter ISO code, e.g. US.", field="country")
    if area_code and not _AREA_CODE.match(area_code):
        raise ApplicationError("An area code is 2 to 5 digits, e.g. 415.", field="area_code")
    if contains and not _CONTAINS.match(contains):
        raise ApplicationError(
            "“Contains” takes up to 16 digits, letters or * (any digit), e.g. 555 or 4*5.", field="contains"
        )
    access = _access(organization, "search for numbers")
    filters: dict = {"voice_enabled": True, "limit": max(1, min(limit, 50))}
    if area_code:
        filters["area_code"] = area_code
    if contains:
        filters["contains"] = contains
    try:
        with provider_operation("twilio", "search numbers"):
            offers = access.client.api.v2010.accounts(access.account_sid).available_phone_numbers(country).local.list(
                **filters
            )
    except ProviderError as error:
        # The SDK's list() reports a 404 page as "Unable to fetch page" with the HTTP status in its text.
        if error.status == 404 or "HTTP 404" in error.message:
            raise ApplicationError(
                f"Twilio offers no local numbers in {country}: try another country.", field="country"
            ) from None
        raise _twilio_error(error, "search for numbers") from None
    return [
        AvailableNumber(
            phone_number=offer.phone_number,
            friendly_name=offer.friendly_name or offer.phone_number,
            locality=offer.locality or "",
            region=offer.region or "",
            country=offer.iso_country or country,
            voice=bool((offer.capabilities or {}).get("voice", True)),
            sms=bool((offer.capabilities or {}).get("sms") or (offer.capabilities or {}).get("SMS")),
        )
        for offer in offers
    ]


# --- buy ----------------------------------------------------------------------------------


def number_buy(
    *, organization, actor, phone_number: str = "", area_code: str = "", country: str = "US"
) -> PhoneNumber:
    """Buy ``phone_number`` (E.164, from a search), or any number in ``area_code``, pointed at our webhooks."""
    principal = _require(actor, organization)
    _check_may_buy(organization)
    request: dict = webhook_settings()
    if phone_number:
        try:
            request["phone_number"] = parse_e164(phone_number)
        except InvalidPhoneNumber as error:
            raise ApplicationError(str(error), code="invalid_number", field="phone_number") from None
    elif area_code:
        if not _AREA_CODE.match(area_code.strip()):
            raise ApplicationError("An area code is 2 to 5 digits, e.g. 415.", field="area_code")
        if (country or "US").strip().upper() not in ("US", "CA"):
            raise ApplicationError(
                "Buying by area code works for US and Canadian numbers: search and pick a number instead.",
                field="area_code",
            )
        request["area_code"] = area_code.strip()
    else:
        raise ApplicationError("Pick a number from the search results, or give an area code.", field="phone_number")
    if "phone_number" in request and _held(request["phone_number"]):
        raise ApplicationError(
            f"{request['phone_number']} is already in use on JagCall.", code="number_taken", field="phone_number",
            status=409,
        )  # fmt: skip
    _check_number_limit(organization)
    access = _access(organization, "buy the number")
    try:
        with provider_operation("twilio", "buy number"):
            bought = access.client.api.v2010.accounts(access.account_sid).incoming_phone_numbers.create(**request)
    except ProviderError as error:
        raise _twilio_error(error, f"buy {request.get('phone_number') or 'a number'}") from None
    try:
        return _record_number(
            organization=organization, principal=principal, access=access, bought=bought,
            source=NumberSource.PURCHASED, action="phone_number.purchased",
        )  # fmt: skip
    except (DatabaseError, ApplicationError) as error:
        # [!!] Never leave a number at Twilio (and billed) that JagCall does not know about.
        _delete_at_twilio(access, bought.sid)
        if isinstance(error, ApplicationError):
            raise
        logger.exception("phone number %s bought but not stored; released at Twilio again", bought.sid)
        raise ApplicationError(
            f"{bought.phone_number} could not be saved, so it was released at Twilio again: try once more.",
            code="not_stored", status=503,
        ) from None  # fmt: skip


def _held(number: str) -> bool:
    queryset = PhoneNumber.objects.unscoped("a line is held by one organization at a time, across organizations")
    return queryset.filter(number=number, released_at__isnull=True).exists()


def _capabilities(resource) -> tuple[bool, bool]:
    capabilities = resource.capabilities or {}
    voice = capabilities.get("voice", True)
    sms = capabilities.get("sms", capabilities.get("SMS", False))
    return bool(voice), bool(sms)


@transaction.atomic
def _record_number(*, organization, principal, access: TwilioAccess, bought, source: str, action: str) -> PhoneNumber:
    # [!!] Counted again under the organization's lock: of two purchases at once, one may take the last place.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    _check_number_limit(organization, field="twilio_sid" if source == NumberSource.IMPORTED else "phone_number")
    voice, sms = _capabilities(bought)
    number = PhoneNumber(
        organization=organization,
        number=bought.phone_number,
        twilio_sid=bought.sid,
        account_sid=access.account_sid,
        source=source,
        friendly_name=(bought.friendly_name or "")[:64],
        country=region_of(bought.phone_number) or "",
        voice_enabled=voice,
        sms_enabled=sms,
    )
    try:
        with transaction.atomic():
            number.save()
    except IntegrityError:
        raise ApplicationError(
            f"{bought.phone_number} is already in use on JagCall.", code="number_taken", field="phone_number",
            status=409,
        ) from None  # fmt: skip
    audit_record(
        action=action,
        organization=organization,
        actor=principal,
        resource=number,
        changes={"number": {"before": None, "after": number.number}},
        metadata={"twilio_sid": number.twilio_sid, "account_sid": number.account_sid, "source": source},
    )
    return number


def _delete_at_twilio(access: TwilioAccess, sid: str) -> None:
    try:
        with provider_operation("twilio", "release number"):
            access.client.api.v2010.accounts(access.account_sid).incoming_phone_numbers(sid).delete()
    except ProviderError:
        logger.error("phone number %s could not be released at Twilio: release it in the Twilio console", sid)


# --- assign -------------------------------------------------------------------------------


@transaction.atomic
def number_assign(*, organization, actor, number: PhoneNumber, agent: Agent | None) -> PhoneNumber:
    """Let ``agent`` answer calls to ``number`` (None: nobody answers; callers hear that the line is not in use)."""
    principal = _require(actor, organization)
    number = PhoneNumber.objects.for_org(organization).select_for_update().get(id=number.id)
    if number.released_at is not None:
        raise ApplicationError(f"{number.number} was released.", code="released", status=404)
    if agent is not None and agent.organization_id != organization.id:
        raise ApplicationError("No such agent.", code="not_found", field="agent_id", status=404)
    before = number.agent
    if (before.id if before else None) == (agent.id if agent else None):
        return number
    number.agent = agent
    number.save(update_fields=["agent"])
    audit_record(
        action="phone_number.assigned" if agent else "phone_number.unassigned",
        organization=organization,
        actor=principal,
        resource=number,
        changes={
            "agent": {
                "before": str(before.id) if before else None,
                "after": str(agent.id) if agent else None,
            }
        },
        metadata={"number": number.number, "agent_name": agent.name if agent else (before.name if before else None)},
    )
    return number


# --- release ------------------------------------------------------------------------------


def number_release(*, organization, actor, number: PhoneNumber) -> PhoneNumber:
    """Give a number up: a bought one is released at Twilio (deleted there); an imported one stays in the
    organization's own Twilio account with our webhooks removed. Either way it no longer answers here."""
    principal = _require(actor, organization)
    if number.released_at is not None:
        raise ApplicationError(f"{number.number} was already released.", code="released", status=404)
    access = twilio_for_account(organization, number.account_sid)
    resource = access.client.api.v2010.accounts(access.account_sid).incoming_phone_numbers(number.twilio_sid)
    try:
        with provider_operation("twilio", "release number"):
            if number.source == NumberSource.IMPORTED:
                resource.update(voice_url="", status_callback="", sms_url="")
            else:
                resource.delete()
    except ProviderError as error:
        if error.status != 404:  # gone at Twilio already: release it here too
            raise _twilio_error(error, f"release {number.number}") from None
    return _mark_released(organization=organization, principal=principal, number=number)


@transaction.atomic
def _mark_released(*, organization, principal, number: PhoneNumber) -> PhoneNumber:
    number = PhoneNumber.objects.for_org(organization).select_for_update().get(id=number.id)
    agent = number.agent
    number.released_at = timezone.now()
    number.agent = None
    number.save(update_fields=["released_at", "agent"])
    audit_record(
        action="phone_number.released",
        organization=organization,
        actor=principal,
        resource=number,
        changes={
            "released_at": {"before": None, "after": number.released_at.isoformat()},
            **({"agent": {"before": str(agent.id), "after": None}} if agent else {}),
        },
        metadata={"number": number.number, "twilio_sid": number.twilio_sid, "source": number.source},
    )
    return number


# --- import from the organization's own Twilio account ---------------------------------------------


def _own_access(organization, doing: str) -> TwilioAccess:
    access = _access(organization, doing)
    if not access.own:
        raise ApplicationError(
            "Importing needs your own Twilio account: connect it under Settings, Provider accounts.",
            code="no_own_account", status=409,
        )  # fmt: skip
    return access


def number_importable_list(*, organization, actor) -> list[dict]:
    """The numbers of the organization's own Twilio account that are not on JagCall yet."""
    _require(actor, organization)
    access = _own_access(organization, "list your Twilio numbers")
    try:
        with provider_operation("twilio", "list numbers"):
            numbers = access.client.api.v2010.accounts(access.account_sid).incoming_phone_numbers.list(limit=200)
    except ProviderError as error:
        raise _twilio_error(error, "list your Twilio numbers") from None
    held = set(
        PhoneNumber.objects.unscoped("numbers already held on JagCall, by anyone, cannot be imported again")
        .filter(twilio_sid__in=[n.sid for n in numbers], released_at__isnull=True)
        .values_list("twilio_sid", flat=True)
    )
    return [
        {"twilio_sid": n.sid, "phone_number": n.phone_number, "friendly_name": n.friendly_name or n.phone_number,
         "voice_url": n.voice_url or ""}
        for n in numbers
        if n.sid not in held
    ]  # fmt: skip


def number_import(*, organization, actor, twilio_sid: str) -> PhoneNumber:
    """Bring a number of the organization's own Twilio account to JagCall: its voice, status and SMS hooks point
    here."""
    principal = _require(actor, organization)
    twilio_sid = (twilio_sid or "").strip()
    if not _NUMBER_SID.match(twilio_sid):
        raise ApplicationError(
            "A Twilio number SID is PN followed by 32 hexadecimal characters.", field="twilio_sid"
        )
    if PhoneNumber.objects.unscoped("a line is held by one organization at a time").filter(
        twilio_sid=twilio_sid, released_at__isnull=True
    ).exists():
        raise ApplicationError("This number is already on JagCall.", code="number_taken", field="twilio_sid", status=409)
    _check_number_limit(organization, field="twilio_sid")
    access = _own_access(organization, "import the number")
    resource = access.client.api.v2010.accounts(access.account_sid).incoming_phone_numbers(twilio_sid)
    try:
        with provider_operation("twilio", "import number"):
            previous = resource.fetch()
            # [!!] A TwiML application set on the number would win over our URLs at Twilio (calls and texts,
            # STOP included, would never reach us): the number is ours from now on, so it is cleared.
            updated = resource.update(**webhook_settings(), voice_application_sid="", sms_application_sid="")
    except ProviderError as error:
        # The SDK's list() reports a 404 page as "Unable to fetch page" with the HTTP status in its text.
        if error.status == 404 or "HTTP 404" in error.message:
            raise ApplicationError(
                f"Your Twilio account {access.account_sid} has no number {twilio_sid}.", code="not_found",
                field="twilio_sid", status=404,
            ) from None  # fmt: skip
        raise _twilio_error(error, "import the number") from None
    try:
        return _record_number(
            organization=organization, principal=principal, access=access, bought=updated,
            source=NumberSource.IMPORTED, action="phone_number.imported",
        )  # fmt: skip
    except (DatabaseError, ApplicationError) as error:
        # Put the number's hooks back as they were: it stays the customer's, untouched.
        try:
            with provider_operation("twilio", "restore number"):
                resource.update(
                    voice_url=previous.voice_url or "", status_callback=previous.status_callback or "",
                    sms_url=previous.sms_url or "", voice_application_sid=previous.voice_application_sid or "",
                    sms_application_sid=previous.sms_application_sid or "",
                )  # fmt: skip
        except ProviderError:
            logger.error("number %s: its previous webhooks could not be restored at Twilio", twilio_sid)
        if isinstance(error, ApplicationError):
            raise
        logger.exception("phone number %s imported but not stored; its webhooks were restored", twilio_sid)
        raise ApplicationError(
            "The number could not be saved, so it was left as it was in your Twilio account: try once more.",
            code="not_stored", status=503,
        ) from None  # fmt: skip
