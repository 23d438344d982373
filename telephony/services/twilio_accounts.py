"""Which Twilio account an organization works in, and whose token signs a callback.

- An organization that connected its own Twilio account (integrations'
  ProviderCredential) works in it, with its credentials.
- Otherwise it works in its own subaccount of the platform's account,
  created on first use (``TwilioSubaccount``), so numbers, calls and
  recordings of one organization are separated at Twilio too. The platform's
  credentials act on the subaccount; the subaccount's own auth token is kept
  (encrypted) because Twilio signs the subaccount's callbacks with it.

In simulated mode (settings.SIMULATED_PROVIDERS) the same code runs against
the Twilio stand-in: the client builders of jagcall.kernel.providers point
there.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import Organization
from integrations.models import Provider, ProviderCredential
from integrations.selectors import credential_get
from integrations.services import credential_changing
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import (
    SIMULATED_CREDENTIALS,
    ProviderError,
    provider_operation,
    simulated_mode,
    twilio_client,
)
from jagcall.kernel.providers.twilio_sids import ACCOUNT, twilio_sid_valid
from jagcall.kernel.redis import cache_redis
from telephony.models import PhoneNumber, TwilioSubaccount

if TYPE_CHECKING:
    import twilio.rest

logger = logging.getLogger("jagcall.telephony")

_LOOKUP_REASON = "webhook: a signed callback's AccountSid names the account and its organization"
# [!!] Only Twilio's account SIDs are looked up (twilio_sids.py): a malformed AccountSid (a NUL byte, say) must
# end as an invalid signature (403, counted), never as a failed lookup, which the webhook base answers with 503.


@dataclass(frozen=True)
class TwilioAccess:
    """A REST client acting in ``account_sid``; ``own``: the organization's own account (not a subaccount)."""

    client: twilio.rest.Client
    account_sid: str
    own: bool = False


def _platform_credentials() -> tuple[str, str]:
    if settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN:
        return settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN
    if simulated_mode():
        return SIMULATED_CREDENTIALS["twilio"]
    return "", ""


def _own_access(credential: ProviderCredential) -> TwilioAccess:
    values = credential.values
    client = twilio_client(values["account_sid"], values["auth_token"])
    return TwilioAccess(client=client, account_sid=values["account_sid"], own=True)


def _subaccount_access(subaccount: TwilioSubaccount) -> TwilioAccess:
    # The platform's (parent) credentials open the subaccount.
    return TwilioAccess(client=twilio_client(subaccount_sid=subaccount.account_sid), account_sid=subaccount.account_sid)


def twilio_for(organization) -> TwilioAccess:
    """The organization's Twilio account: its own when connected, else its platform subaccount (made now if new).

    Raises ProviderError when Twilio cannot be reached or refuses to create the subaccount.
    """
    credential = credential_get(organization=organization, provider=Provider.TWILIO)
    if credential is not None:
        return _own_access(credential)
    return _subaccount_access(subaccount_ensure(organization=organization))


def twilio_for_account(organization, account_sid: str) -> TwilioAccess:
    """A client acting in ``account_sid``, which must be the organization's subaccount or own account.

    A number is managed in the account that holds it, even after the organization
    switched between its own account and JagCall's.
    """
    credential = credential_get(organization=organization, provider=Provider.TWILIO)
    if credential is not None and credential.account_sid == account_sid:
        return _own_access(credential)
    subaccount = TwilioSubaccount.objects.for_org(organization).filter(account_sid=account_sid).first()
    if subaccount is not None:
        return _subaccount_access(subaccount)
    raise ApplicationError(
        f"This number lives in the Twilio account {account_sid}, which is no longer connected: "
        "connect it again under Settings, Provider accounts.",
        code="account_disconnected",
        status=409,
    )


