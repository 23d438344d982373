"""Browser calling: members place and take calls in the portal's softphone (the Twilio Voice JS SDK).

- ``browser_token_issue``: a Twilio Access Token with a Voice grant for one
  member of one organization. [!!] Its lifetime is exactly
  ``BROWSER_TOKEN_TTL_SECONDS`` (3600, claim C14): ``nbf`` (and ``iat``) is
  the moment of issue, ``exp`` that moment plus 3600, from one clock reading.
  Its identity names the user and the organization and nothing else
  (``u<user id>_o<organization id>``: no email reaches Twilio). It is signed
  with an API key of the organization's own Twilio account (its platform
  subaccount, or the account it connected), and its grant opens only the
  organization's own TwiML application.
- ``browser_calling_app_ensure``: that TwiML application and API key, made at
  Twilio on first use (one per organization and account; stored encrypted).
- ``browser_call_connect``: what the ``browser-voice`` hook answers when a
  softphone places a call. [!!] A token stays valid for its hour whatever
  happens to the member, so the hook checks again, on every call, that the
  person is still a member allowed to place calls, runs the pre-dial gate,
  and only then dials, from one of the organization's own voice numbers.

Auditing: setting browser calling up, and every call placed, are audit
events. Issuing a token is not an action that changes anything, and the
softphone renews its token every hour while it is open: each issue is one
structured log line (``jagcall.telephony`` logger: organization, user,
identity, key, expiry), and the audit log gets one ``browser_calling.token_issued``
per member and organization per token lifetime (the first token of each
hour), so who could place calls, and when, is in the audit log without a
flood of renewals.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.cache import cache
from django.db import connection, transaction
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant
from twilio.twiml.voice_response import VoiceResponse

from accounts.access import AccessDenied, member_access
from accounts.models import User
from accounts.permissions import has_permission
from accounts.principals import Principal
from compliance.services import audit_record
from jagcall.kernel.providers import ProviderError, provider_operation
from telephony.models import BrowserCallingApp, Call, CallDirection, CallEvent
from telephony.selectors.browser import browser_caller_number_get, browser_calling_app_get
from telephony.services.calls import call_event_record, call_publish
from telephony.services.urls import public_url

logger = logging.getLogger("jagcall.telephony")

BROWSER_TOKEN_TTL_SECONDS = 3600
# The permission a member needs to hold a token and to place calls with it.
BROWSER_CALLING_PERMISSION = "product.use"
# Twilio client names: letters, digits and underscores keep them valid everywhere Twilio uses them.
_IDENTITY = re.compile(r"^u(?P<user>[0-9a-f]{32})_o(?P<organization>[0-9a-f]{32})$")
_CLIENT_PREFIX = "client:"
SOFTPHONE_NAME = "JagCall softphone"
# The softphone's custom parameter naming the caller number it chose.
CALLER_ID_PARAM = "CallerId"
STATUS_CALLBACK_EVENTS = "initiated ringing answered completed"
# The timeline step that ties a placed call to the browser leg that asked for it.
BROWSER_DIALED = "browser.dialed"


class BrowserCallRefused(Exception):
    """A call from the softphone that is not placed; ``message`` is spoken to the member."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BrowserToken:
    token: str
    identity: str
    expires_at: datetime


# --- identity -----------------------------------------------------------------------------------


def browser_identity(*, user, organization) -> str:
    """The softphone's Twilio client name for ``user`` in ``organization`` (opaque ids, no personal data)."""
    return f"u{uuid.UUID(str(user.pk)).hex}_o{uuid.UUID(str(organization.pk)).hex}"


