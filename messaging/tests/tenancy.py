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
