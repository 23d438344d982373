"""Helpers of the call tests: a number at the Twilio stand-in answered by an agent, and signed callbacks."""

from __future__ import annotations

from contextlib import contextmanager
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from twilio.request_validator import RequestValidator

from telephony.models import Call, CallDirection, PhoneNumber
from telephony.services.twilio_accounts import auth_token_for_account_sid, twilio_for
from telephony.services.urls import public_url
from telephony.tests.outbound_support import make_agent


def line(organization, number: str = "+14155550123", *, agent: bool = True, record: bool = False) -> PhoneNumber:
    """A number bought at the stand-in in the organization's subaccount, pointing at our hooks, with an agent."""
    access = twilio_for(organization)
    bought = access.client.api.v2010.accounts(access.account_sid).incoming_phone_numbers.create(
        phone_number=number,
        voice_url=public_url("twilio-hooks:voice"),
        status_callback=public_url("twilio-hooks:status"),
    )
    return PhoneNumber.objects.create(
        organization=organization,
        number=bought.phone_number,
        twilio_sid=bought.sid,
        account_sid=access.account_sid,
        country="US",
        agent=make_agent(organization, record_calls=record) if agent else None,
    )


def signed_post(client, name: str, params: dict, *, account_sid: str, query: dict | None = None, headers=None):
    """POST ``params`` to a hook, signed as Twilio signs it with ``account_sid``'s auth token."""
    path = reverse(name) + (f"?{urlencode(query)}" if query else "")
    token = auth_token_for_account_sid(account_sid)
    signature = RequestValidator(token).compute_signature(settings.PUBLIC_BASE_URL.rstrip("/") + path, params)
    return client.post(
        path,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature, **(headers or {})},
    )


def inbound_call(organization, *, number: PhoneNumber, sid: str = "CA" + "1" * 32, status: str = "ringing") -> Call:
    """A call row as the voice hook makes it (for tests of what follows)."""
    return Call.objects.create(
        organization=organization,
        direction=CallDirection.INBOUND,
        agent=number.agent,
        phone_number=number,
        from_number="+14155550100",
        to_number=number.number,
        twilio_sid=sid,
        account_sid=number.account_sid,
        status=status,
    )


def written_rows() -> dict:
    """How many rows a call hook could have written, per table (to show a refused request wrote none)."""
    from compliance.models import AuditEvent
    from jagcall.kernel.webhooks.models import ReceivedWebhook
    from billing.models import UsageEvent
    from telephony.models import CallEvent, CallRecording, StreamToken

    def every(model):
        manager = model.objects
        return manager.unscoped("test") if hasattr(manager, "unscoped") else manager.all()

    models = (Call, CallEvent, StreamToken, CallRecording, UsageEvent, ReceivedWebhook, AuditEvent)
    return {model.__name__: every(model).count() for model in models}


@contextmanager
def signature_refusals():
    """The refused signatures (``webhook_refused``) sent while the block runs."""
    from jagcall.kernel.webhooks import webhook_refused

    seen: list = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    webhook_refused.connect(receiver, weak=False, dispatch_uid="calls-support-refusals")
    try:
        yield seen
    finally:
        webhook_refused.disconnect(dispatch_uid="calls-support-refusals")
