"""A2P 10DLC: whether US carriers let one of our numbers text US phones.

US carriers only carry application-to-person texts from a US local number (a
"10-digit long code") registered for A2P 10DLC: at Twilio the number is a sender
of a Messaging Service whose US A2P campaign is VERIFIED. Texts from an
unregistered one are blocked (Twilio's error 30034) or filtered.

``a2p_status_refresh`` asks Twilio, through the SDK, which Messaging Service holds
the number and what its campaign's status is, and keeps the answer in
``NumberMessaging`` (a2p_status, a2p_campaign_sid, a2p_checked_at):

- not_required: not a US long code (another country, Canada included, or a
  toll-free 8XX number, which has a verification of its own); Twilio is not asked;
- unregistered: no Messaging Service holds the number, or its service has no campaign;
- pending: the campaign is PENDING or IN_PROGRESS;
- verified: the campaign is VERIFIED;
- failed: the campaign is FAILED (or in any other state that does not let it send).

When Twilio cannot be asked, an ApplicationError says so and the stored status
stays as it was. ``a2p_warning`` is the sentence shown before sending from a US
long code that is not verified.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from accounts.principals import Principal, as_principal
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.phone import region_of
from jagcall.kernel.providers import ProviderError, provider_operation, twilio_client
from messaging.models import A2PStatus, NumberMessaging
from messaging.selectors import number_messaging
from telephony.models import PhoneNumber
from telephony.services.twilio_accounts import auth_token_for_account_sid, twilio_for_account

logger = logging.getLogger("jagcall.messaging")

OPERATION = "read A2P registration"
# North American toll-free area codes: verified as toll-free numbers, never registered as 10DLC.
TOLL_FREE_AREA_CODES = frozenset({"800", "833", "844", "855", "866", "877", "888"})
# Twilio's campaign_status -> ours. Any other state (a campaign suspended or expired) cannot send: failed.
CAMPAIGN_STATUSES = {
    "PENDING": A2PStatus.PENDING,
    "IN_PROGRESS": A2PStatus.PENDING,
    "VERIFIED": A2PStatus.VERIFIED,
    "FAILED": A2PStatus.FAILED,
}
WHERE_TO_REGISTER = "Register it for A2P 10DLC in Twilio (Messaging > Regulatory compliance)"
WHERE_TO_CHECK = "Messages > Settings"


def needs_a2p(number: str) -> bool:
    """Is ``number`` (E.164) a US 10-digit long code, the kind of number A2P 10DLC is about?"""
    if region_of(number) != "US":
        return False
    return number.removeprefix("+1")[:3] not in TOLL_FREE_AREA_CODES


# --- asking Twilio ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Registration:
    status: str
    campaign_sid: str = ""
    twilio_status: str = ""  # the campaign's status as Twilio gave it
    errors: list = field(default_factory=list)


def _messaging_client(organization, account_sid: str):
    """An SDK client that reads the Messaging Services of ``account_sid`` (one of the organization's accounts).

    [!!] Messaging v1 (messaging.twilio.com) serves the account whose credentials sign the request: the
    platform's credentials open a subaccount's numbers and calls (REST 2010) but list only the platform's own
    Messaging Services. A subaccount's are read with its own SID and auth token.
    """
    access = twilio_for_account(organization, account_sid)  # refuses an account that is not the organization's
    if access.own:
        return access.client
    token = auth_token_for_account_sid(access.account_sid)
    if not token:
        raise ApplicationError(
            f"JagCall no longer holds the credentials of the Twilio account {access.account_sid}.",
            code="account_disconnected", status=409,
        )  # fmt: skip
    return twilio_client(access.account_sid, token)


def _registration_at_twilio(client, phone_number: PhoneNumber) -> _Registration:
    """Which Messaging Service holds the number, and its US A2P campaign (one per service at most)."""
    v1 = client.messaging.v1
    with provider_operation("twilio", OPERATION):
        for service in v1.services.stream():
            senders = v1.services(service.sid).phone_numbers.stream()
            if not any(sender.sid == phone_number.twilio_sid for sender in senders):
                continue
            campaigns = v1.services(service.sid).us_app_to_person.list(limit=1)
            if not campaigns:
                return _Registration(A2PStatus.UNREGISTERED)
            campaign = campaigns[0]
            twilio_status = str(campaign.campaign_status or "").upper()
            status = CAMPAIGN_STATUSES.get(twilio_status, A2PStatus.FAILED)
            return _Registration(status, campaign.sid or "", twilio_status, list(campaign.errors or []))
    return _Registration(A2PStatus.UNREGISTERED)


def _provider_refusal(error: ProviderError, phone_number: PhoneNumber) -> ApplicationError:
    hint = error.message
    if error.status in (401, 403) or error.code == 20003:
        hint = "Twilio refused the account's credentials: check them under Settings, Provider accounts"
    return ApplicationError(
        f"Could not check the A2P 10DLC registration of {phone_number.number} with Twilio: {hint}. "
        "Its status was left as it was.",
        code="provider_unavailable" if error.retryable else "provider_refused",
        status=503 if error.retryable else 400,
    )


# --- the service ------------------------------------------------------------------------------


def a2p_status_refresh(*, phone_number: PhoneNumber, actor=None) -> NumberMessaging:
    """Ask Twilio for the number's A2P 10DLC registration and keep it in its ``NumberMessaging``.

    ``actor``: who asked (a member pressing "Check now"); None for the platform's periodic check.
    A member's check is audited (``phone_number.a2p_checked``), a periodic one only when the status changed.
    ApplicationError when the number was released or Twilio cannot be asked; nothing is written then.
    """
    organization = phone_number.organization
    principal = as_principal(actor, organization) if actor is not None else Principal.system(
        "a2p_status_refresh", organization=organization
    )
    if phone_number.released_at is not None:
        raise ApplicationError(f"{phone_number.number} was released.", code="released", status=404)
    if needs_a2p(phone_number.number):
        client = _messaging_client(organization, phone_number.account_sid)
        try:
            registration = _registration_at_twilio(client, phone_number)
        except ProviderError as error:
            logger.warning("A2P check of number %s failed: %s", phone_number.pk, error.message)
            raise _provider_refusal(error, phone_number) from None
    else:
        registration = _Registration(A2PStatus.NOT_REQUIRED)
    return _store(phone_number=phone_number, principal=principal, asked=actor is not None, registration=registration)


@transaction.atomic
def _store(*, phone_number: PhoneNumber, principal, asked: bool, registration: _Registration) -> NumberMessaging:
    organization = phone_number.organization
    row, _created = NumberMessaging.objects.get_or_create(organization=organization, phone_number=phone_number)
    row = NumberMessaging.objects.for_org(organization).select_for_update().get(pk=row.pk)
    before = {"a2p_status": row.a2p_status, "a2p_campaign_sid": row.a2p_campaign_sid}
    row.a2p_status, row.a2p_campaign_sid = registration.status, registration.campaign_sid
    row.a2p_checked_at = timezone.now()
    row.save(update_fields=["a2p_status", "a2p_campaign_sid", "a2p_checked_at"])
    after = {"a2p_status": row.a2p_status, "a2p_campaign_sid": row.a2p_campaign_sid}
    changes = {name: {"before": before[name], "after": after[name]} for name in before if before[name] != after[name]}
    if changes or asked:
        metadata = {"number": phone_number.number}
        if registration.twilio_status:
            metadata["campaign_status"] = registration.twilio_status
        if registration.errors:
            metadata["campaign_errors"] = registration.errors[:5]
        audit_record(
            action="phone_number.a2p_checked", organization=organization, actor=principal, resource=phone_number,
            changes=changes, metadata=metadata,
        )  # fmt: skip
    return row


@dataclass
class A2PRefreshOutcome:
    """What ``a2p_status_refresh_numbers`` did: the rows it refreshed, and the numbers it could not check."""

    refreshed: list[NumberMessaging] = field(default_factory=list)
    failed: dict[str, ApplicationError] = field(default_factory=dict)  # E.164 -> why

    @property
    def retryable(self) -> bool:
        return any(error.status == 503 for error in self.failed.values())


def a2p_status_refresh_numbers(*, organization) -> A2PRefreshOutcome:
    """Refresh the A2P 10DLC status of each held, SMS-capable number of the organization (the periodic check).

    One number that cannot be checked does not stop the others.
    """
    outcome = A2PRefreshOutcome()
    numbers = PhoneNumber.objects.for_org(organization).filter(released_at__isnull=True, sms_enabled=True)
    for phone_number in numbers.select_related("organization").order_by("number"):
        try:
            outcome.refreshed.append(a2p_status_refresh(phone_number=phone_number))
        except ApplicationError as error:
            outcome.failed[phone_number.number] = error
    return outcome


def a2p_organizations_to_check() -> list:
    """The ids of the organizations that hold a number able to text (the periodic check visits each)."""
    reason = "periodic A2P 10DLC check: every organization holding a number that texts"
    held = PhoneNumber.objects.unscoped(reason).filter(released_at__isnull=True, sms_enabled=True)
    return list(held.values_list("organization_id", flat=True).distinct().order_by("organization_id"))


# --- what a sender is told --------------------------------------------------------------------


def a2p_warning(phone_number: PhoneNumber) -> str | None:
    """The sentence to show before sending from ``phone_number``: None unless it is a US long code whose
    A2P 10DLC registration is not known to be verified."""
    if not needs_a2p(phone_number.number):
        return None
    row = number_messaging(phone_number)
    status = row.a2p_status if row is not None else A2PStatus.UNKNOWN
    number = phone_number.number
    if status in (A2PStatus.VERIFIED, A2PStatus.NOT_REQUIRED):
        return None
    if status == A2PStatus.PENDING:
        return (
            f"{number}'s A2P 10DLC campaign is still being reviewed: until it is verified, US carriers may block "
            f"or filter its texts. Follow the review in Twilio (Messaging > Regulatory compliance), then press "
            f"“Check now” under {WHERE_TO_CHECK}."
        )
    if status == A2PStatus.FAILED:
        return (
            f"{number}'s A2P 10DLC registration failed, so US carriers block its texts. Fix the campaign in Twilio "
            f"(Messaging > Regulatory compliance) and submit it again, then press “Check now” under {WHERE_TO_CHECK}."
        )
    if status == A2PStatus.UNREGISTERED:
        return (
            f"{number} is not registered for A2P 10DLC, so US carriers block or filter its texts. "
            f"{WHERE_TO_REGISTER}: add it to a Messaging Service with a US A2P campaign, then press “Check now” "
            f"under {WHERE_TO_CHECK}."
        )
    return (
        f"{number}'s A2P 10DLC registration has not been checked yet; US carriers block texts from unregistered "
        f"numbers. {WHERE_TO_REGISTER} if it is not, and press “Check now” under {WHERE_TO_CHECK}."
    )
