"""The Twilio stand-in's Programmable Messaging and A2P 10DLC registration, driven through the real
twilio SDK: texts sent, fetched and listed with Twilio's segment counts, Twilio's messaging errors,
status callbacks that a local receiver checks with RequestValidator, texts received (and the TwiML
replies to them), opt-outs, and Messaging Services with their numbers and A2P campaigns."""

from __future__ import annotations

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException

from jagcall.kernel.providers import twilio_client
from jagcall.tests.test_standins_twilio import Receiver, subaccount, twilio  # noqa: F401 (fixtures)

TO = "+12125550199"
REPLY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Thanks, we got it.</Message></Response>'
CAMPAIGN = {
    "brand_registration_sid": "BN" + "0" * 32,
    "description": "Appointment reminders and answers to patients who texted or called the practice.",
    "message_flow": "Patients give their mobile number when they book and tick a box to receive texts.",
    "message_samples": [
        "Your cleaning is tomorrow at 10am. Reply STOP to opt out.",
        "We got your message and will call back.",
    ],
    "us_app_to_person_usecase": "CUSTOMER_CARE",
    "has_embedded_links": False,
    "has_embedded_phone": True,
}


class TextReceiver(Receiver):
    """The application's side of messaging webhooks: signature checked, answered with REPLY_TWIML."""

    name = "text-receiver"

    def handle(self, request):
        answer = super().handle(request)
        if answer.status == 200:
            answer.body, answer.content_type = REPLY_TWIML.encode(), "application/xml"
        return answer


@pytest.fixture
def receiver(subaccount):  # noqa: F811
    account, _ = subaccount
    with TextReceiver(account.auth_token) as started:  # [!!] a subaccount's callbacks carry its own token
        yield started


@pytest.fixture
def sender(subaccount):  # noqa: F811
    """A number of the subaccount that can text."""
    _, client = subaccount
    return client.incoming_phone_numbers.create(area_code="415").phone_number


def test_a_text_is_created_as_twilio_answers_then_fetched_and_listed(twilio, subaccount, sender):  # noqa: F811
    account, client = subaccount
    message = client.messages.create(to=TO, from_=sender, body="Your appointment is tomorrow at 10am.")
    assert message.sid.startswith("SM") and len(message.sid) == 34 and message.account_sid == account.sid
    assert (message.to, message.from_, message.direction) == (TO, sender, "outbound-api")
    assert message.status == "queued" and message.num_segments == "1" and message.num_media == "0"
    assert message.price is None and message.error_code is None and message.error_message is None
    assert message.date_created is not None and message.messaging_service_sid is None
    assert message.uri == f"/2010-04-01/Accounts/{account.sid}/Messages/{message.sid}.json"
    assert message.subresource_uris["media"].endswith(f"/Messages/{message.sid}/Media.json")

    twilio.settle()
    fetched = client.messages(message.sid).fetch()
    assert fetched.status == "delivered" and fetched.date_sent is not None and fetched.price.startswith("-")
    other = client.messages.create(to="+13125550142", from_=sender, body="Another one")
    assert [m.sid for m in client.messages.list(to=TO)] == [message.sid]
    assert [m.sid for m in client.messages.list(from_=sender)] == [other.sid, message.sid]  # newest first
    assert [m.body for m in twilio.messages] == ["Your appointment is tomorrow at 10am.", "Another one"]
    with pytest.raises(TwilioRestException) as unknown:
        client.messages("SM" + "0" * 32).fetch()
    assert unknown.value.status == 404


@pytest.mark.parametrize(
    "body, segments, encoding",
    [
        ("a" * 160, "1", "GSM-7"),
        ("a" * 161, "2", "GSM-7"),  # concatenated: 153 characters a segment
        ("a" * 306, "2", "GSM-7"),
        ("a" * 307, "3", "GSM-7"),
        ("€" * 80, "1", "GSM-7"),  # extension characters take two septets
        ("[" * 81, "2", "GSM-7"),
        ("Café à 10h, ça marche?", "1", "UCS-2"),  # ç is not in GSM-7's default alphabet
        ("See you soon 😀", "1", "UCS-2"),
        ("😀" * 35, "1", "UCS-2"),  # 70 UTF-16 code units
        ("😀" * 36, "2", "UCS-2"),
        ("x" * 67 + "é" + "ç" * 67, "3", "UCS-2"),  # 135 code units: 67 a segment
    ],
)
def test_segments_are_counted_as_carriers_count_them(
    twilio, subaccount, sender, body, segments, encoding,  # noqa: F811
):  # fmt: skip
    _, client = subaccount
    message = client.messages.create(to=TO, from_=sender, body=body)
    assert message.num_segments == segments and twilio.message(message.sid).encoding == encoding


