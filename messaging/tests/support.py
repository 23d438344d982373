"""Helpers for messaging's tests: rows made directly, and texts posted as Twilio posts them."""

from __future__ import annotations

import itertools

from messaging.models import Contact, Conversation, Direction, Message, MessageStatus, SenderType
from telephony.tests.calls_support import line, signed_post

_serial = itertools.count(1)


def message_sid() -> str:
    return f"SM{next(_serial):032x}"


def sms_line(organization, number: str = "+14155550123", **kwargs):
    """A number bought at the Twilio stand-in (``twilio_standin`` fixture), able to text."""
    from telephony.services.twilio_accounts import twilio_for_account
    from telephony.services.urls import public_url

    phone_number = line(organization, number, **{"agent": False, **kwargs})
    access = twilio_for_account(organization, phone_number.account_sid)
    access.client.api.v2010.accounts(access.account_sid).incoming_phone_numbers(phone_number.twilio_sid).update(
        sms_url=public_url("twilio-hooks:sms"), sms_method="POST"
    )
    phone_number.sms_enabled = True
    phone_number.save(update_fields=["sms_enabled"])
    return phone_number


def make_conversation(organization, *, phone_number=None, contact_number: str = "+12129870188", name=""):
    """A conversation with rows made directly (no Twilio): ``phone_number`` or a factory's."""
    from telephony.tests.factories import PhoneNumberFactory

    if phone_number is None:
        phone_number = PhoneNumberFactory(organization=organization, sms_enabled=True)
    contact = Contact.objects.for_org(organization).filter(phone_index__in=Contact._meta.get_field(
        "phone_index").candidates(contact_number, organization_id=organization.id)).first()
    if contact is None:
        contact = Contact.objects.create(organization=organization, phone=contact_number, name=name)
    conversation, _ = Conversation.objects.get_or_create(
        organization=organization, phone_number=phone_number, contact=contact
    )
    return conversation


def make_message(organization, *, body: str = "Hello from a test", direction: str = Direction.INBOUND, **kwargs):
    conversation = kwargs.pop("conversation", None) or make_conversation(organization)
    return Message.objects.create(
        organization=organization,
        conversation=conversation,
        direction=direction,
        body=body,
        twilio_sid=message_sid(),
        status=MessageStatus.RECEIVED if direction == Direction.INBOUND else MessageStatus.QUEUED,
        sender_type=SenderType.CONTACT if direction == Direction.INBOUND else SenderType.MEMBER,
        **kwargs,
    )


def text(client, number, body: str, *, sender: str = "+12129870188", account_sid: str | None = None, headers=None,
         **extra):
    """A text from ``sender`` to our ``number``, posted and signed as Twilio does (the SDK's RequestValidator)."""
    params = {
        "MessageSid": message_sid(),
        "AccountSid": account_sid or number.account_sid,
        "From": sender,
        "To": number.number,
        "Body": body,
        "NumMedia": "0",
        **extra,
    }
    return signed_post(client, "twilio-hooks:sms", params, account_sid=params["AccountSid"], headers=headers)


def status_callback(client, message, status: str, *, error_code=None, account_sid: str | None = None, headers=None):
    """Twilio's status callback for one of our sent texts, signed."""
    number = message.conversation.phone_number
    params = {
        "MessageSid": message.twilio_sid,
        "SmsSid": message.twilio_sid,
        "AccountSid": account_sid or number.account_sid,
        "From": number.number,
        "To": message.conversation.contact.phone,
        "MessageStatus": status,
        "SmsStatus": status,
        "ApiVersion": "2010-04-01",
    }
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return signed_post(client, "twilio-hooks:sms-status", params, account_sid=params["AccountSid"], headers=headers)
