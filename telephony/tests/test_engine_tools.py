"""The engine's transfer tool against the Twilio stand-in: who may still be rung, and what Twilio is told."""

from __future__ import annotations

import pytest

from accounts.models import Membership, User
from telephony.services.browser import browser_identity
from telephony.services.conversations import ToolFailed, call_transfer, conversation_settings
from telephony.tests.calls_support import inbound_call, line

pytestmark = pytest.mark.django_db


def _ringing_call(organization, twilio):
    number = line(organization)
    at_twilio, _voice = twilio.ring(number.number, "+14155550100")
    return inbound_call(organization, number=number, sid=at_twilio.sid)


def _updates(twilio, call):
    return twilio.requests_to(f"/2010-04-01/Accounts/{call.account_sid}/Calls/{call.twilio_sid}.json", "POST")


def test_a_transfer_to_a_member_rings_their_browser_phone_from_the_organizations_number(
    organization, member, twilio_standin
):
    call = _ringing_call(organization, twilio_standin)
    said = call_transfer(conversation_settings(call), {"user_id": str(member.pk)})
    assert said == "Transferring you now."
    (update,) = _updates(twilio_standin, call)
    twiml = update.form["Twiml"]
    assert f"<Client>{browser_identity(user=member, organization=organization)}</Client>" in twiml
    assert f'callerId="{call.phone_number.number}"' in twiml


@pytest.mark.parametrize("how", ["removed", "deactivated", "another organization's"])
def test_a_transfer_to_someone_no_longer_a_member_is_refused_before_twilio(
    organization, member, other_owner, twilio_standin, how
):
    call = _ringing_call(organization, twilio_standin)
    target = member
    if how == "removed":
        Membership.objects.for_org(organization).filter(user=member).delete()
    elif how == "deactivated":
        User.objects.filter(pk=member.pk).update(is_active=False)
    else:
        target = other_owner
    with pytest.raises(ToolFailed, match="can't reach that person"):
        call_transfer(conversation_settings(call), {"user_id": str(target.pk)})
    assert _updates(twilio_standin, call) == []