def test_twilios_messaging_errors(twilio, subaccount, sender):  # noqa: F811
    _, client = subaccount

    def refused(**params) -> TwilioRestException:
        with pytest.raises(TwilioRestException) as error:
            client.messages.create(**params)
        assert error.value.status == 400
        return error.value

    assert refused(to="", from_=sender, body="Hi").code == 21604
    assert refused(to=TO, body="Hi").code == 21603
    assert refused(to=TO, from_=sender).code == 21602
    invalid = refused(to="2125550199", from_=sender, body="Hi")
    assert invalid.code == 21211 and "2125550199" in invalid.msg
    not_ours = refused(to=TO, from_="+14155550100", body="Hi")
    assert not_ours.code == 21606 and "is not a valid message-capable Twilio phone number" in not_ours.msg
    assert refused(to=TO, from_=sender, body="a" * 1601).code == 21617
    assert refused(to=TO, from_=sender, body="Hi", media_url=["not-a-url"]).code == 21620

    twilio.unsubscribe(sender, TO)  # the recipient texted STOP to this number
    stopped = refused(to=TO, from_=sender, body="Hi")
    assert stopped.code == 21610 and stopped.msg.endswith("Attempt to send to unsubscribed recipient")
    twilio.resubscribe(sender, TO)
    assert client.messages.create(to=TO, from_=sender, body="Hi").status == "queued"

    other = twilio_client().incoming_phone_numbers.create(area_code="212").phone_number  # the parent's number
    assert refused(to=TO, from_=other, body="Hi").code == 21606
    assert len(twilio.messages) == 1


def test_status_callbacks_are_signed_and_follow_queued_sent_delivered(
    twilio, subaccount, sender, receiver,  # noqa: F811
):  # fmt: skip
    account, client = subaccount
    message = client.messages.create(
        to=TO, from_=sender, body="Reminder", status_callback=receiver.base_url + "/sms-status?org=acme"
    )
    twilio.settle()
    posted = twilio.callbacks_for(message.sid, "message-status")
    assert [c.params["MessageStatus"] for c in posted] == ["queued", "sent", "delivered"]
    assert receiver.valid == [True, True, True] and all(c.status == 200 for c in posted)
    delivered = receiver.requests_to("/sms-status")[-1]
    assert delivered.query == {"org": "acme"}
    assert delivered.form["MessageSid"] == delivered.form["SmsSid"] == message.sid
    assert delivered.form["SmsStatus"] == "delivered" and delivered.form["AccountSid"] == account.sid
    assert (delivered.form["From"], delivered.form["To"], delivered.form["ApiVersion"]) == (sender, TO, "2010-04-01")
    assert "ErrorCode" not in delivered.form


@pytest.mark.parametrize(
    "outcome, statuses",
    [(("undelivered", 30003), ["queued", "sent", "undelivered"]), (("failed", 30006), ["queued", "failed"])],
)
def test_an_outcome_chosen_for_a_recipient_ends_with_its_error_code(
    twilio, subaccount, sender, receiver, outcome, statuses,  # noqa: F811
):  # fmt: skip
    _, client = subaccount
    twilio.message_outcomes[TO] = outcome
    message = client.messages.create(to=TO, from_=sender, body="Hi", status_callback=receiver.base_url + "/status")
    twilio.settle()
    posted = twilio.callbacks_for(message.sid, "message-status")
    assert [c.params["MessageStatus"] for c in posted] == statuses and all(receiver.valid)
    assert posted[-1].params["ErrorCode"] == str(outcome[1])
    assert all("ErrorCode" not in c.params for c in posted[:-1])
    fetched = client.messages(message.sid).fetch()
    assert (fetched.status, fetched.error_code) == outcome and fetched.error_message