def subaccount_ensure(*, organization) -> TwilioSubaccount:
    """The organization's platform subaccount, created at Twilio on first use.

    [!!] Exactly one per organization, also under concurrent first calls: the
    organization's row is locked while the subaccount is looked up and, if
    missing, created at Twilio and stored; a second caller waits and then finds
    it. (The unique constraint backs this up.) Should storing fail after Twilio
    made the subaccount, it is closed at Twilio again.
    """
    existing = TwilioSubaccount.objects.for_org(organization).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
        existing = TwilioSubaccount.objects.for_org(organization).first()
        if existing is not None:
            return existing
        friendly_name = f"JagCall {organization.slug}"[:64]
        with provider_operation("twilio", "create subaccount"):
            created = twilio_client().api.v2010.accounts.create(friendly_name=friendly_name)
        try:
            with transaction.atomic():
                subaccount = TwilioSubaccount(
                    organization=organization,
                    account_sid=created.sid,
                    auth_token=created.auth_token,
                    friendly_name=friendly_name,
                )
                subaccount.save()
        except IntegrityError:
            _close_subaccount(created.sid)
            raise
        logger.info("twilio subaccount %s created for organization %s", created.sid, organization.pk)
        return subaccount


def _close_subaccount(account_sid: str) -> None:
    try:
        with provider_operation("twilio", "close subaccount"):
            twilio_client().api.v2010.accounts(account_sid).update(status="closed")
    except ProviderError:
        logger.error("twilio subaccount %s was created but not stored and could not be closed", account_sid)


# The auth tokens that sign callbacks, decrypted, kept in this process for a short while: the voice webhook
# needs one for every call, and reading and decrypting it each time is a good part of the request's cost.
# [!!] A change is effective at once everywhere: saving or deleting a subaccount or an organization's own Twilio
# credential empties this process's cache (now, and again when the change commits, so a request that read the old
# row meanwhile cannot keep it) and, on commit, moves a generation counter in Redis that every process compares
# with its entries' before using one (one GET per lookup). When Redis cannot be reached the cache is not used at
# all: every lookup reads the database. Only accounts that exist are kept (a flood of unknown AccountSids cannot
# grow it), at most AUTH_TOKEN_CACHE_SIZE, each at most AUTH_TOKEN_CACHE_SECONDS.
AUTH_TOKEN_CACHE_SECONDS = 60
AUTH_TOKEN_CACHE_SIZE = 1000
_token_cache: dict[str, tuple[float, str, str]] = {}  # account SID -> (expires, token, shared generation)
_token_cache_lock = threading.Lock()
_token_cache_generation = 0
_SHARED_GENERATION_KEY = "jc:telephony:auth-token-generation"


def _shared_generation() -> str | None:
    """The processes' common generation of auth tokens, or None when Redis cannot say (then nothing is cached)."""
    try:
        return str(cache_redis(decode_responses=True).get(_SHARED_GENERATION_KEY) or "0")
    except redis.RedisError:
        logger.warning("auth token cache: Redis is unreachable, so tokens are read from the database", exc_info=True)
        return None


def _shared_generation_move() -> None:
    try:
        cache_redis().incr(_SHARED_GENERATION_KEY)
    except redis.RedisError:  # other processes keep their entries at most AUTH_TOKEN_CACHE_SECONDS
        logger.error("auth token cache: Redis is unreachable, other processes may use a changed token for up to %s s",
                     AUTH_TOKEN_CACHE_SECONDS, exc_info=True)  # fmt: skip


def auth_token_cache_clear() -> None:
    """Forget every cached auth token (a credential changed)."""
    global _token_cache_generation
    with _token_cache_lock:
        _token_cache_generation += 1
        _token_cache.clear()


def _auth_token_stored(account_sid: str) -> str | None:
    subaccount = TwilioSubaccount.objects.unscoped(_LOOKUP_REASON).filter(account_sid=account_sid).first()
    if subaccount is not None:
        return subaccount.auth_token
    credential = (
        ProviderCredential.objects.unscoped(_LOOKUP_REASON)
        .filter(provider=Provider.TWILIO, account_sid=account_sid)
        .first()
    )
    if credential is not None:
        return credential.values.get("auth_token")
    return None


