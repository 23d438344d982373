"""messaging's cases for the cross-tenant walk (accounts/tests/urlwalk.py): one section per area."""

from __future__ import annotations

# kwarg -> how to make an object of that kind inside an organization
OBJECT_KWARGS: dict = {}

# url name -> why it needs no organization in its route
PUBLIC_ROUTES: dict = {}

# url name -> how to reach a signed inbound route (the walk posts unsigned and forged requests to each)
SIGNED_INBOUND: dict = {}

# --- Twilio's messaging hooks: texts to our numbers, and the status of texts we sent -------------

SIGNED_INBOUND["twilio-hooks:sms"] = {"kwargs": {}, "provider": "twilio"}
SIGNED_INBOUND["twilio-hooks:sms-status"] = {"kwargs": {}, "provider": "twilio"}

# --- messages (API) ---------------------------------------------------------------------------


def _make_message(organization):
    from messaging.tests.support import make_message

    return make_message(organization).id


OBJECT_KWARGS["message_id"] = _make_message

# --- inbox: a conversation's thread and its actions -------------------------------------------------


def _make_conversation(organization):
    from messaging.tests.support import make_conversation

    return make_conversation(organization, contact_number="+12129870177", name="Walk Contact").id


OBJECT_KWARGS["conversation_id"] = _make_conversation

# --- contacts: a contact's pages, a CSV import's preview, progress and summary ----------------------


def _make_contact(organization):
    from messaging.models import Contact

    return Contact.objects.create(organization=organization, phone="+13125550142", name="Walk Person").id


def _make_contact_import(organization):
    from messaging.models import ContactImport

    return ContactImport.objects.create(
        organization=organization, file_name="walk.csv", content="phone,name\n+13125550143,Walk Import\n", total_rows=1
    ).id


OBJECT_KWARGS["contact_id"] = _make_contact
OBJECT_KWARGS["import_id"] = _make_contact_import

# --- messaging settings: their only object id is a phone number, ``number_id`` (registered by telephony) ------