def test_delivery_can_wait_for_the_test(twilio, subaccount, sender, receiver):  # noqa: F811
    _, client = subaccount
    twilio.message_autodeliver = False
    message = client.messages.create(to=TO, from_=sender, body="Hi", status_callback=receiver.base_url + "/status")
    twilio.settle()
    assert twilio.callbacks == [] and client.messages(message.sid).fetch().status == "queued"
    posted = twilio.deliver_messages()
    assert [c.params["MessageStatus"] for c in posted] == ["queued", "sent", "delivered"]
    assert client.messages(message.sid).fetch().status == "delivered" and twilio.deliver_messages() == []


def test_a_text_received_is_posted_signed_and_its_twiml_reply_is_sent(
    twilio, subaccount, sender, receiver,  # noqa: F811
):  # fmt: skip
    account, client = subaccount
    number = client.incoming_phone_numbers.list(phone_number=sender)[0]
    client.incoming_phone_numbers(number.sid).update(sms_url=receiver.base_url + "/sms")

    answer = twilio.inbound_message(sender, TO, "Can I move my appointment? 🙏")
    assert answer == REPLY_TWIML and answer.status == 200 and receiver.valid == [True]
    form = receiver.requests_to("/sms")[0].form
    assert form["MessageSid"] == form["SmsSid"] == form["SmsMessageSid"] == answer.message_sid
    assert (form["From"], form["To"], form["AccountSid"]) == (TO, sender, account.sid)
    assert form["Body"] == "Can I move my appointment? 🙏" and form["NumSegments"] == "1" and form["NumMedia"] == "0"
    assert form["SmsStatus"] == "received" and form["ApiVersion"] == "2010-04-01" and "MessagingServiceSid" not in form
    received = client.messages(answer.message_sid).fetch()
    assert received.direction == "inbound" and received.status == "received"

    [reply] = answer.replies
    assert (reply.to, reply.from_, reply.body, reply.direction) == (TO, sender, "Thanks, we got it.", "outbound-reply")
    twilio.settle()
    assert client.messages(reply.sid).fetch().status == "delivered" and twilio.messages == [reply]


def test_stop_opts_the_sender_out_until_start(twilio, subaccount, sender, receiver):  # noqa: F811
    _, client = subaccount
    number = client.incoming_phone_numbers.list(phone_number=sender)[0]
    client.incoming_phone_numbers(number.sid).update(sms_url=receiver.base_url + "/sms")

    answer = twilio.inbound_message(sender, TO, "Stop", OptOutType="STOP")
    assert receiver.requests_to("/sms")[0].form["OptOutType"] == "STOP"
    assert answer.replies[0].status == "failed" and answer.replies[0].error_code == 21610
    with pytest.raises(TwilioRestException) as unsubscribed:
        client.messages.create(to=TO, from_=sender, body="Hi")
    assert unsubscribed.value.code == 21610

    twilio.inbound_message(sender, TO, "START")
    assert client.messages.create(to=TO, from_=sender, body="Welcome back").status == "queued"


def test_a_messaging_service_picks_the_sender_and_keeps_a2p_registration(twilio, subaccount, sender):  # noqa: F811
    account, _ = subaccount
    own = twilio_client(account.sid, account.auth_token)  # Messaging v1 acts on the account it authenticates as
    service = own.messaging.v1.services.create(friendly_name="Acme Dental reminders")
    assert service.sid.startswith("MG") and service.account_sid == account.sid and service.date_created is not None
    with pytest.raises(TwilioRestException) as empty:
        own.messages.create(to=TO, messaging_service_sid=service.sid, body="Hi")
    assert empty.value.code == 21704

    number = own.incoming_phone_numbers.list(phone_number=sender)[0]
    added = own.messaging.v1.services(service.sid).phone_numbers.create(phone_number_sid=number.sid)
    assert (added.sid, added.phone_number, added.service_sid, added.country_code) == (
        number.sid, sender, service.sid, "US"
    )  # fmt: skip
    other = own.messaging.v1.services.create(friendly_name="Another")
    with pytest.raises(TwilioRestException) as taken:
        own.messaging.v1.services(other.sid).phone_numbers.create(phone_number_sid=number.sid)
    assert taken.value.code == 21712

    message = own.messages.create(to=TO, messaging_service_sid=service.sid, body="Hi")
    assert message.status == "accepted" and message.from_ is None and message.messaging_service_sid == service.sid
    twilio.settle()
    assert own.messages(message.sid).fetch().from_ == sender

    campaign = own.messaging.v1.services(service.sid).us_app_to_person.create(**CAMPAIGN)
    assert campaign.sid.startswith("QE") and campaign.campaign_status == "PENDING"
    assert campaign.message_samples == CAMPAIGN["message_samples"] and campaign.has_embedded_phone is True
    twilio.set_campaign_status(campaign.sid, "VERIFIED")
    [listed] = own.messaging.v1.services(service.sid).us_app_to_person.list()
    assert listed.campaign_status == "VERIFIED" and listed.campaign_id.startswith("C")
    assert own.messaging.v1.services(service.sid).fetch().us_app_to_person_registered is True
    assert own.messaging.v1.services(service.sid).us_app_to_person(campaign.sid).fetch().sid == campaign.sid
    with pytest.raises(TwilioRestException) as second:
        own.messaging.v1.services(service.sid).us_app_to_person.create(**CAMPAIGN)
    assert second.value.status == 409