def browser_identity_parse(value: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(user id, organization id) of an identity or of ``client:<identity>``; None for anything else."""
    value = (value or "").strip()
    if value.startswith(_CLIENT_PREFIX):
        value = value[len(_CLIENT_PREFIX) :]
    match = _IDENTITY.fullmatch(value)
    if match is None:
        return None
    return uuid.UUID(match["user"]), uuid.UUID(match["organization"])


# --- the organization's softphone application at Twilio ---------------------------------------


def browser_calling_app_ensure(*, organization, actor) -> BrowserCallingApp:
    """The organization's TwiML application and signing key in its current Twilio account, made on first use.

    [!!] One per organization, also under concurrent first requests: a
    transaction-scoped advisory lock on the organization serializes the
    creation; a second caller waits, then finds the row. Should the
    organization have moved to another Twilio account (it connected its own),
    a new pair is made there and the old key is deleted at Twilio.
    Raises ProviderError when Twilio cannot be reached or refuses.
    """
    from telephony.services.twilio_accounts import twilio_for

    access = twilio_for(organization)
    existing = browser_calling_app_get(organization=organization)
    if existing is not None and existing.account_sid == access.account_sid:
        return existing
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"telephony.browser:{organization.pk}"])
        existing = browser_calling_app_get(organization=organization)
        if existing is not None and existing.account_sid == access.account_sid:
            return existing
        application_sid = key_sid = None
        try:
            with provider_operation("twilio", "create the softphone's TwiML application"):
                application = access.client.applications.create(
                    friendly_name=f"{SOFTPHONE_NAME} ({organization.slug})"[:64],
                    voice_url=public_url("twilio-hooks:browser-voice"),
                    voice_method="POST",
                )
                application_sid = application.sid
            with provider_operation("twilio", "create the softphone's API key"):
                key = access.client.new_keys.create(friendly_name=f"{SOFTPHONE_NAME} tokens ({organization.slug})"[:64])
                key_sid = key.sid
            with transaction.atomic():
                previous = None
                if existing is None:
                    app = BrowserCallingApp(organization=organization)
                else:
                    app, previous = existing, (existing.account_sid, existing.api_key_sid, existing.twiml_app_sid)
                app.account_sid, app.api_key_sid, app.api_key_secret = access.account_sid, key.sid, key.secret
                app.twiml_app_sid = application.sid
                app.save()
                audit_record(
                    action="browser_calling.set_up",
                    organization=organization,
                    actor=actor,
                    resource=app,
                    metadata={
                        "account_sid": access.account_sid,
                        "twiml_app_sid": application.sid,
                        "api_key_sid": key.sid,
                        "replaces": previous[1] if previous else None,
                    },
                )
        except Exception:
            _delete_at_twilio(access.client, application_sid=application_sid, key_sid=key_sid)
            raise
    if previous is not None:
        transaction.on_commit(lambda: _retire(organization, previous))
    logger.info(
        "browser calling set up for organization %s in %s (application %s, key %s)",
        organization.pk, access.account_sid, app.twiml_app_sid, app.api_key_sid,
    )  # fmt: skip
    return app


def _delete_at_twilio(client, *, application_sid: str | None, key_sid: str | None) -> None:
    """Best effort: what was made at Twilio for a row that was not stored."""
    for what, sid, resource in (("key", key_sid, client.keys), ("application", application_sid, client.applications)):
        if not sid:
            continue
        try:
            with provider_operation("twilio", f"delete the softphone's {what}"):
                resource(sid).delete()
        except ProviderError:
            logger.error("softphone %s %s was created at Twilio but not stored, and could not be deleted", what, sid)


def _retire(organization, previous: tuple[str, str, str]) -> None:
    """Delete the key and application of the organization's former Twilio account (best effort)."""
    from telephony.services.twilio_accounts import twilio_for_account

    account_sid, key_sid, application_sid = previous
    try:
        client = twilio_for_account(organization, account_sid).client
    except Exception:  # the former account is no longer connected: nothing we can reach
        logger.warning("softphone key %s of %s not deleted: the account is no longer connected", key_sid, account_sid)
        return
    _delete_at_twilio(client, application_sid=application_sid, key_sid=key_sid)


# --- tokens ---------------------------------------------------------------------------------------


class _AccessToken(AccessToken):
    """Twilio's access token with ``iat``: the moment of issue, equal to ``nbf`` (RFC 7519 4.1.6)."""

    def _generate_payload(self):
        payload = super()._generate_payload()
        payload["iat"] = self.nbf
        return payload


def browser_token_issue(*, organization, actor: Principal) -> BrowserToken:
    """A one-hour Voice access token for the member ``actor`` in ``organization``.

    [!!] ``actor`` is the member as the portal's access check built it (membership, role, this session's
    sign-in); the token can do no more than that member may: place calls through the organization's own
    TwiML application and receive calls addressed to this identity.
    """
    if actor.user is None or actor.organization is None or actor.organization.pk != organization.pk:
        raise ValueError("a browser-calling token is issued to a member acting in this organization")
    actor.require(BROWSER_CALLING_PERMISSION)
    app = browser_calling_app_ensure(organization=organization, actor=actor)
    identity = browser_identity(user=actor.user, organization=organization)
    issued_at = int(time.time())  # one clock reading: exp - nbf is exactly the lifetime
    token = _AccessToken(
        app.account_sid,
        app.api_key_sid,
        app.api_key_secret,
        identity=identity,
        nbf=issued_at,
        valid_until=issued_at + BROWSER_TOKEN_TTL_SECONDS,
        grants=[VoiceGrant(outgoing_application_sid=app.twiml_app_sid, incoming_allow=True)],
    )
    jwt = token.to_jwt()
    expires_at = datetime.fromtimestamp(issued_at + BROWSER_TOKEN_TTL_SECONDS, tz=UTC)
    logger.info(
        "browser calling token issued for %s in organization %s until %s",
        identity, organization.pk, expires_at.isoformat(),
        extra={"organization_id": str(organization.pk), "user_id": str(actor.user.pk), "identity": identity,
               "api_key_sid": app.api_key_sid, "expires_at": expires_at.isoformat()},
    )  # fmt: skip
    _audit_token_issue(organization=organization, actor=actor, identity=identity, expires_at=expires_at, app=app)
    return BrowserToken(token=jwt, identity=identity, expires_at=expires_at)


def _audit_token_issue(*, organization, actor, identity, expires_at, app) -> None:
    """One audit event per member and organization per token lifetime (the module doc says why)."""
    try:
        first = cache.add(f"telephony:browser-token:{organization.pk}:{actor.user.pk}", 1, BROWSER_TOKEN_TTL_SECONDS)
    except Exception:  # no cache: record every issue rather than none
        logger.warning("browser token audit de-duplication unavailable; recording this issue", exc_info=True)
        first = True
    if first:
        audit_record(
            action="browser_calling.token_issued",
            organization=organization,
            actor=actor,
            resource=app,
            metadata={"identity": identity, "expires_at": expires_at.isoformat(), "ttl_seconds": BROWSER_TOKEN_TTL_SECONDS},
        )


# --- calls placed from the softphone ---------------------------------------------------------------


def browser_organization_for(*, caller: str, account_sid: str):
    """The organization a softphone's call belongs to: the one its identity names, if that organization's
    softphone application lives in ``account_sid`` (the account whose token signed the request); else None."""
    from accounts.access import organization_lookup

    parsed = browser_identity_parse(caller)
    if parsed is None:
        return None
    organization = organization_lookup(parsed[1])
    if organization is None:
        return None
    app = browser_calling_app_get(organization=organization)
    if app is None or not account_sid or app.account_sid != account_sid:
        return None
    return organization


def _member_principal(*, organization, user_id) -> Principal:
    """[!!] The caller must still be an active member allowed to place calls, whatever their token says."""
    user = User.objects.filter(pk=user_id).first()
    try:
        membership = member_access(user, organization)
    except AccessDenied:
        membership = None
    if membership is None or not has_permission(membership.role, BROWSER_CALLING_PERMISSION):
        raise BrowserCallRefused(
            "not_a_member", f"This browser phone may no longer place calls for {organization.name}. Goodbye."
        )
    return Principal.member(membership, via="browser")


@transaction.atomic
def browser_call_connect(
    *, organization, caller: str, to: str, caller_id: str, call_sid: str, account_sid: str, application_sid: str = ""
) -> str:
    """The TwiML for a call a softphone places: dial ``to`` from ``caller_id``, or say why not and hang up.

    Idempotent by ``call_sid``: Twilio's retry of the same request gets the same dial.
    """
    try:
        return _connect(
            organization=organization, caller=caller, to=to, caller_id=caller_id, call_sid=call_sid,
            account_sid=account_sid, application_sid=application_sid,
        )  # fmt: skip
    except BrowserCallRefused as refusal:
        logger.info("browser call %s refused (%s) in organization %s", call_sid, refusal.code, organization.pk)
        return browser_refusal_twiml(refusal.message)


def browser_refusal_twiml(message: str) -> str:
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)


