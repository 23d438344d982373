"""The softphone's voice URL (``twilio-hooks:browser-voice``): the Twilio stand-in plays a browser device
connecting to the organization's TwiML application (signed like Twilio), and the hook answers TwiML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from twilio.request_validator import RequestValidator

from accounts.models import Membership
from accounts.principals import Principal
from accounts.services import membership_remove
from compliance.models import AuditEvent
from compliance.services import do_not_call_add
from telephony.models import BrowserCallingApp, Call, CallDirection, CallEvent
from telephony.services.browser import browser_identity
from telephony.tests.calls_support import signature_refusals, signed_post, written_rows
from telephony.tests.outbound_support import destination_closed_now, destination_open_now, twilio_line

pytestmark = pytest.mark.django_db

HOOK = "/hooks/twilio/browser/voice/"


@pytest.fixture
def softphone(twilio_standin, organization, member):
    """A member whose softphone has its token (so the organization's TwiML app exists) and a caller line."""
    client = Client()
    client.force_login(member)
    response = client.post(reverse("telephony:browser-token", kwargs={"org_slug": organization.slug}))
    assert response.status_code == 200, response.content[:300]
    twilio_standin.route_callbacks_to(Client())
    app = BrowserCallingApp.objects.for_org(organization).get()
    line = twilio_line(organization, "+14155550100")
    return app, line, browser_identity(user=member, organization=organization)


def dial_of(twiml: str):
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return root.find("Dial")


def said(twiml: str) -> str:
    root = ET.fromstring(twiml)
    assert [child.tag for child in root] == ["Say", "Hangup"], twiml
    return root.find("Say").text


def browser_calls(organization):
    return Call.objects.for_org(organization).filter(placed_by__isnull=False).exclude(placed_by="")


def test_a_members_call_is_dialled_from_the_chosen_number(twilio_standin, settings, organization, member, softphone):
    app, line, identity = softphone
    to = destination_open_now()

    answer = twilio_standin.client_call(app.twiml_app_sid, identity, To=to, CallerId=line.number)

    assert answer.status == 200
    dial = dial_of(answer)
    assert dial is not None, answer
    assert dial.get("callerId") == line.number and dial.get("answerOnBridge") == "true"
    number = dial.find("Number")
    assert number.text == to
    call = Call.objects.for_org(organization).get()
    assert call.direction == CallDirection.OUTBOUND and call.placed_by == member.email
    assert call.to_number == to and call.from_number == line.number and call.phone_number_id == line.id
    assert call.account_sid == app.account_sid and call.twilio_sid is None
    callback = urlsplit(number.get("statusCallback"))
    assert f"{callback.scheme}://{callback.netloc}" == settings.PUBLIC_BASE_URL.rstrip("/")
    assert callback.path == reverse("twilio-hooks:status") and parse_qs(callback.query) == {"call": [str(call.id)]}
    assert number.get("statusCallbackEvent") == "initiated ringing answered completed"
    placed = AuditEvent.objects.for_org(organization).get(action="call.placed")
    assert placed.resource_id == str(call.id) and placed.metadata["via"] == "browser"
    assert placed.actor_label == member.email
    event = CallEvent.objects.for_org(organization).get(call=call, kind="browser.dialed")
    assert event.details["browser_call_sid"] == answer.call_sid and event.details["identity"] == identity


def test_twilios_retry_of_the_same_leg_dials_the_same_call(twilio_standin, organization, softphone):
    app, line, identity = softphone
    to = destination_open_now()
    first = twilio_standin.client_call(app.twiml_app_sid, identity, To=to, CallerId=line.number)
    callback = twilio_standin.callbacks_for(first.call_sid, "voice")[0]
    # The same request again (Twilio retries with the same CallSid and its own new idempotency token).
    headers = {k: v for k, v in callback.headers.items() if k != "Content-Type"}
    retry = Client().post(
        HOOK, data=urlencode(callback.params), content_type="application/x-www-form-urlencoded",
        headers={**headers, "I-Twilio-Idempotency-Token": "retry-1"},
    )  # fmt: skip
    assert retry.status_code == 200
    assert ET.tostring(dial_of(retry.content.decode())) == ET.tostring(dial_of(first))
    assert Call.objects.for_org(organization).count() == 1


def test_a_removed_members_still_valid_token_places_no_call(twilio_standin, organization, owner, member, softphone):
    app, line, identity = softphone
    membership = Membership.objects.for_org(organization).get(user=member)
    membership_remove(organization=organization, actor=owner, membership=membership)

    answer = twilio_standin.client_call(app.twiml_app_sid, identity, To=destination_open_now(), CallerId=line.number)

    assert answer.status == 200
    assert "may no longer place calls" in said(answer)
    assert not Call.objects.for_org(organization).exists()
    assert not AuditEvent.objects.for_org(organization).filter(action="call.placed").exists()


def test_the_pre_dial_gate_refusal_is_spoken(twilio_standin, organization, owner, softphone):
    app, line, identity = softphone
    closed = destination_closed_now()
    answer = twilio_standin.client_call(app.twiml_app_sid, identity, To=closed, CallerId=line.number)
    assert "Calls are allowed only 08:00-21:00" in said(answer)

    blocked = destination_open_now()
    do_not_call_add(organization=organization, actor=Principal.system("test", organization=organization), number=blocked)
    answer = twilio_standin.client_call(app.twiml_app_sid, identity, To=blocked, CallerId=line.number)
    assert "do-not-call" in said(answer).lower()

    answer = twilio_standin.client_call(app.twiml_app_sid, identity, To="12345", CallerId=line.number)
    assert "Nothing was dialled." in said(answer)
    assert not Call.objects.for_org(organization).exists()


def test_a_caller_number_that_is_not_the_organizations_is_refused(
    twilio_standin, organization, other_organization, softphone
):
    app, _line, identity = softphone
    foreign = twilio_line(other_organization, "+14155550177")
    for caller_id in (foreign.number, "", "+14155550188"):
        answer = twilio_standin.client_call(app.twiml_app_sid, identity, To=destination_open_now(), CallerId=caller_id)
        assert "as the caller number" in said(answer)
    assert not Call.objects.for_org(organization).exists()


def test_an_identity_of_another_organization_is_refused(twilio_standin, organization, other_organization, other_owner, softphone):
    app, line, _identity = softphone
    stranger = browser_identity(user=other_owner, organization=other_organization)
    answer = twilio_standin.client_call(app.twiml_app_sid, stranger, To=destination_open_now(), CallerId=line.number)
    assert "not set up to place calls" in said(answer)
    # The member's own identity, but in another organization's name: the same.
    forged = browser_identity(user=other_owner, organization=organization)
    answer = twilio_standin.client_call(app.twiml_app_sid, forged, To=destination_open_now(), CallerId=line.number)
    assert "may no longer place calls" in said(answer)
    assert not Call.objects.for_org(organization).exists()


def test_signature_of_another_account_or_none_is_refused(twilio_standin, organization, softphone):
    app, line, identity = softphone
    form = {
        "AccountSid": app.account_sid, "CallSid": "CA" + "1" * 32, "From": f"client:{identity}",
        "To": destination_open_now(), "CallerId": line.number, "ApplicationSid": app.twiml_app_sid,
    }  # fmt: skip
    from django.conf import settings

    url = settings.PUBLIC_BASE_URL.rstrip("/") + HOOK
    client = Client()
    assert client.post(HOOK, data=form).status_code == 403
    wrong = RequestValidator(twilio_standin.auth_token).compute_signature(url, form)  # the parent's, not the subaccount's
    assert client.post(HOOK, data=form, headers={"X-Twilio-Signature": wrong}).status_code == 403
    right = RequestValidator(twilio_standin.accounts[app.account_sid].auth_token).compute_signature(url, form)
    assert client.post(HOOK, data=form, headers={"X-Twilio-Signature": right}).status_code == 200
    assert Call.objects.for_org(organization).count() == 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("CallSid", "CA" + "1" * 60),  # Twilio's SIDs are 34 characters
        ("CallSid", "CA" + "1" * 31 + "g"),
        ("ApplicationSid", "AP" + "1" * 60),
        ("ApplicationSid", "PN" + "1" * 32),
        ("ParentCallSid", "CA1"),
        ("To", "+14155550199\x00"),
        ("CallerId", "\x00"),
    ],
)
def test_a_signed_request_with_a_malformed_value_is_a_400_that_writes_nothing(field, value, organization, softphone):
    app, line, identity = softphone
    form = {
        "AccountSid": app.account_sid, "CallSid": "CA" + "1" * 32, "From": f"client:{identity}",
        "To": destination_open_now(), "CallerId": line.number, "ApplicationSid": app.twiml_app_sid, field: value,
    }  # fmt: skip
    before = written_rows()
    with signature_refusals() as refusals:
        response = signed_post(Client(), "twilio-hooks:browser-voice", form, account_sid=app.account_sid)
    assert response.status_code == 400, response.content
    assert field in response.content.decode()
    assert written_rows() == before and refusals == []
    assert not browser_calls(organization).exists()