def auth_token_for_account_sid(account_sid: str) -> str | None:
    """The auth token Twilio signs callbacks of ``account_sid`` with, or None for an account that is not ours.

    The platform's account, an organization's subaccount, or an organization's own connected account.
    """
    if not account_sid:
        return None
    platform_sid, platform_token = _platform_credentials()
    if platform_sid and account_sid == platform_sid:
        return platform_token
    if not twilio_sid_valid(account_sid, ACCOUNT):
        return None
    now = time.monotonic()
    shared = _shared_generation()
    cached = _token_cache.get(account_sid)
    if shared is not None and cached is not None and cached[0] > now and cached[2] == shared:
        return cached[1]
    generation = _token_cache_generation
    token = _auth_token_stored(account_sid)
    if token and shared is not None:
        with _token_cache_lock:
            # A change while the row was read: what was read may be the old token, so it is not kept.
            if generation == _token_cache_generation:
                if len(_token_cache) >= AUTH_TOKEN_CACHE_SIZE:
                    _token_cache.clear()
                _token_cache[account_sid] = (now + AUTH_TOKEN_CACHE_SECONDS, token, shared)
    else:
        _token_cache.pop(account_sid, None)
    return token


@receiver(post_save, sender=TwilioSubaccount, dispatch_uid="telephony.auth_tokens_subaccount_saved")
@receiver(post_delete, sender=TwilioSubaccount, dispatch_uid="telephony.auth_tokens_subaccount_deleted")
@receiver(post_save, sender=ProviderCredential, dispatch_uid="telephony.auth_tokens_credential_saved")
@receiver(post_delete, sender=ProviderCredential, dispatch_uid="telephony.auth_tokens_credential_deleted")
def _auth_tokens_changed(sender, **kwargs):
    auth_token_cache_clear()
    # Again once the change is visible to other connections: a lookup between the two read the old row. Other
    # processes learn of it through the shared generation, moved once the new row can be read.
    transaction.on_commit(auth_token_cache_clear, robust=True)
    transaction.on_commit(_shared_generation_move, robust=True)


def organization_for_account_sid(account_sid: str):
    """The organization whose subaccount or own account ``account_sid`` is, or None (the platform's, or unknown)."""
    if not account_sid:
        return None
    subaccount = (
        TwilioSubaccount.objects.unscoped(_LOOKUP_REASON)
        .filter(account_sid=account_sid)
        .select_related("organization")
        .first()
    )
    if subaccount is not None:
        return subaccount.organization
    credential = (
        ProviderCredential.objects.unscoped(_LOOKUP_REASON)
        .filter(provider=Provider.TWILIO, account_sid=account_sid)
        .select_related("organization")
        .first()
    )
    return credential.organization if credential is not None else None


@receiver(credential_changing, dispatch_uid="telephony.numbers_keep_their_twilio_account")
def _numbers_keep_their_account(sender, *, organization, provider, account_sid, new_account_sid, **kwargs):
    """[!!] An own Twilio account that still holds the organization's numbers cannot be disconnected or swapped:
    the numbers would be left at Twilio with nobody able to release them or check their callbacks."""
    if provider != Provider.TWILIO or not account_sid:
        return
    held = PhoneNumber.objects.for_org(organization).filter(account_sid=account_sid, released_at__isnull=True).count()
    if held:
        what = "disconnect it" if new_account_sid is None else "switch to another account"
        raise ApplicationError(
            f"{held} phone number{'s' if held != 1 else ''} of this organization live in the Twilio account "
            f"{account_sid}: release or remove {'them' if held != 1 else 'it'} under Phone numbers before you {what}.",
            code="numbers_in_account",
            status=409,
        )


def twilio_for_import_available(organization) -> bool:
    """Has the organization connected its own Twilio account (whose numbers it may import)?"""
    return credential_get(organization=organization, provider=Provider.TWILIO) is not None