def _connect(*, organization, caller, to, caller_id, call_sid, account_sid, application_sid) -> str:
    from telephony.services.dialing import DialRefused, pre_dial_gate

    parsed = browser_identity_parse(caller)
    if parsed is None or parsed[1] != organization.pk:
        raise BrowserCallRefused("unknown_caller", "This call did not come from a JagCall browser phone. Goodbye.")
    app = browser_calling_app_get(organization=organization)
    if app is None or app.account_sid != account_sid or (application_sid and application_sid != app.twiml_app_sid):
        raise BrowserCallRefused("unknown_application", "This browser phone is not set up for this organization.")
    principal = _member_principal(organization=organization, user_id=parsed[0])

    existing = _placed_call(organization=organization, call_sid=call_sid)
    if existing is not None:
        return _dial_twiml(existing, caller_id=existing.from_number, to=existing.to_number)

    line = browser_caller_number_get(organization=organization, number=(caller_id or "").strip())
    if line is None:
        raise BrowserCallRefused(
            "invalid_caller_id", f"Choose one of {organization.name}'s phone numbers as the caller number, then call again."
        )
    try:
        to_number = pre_dial_gate(organization=organization, to_number=to, from_number=line)
    except DialRefused as refusal:
        raise BrowserCallRefused(refusal.code, f"{refusal.message} Nothing was dialled.") from None

    # twilio_sid stays empty: the status hook sets it to the dialled leg's CallSid (the call that is
    # billed and timed); the browser's own leg is kept on the timeline.
    call = Call(
        organization=organization,
        direction=CallDirection.OUTBOUND,
        phone_number=line,
        from_number=line.number,
        to_number=to_number,
        account_sid=account_sid,
        placed_by=principal.label,
    )
    call.save()
    call_event_record(
        call=call, kind=BROWSER_DIALED, source="browser",
        details={"browser_call_sid": call_sid, "identity": caller.removeprefix(_CLIENT_PREFIX), "from": line.number},
    )  # fmt: skip
    audit_record(
        action="call.placed",
        organization=organization,
        actor=principal,
        resource=call,
        metadata={"via": "browser", "from_number": line.number},
    )
    call_publish(call)
    return _dial_twiml(call, caller_id=line.number, to=to_number)


def _placed_call(*, organization, call_sid: str) -> Call | None:
    """The call already placed for this browser leg (Twilio retried its request), if any."""
    if not call_sid:
        return None
    event = (
        CallEvent.objects.for_org(organization)
        .filter(kind=BROWSER_DIALED, details__browser_call_sid=call_sid)
        .select_related("call")
        .first()
    )
    return event.call if event is not None else None


def _dial_twiml(call: Call, *, caller_id: str, to: str) -> str:
    response = VoiceResponse()
    dial = response.dial(caller_id=caller_id, answer_on_bridge=True)
    dial.number(
        to,
        status_callback=public_url("twilio-hooks:status", call=call.id),
        status_callback_event=STATUS_CALLBACK_EVENTS,
        status_callback_method="POST",
    )
    return str(response)