def test_register_a2p_reads_back_through_the_sdk_and_unregistered_numbers_are_blocked(twilio, subaccount):  # noqa: F811
    account, _ = subaccount
    own = twilio_client(account.sid, account.auth_token)
    registered = own.incoming_phone_numbers.create(area_code="415").phone_number
    campaign = twilio.register_a2p(account.sid, registered)

    [service] = own.messaging.v1.services.list()
    assert service.sid == campaign.messaging_service_sid and service.us_app_to_person_registered is True
    [number] = own.messaging.v1.services(service.sid).phone_numbers.list()
    assert number.phone_number == registered and number.country_code == "US" and "SMS" in number.capabilities
    [listed] = own.messaging.v1.services(service.sid).us_app_to_person.list()
    assert listed.sid == campaign.sid and listed.campaign_status == "VERIFIED"
    assert listed.brand_registration_sid.startswith("BN") and listed.us_app_to_person_usecase
    assert twilio_client().messaging.v1.services.list() == []  # the parent's own list holds none of them

    twilio.a2p_enforced = True
    unregistered = own.incoming_phone_numbers.create(area_code="212").phone_number
    blocked = own.messages.create(to=TO, from_=unregistered, body="Hi")
    allowed = own.messages.create(to=TO, from_=registered, body="Hi")
    twilio.settle()
    assert (own.messages(blocked.sid).fetch().status, own.messages(blocked.sid).fetch().error_code) == (
        "undelivered", 30034
    )  # fmt: skip
    assert own.messages(allowed.sid).fetch().status == "delivered"

    twilio.set_campaign_status(campaign.sid, "FAILED")
    assert own.messaging.v1.services(service.sid).fetch().us_app_to_person_registered is False


def test_v1_needs_credentials_and_hides_other_accounts_services(twilio, subaccount):  # noqa: F811
    account, _ = subaccount
    number = twilio_client().incoming_phone_numbers.create(area_code="415").phone_number
    campaign = twilio.register_a2p(twilio.account_sid, number)
    forged = twilio_client(twilio.account_sid, "not-the-token")
    with pytest.raises(TwilioException) as refused:  # list pages raise the base class, with the response
        forged.messaging.v1.services.list()
    assert refused.value.args[1].status_code == 401 and '"code": 20003' in refused.value.args[1].text
    own = twilio_client(account.sid, account.auth_token)
    with pytest.raises(TwilioRestException) as hidden:
        own.messaging.v1.services(campaign.messaging_service_sid).fetch()
    assert hidden.value.status == 404


def test_message_callbacks_can_go_through_a_django_test_client(twilio, client, subaccount, sender):  # noqa: F811
    _, sdk = subaccount
    twilio.route_callbacks_to(client)
    message = sdk.messages.create(
        to=TO, from_=sender, body="Hi", status_callback="https://app.example.com/no-such-hook/"
    )  # fmt: skip
    twilio.settle()
    posted = twilio.callbacks_for(message.sid, "message-status")
    assert [c.status for c in posted] == [404, 404, 404]  # the application's URL routing has no such path
    assert all(c.headers["X-Twilio-Signature"] for c in posted)
