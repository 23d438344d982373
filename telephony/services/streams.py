"""The tokens that open a call's media stream (``/ws/telephony/stream/<call id>/``).

Twilio opens the media stream's websocket without a cookie or an Origin: the
token we put in the TwiML (``<Parameter name="token">``) and that Twilio hands
back in the stream's "start" message is what proves the stream is that call's.

[!!] A token is random (256 bits), bound to one call, single-use and valid for
STREAM_TOKEN_TTL_SECONDS; only its SHA-256 is stored, so the database cannot
open a stream. Redeeming is one conditional UPDATE: two sockets presenting the
same token cannot both win.

[!!] A call's media stream opens once. Twilio's signatures carry no time, so a
replayed voice request is answered with a fresh token (Twilio's own retry needs
one); once any token of the call was used, every other is refused
(``already_streamed``). Redeeming locks the call's row first, so two tokens of
one call redeemed at once cannot both open.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from telephony.models import Call, StreamToken

STREAM_TOKEN_TTL_SECONDS = 60
_LOOKUP_REASON = "media stream: the token, not a member, names the call and its organization"


class StreamTokenRefused(Exception):
    """The stream may not open. ``reason``: missing, unknown, other_call, used, expired or already_streamed."""

    def __init__(self, reason: str, *, call: Call | None = None):
        super().__init__(reason)
        self.reason = reason
        self.call = call


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def stream_token_issue(call: Call) -> str:
    """A new token for ``call``'s media stream; the raw value is returned once and never stored."""
    raw = secrets.token_urlsafe(32)
    StreamToken.objects.create(
        organization_id=call.organization_id,
        call=call,
        token_hash=_hash(raw),
        expires_at=timezone.now() + timedelta(seconds=STREAM_TOKEN_TTL_SECONDS),
    )
    return raw


@transaction.atomic
def stream_token_redeem(call_id, raw: str | None) -> Call:
    """The call whose stream ``raw`` opens, marking the token used; else StreamTokenRefused(reason)."""
    if not raw or not isinstance(raw, str) or len(raw) > 200:
        raise StreamTokenRefused("missing")
    token = (
        StreamToken.objects.unscoped(_LOOKUP_REASON)
        .select_related("call", "call__organization", "call__agent")
        .filter(token_hash=_hash(raw))
        .first()
    )
    if token is None:
        raise StreamTokenRefused("unknown")
    call = token.call
    if str(call.id) != str(call_id):
        raise StreamTokenRefused("other_call", call=call)
    # [!!] One stream per call: the call's row is locked while its tokens are checked and one is claimed.
    list(Call.objects.for_org(call.organization).select_for_update().filter(pk=call.pk).values_list("pk", flat=True))
    tokens = StreamToken.objects.for_org(call.organization).filter(call=call)
    if tokens.filter(used_at__isnull=False).exclude(pk=token.pk).exists():
        raise StreamTokenRefused("already_streamed", call=call)
    now = timezone.now()
    claimed = (
        StreamToken.objects.for_org(call.organization)
        .filter(pk=token.pk, used_at__isnull=True, expires_at__gt=now)
        .update(used_at=now)
    )
    if claimed != 1:
        token.refresh_from_db(fields=["used_at"])
        raise StreamTokenRefused("used" if token.used_at else "expired", call=call)
    return call
