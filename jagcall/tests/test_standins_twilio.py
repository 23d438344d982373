"""The Twilio stand-in, driven through the real twilio SDK: subaccounts, number search and
purchase, calls played out with callbacks that a local receiver checks with RequestValidator,
recordings, and Twilio's errors."""

from __future__ import annotations

import io
import wave

import phonenumbers
import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator

from jagcall.kernel.providers import twilio_client
from jagcall.kernel.standins.base import Reply, StandIn

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello</Say></Response>'


class Receiver(StandIn):
    """The application's side: records each webhook and whether its signature holds for ``token``."""

    name = "receiver"

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.valid: list[bool] = []

    def handle(self, request):
        url = self.base_url + request.path + (f"?{request.raw_query}" if request.raw_query else "")
        params = request.form if request.method == "POST" else {}
        ok = RequestValidator(self.token).validate(url, params, request.header("x-twilio-signature"))
        self.valid.append(ok)
        if not ok:
            return Reply(status=403, body=b"bad signature", content_type="text/plain")
        return Reply(body=TWIML.encode(), content_type="application/xml")


@pytest.fixture
def twilio(twilio_standin):
    """The stand-in, with the settings (PROVIDER_BASE_URLS, TWILIO_*) that twilio_client() reads pointing at it."""
    return twilio_standin


@pytest.fixture
def subaccount(twilio):
    """A subaccount (own auth token) and a client acting on it with the parent's credentials."""
    account = twilio_client().api.v2010.accounts.create(friendly_name="Acme Dental")
    return account, twilio_client(subaccount_sid=account.sid)


def test_subaccounts_are_created_with_their_own_token_fetched_and_listed(twilio, subaccount):
    account, _ = subaccount
    assert account.sid.startswith("AC") and len(account.sid) == 34
    assert account.auth_token and account.auth_token != twilio.auth_token
    assert account.owner_account_sid == twilio.account_sid
    assert account.status == "active" and account.date_created is not None

    parent = twilio_client()
    assert parent.api.v2010.accounts(account.sid).fetch().friendly_name == "Acme Dental"
    listed = {a.sid for a in parent.api.v2010.accounts.list()}
    assert listed == {twilio.account_sid, account.sid}

    # The subaccount's own credentials open it, but not its parent, and it cannot make subaccounts.
    own = twilio_client(account.sid, account.auth_token)
    assert own.api.v2010.accounts(account.sid).fetch().sid == account.sid
    with pytest.raises(TwilioRestException) as refused:
        own.api.v2010.accounts(twilio.account_sid).fetch()
    assert refused.value.status == 401
    with pytest.raises(TwilioRestException):
        own.api.v2010.accounts.create(friendly_name="nested")

    closed = parent.api.v2010.accounts(account.sid).update(status="closed")
    assert closed.status == "closed"


def test_search_buy_update_list_and_release_a_number(subaccount):
    _, client = subaccount
    offers = client.available_phone_numbers("US").local.list(area_code=415, sms_enabled=True, limit=5)
    assert len(offers) == 5
    for offer in offers:
        parsed = phonenumbers.parse(offer.phone_number)
        assert phonenumbers.is_valid_number(parsed) and offer.phone_number.startswith("+1415")
        assert offer.capabilities["SMS"] is True and offer.iso_country == "US" and offer.locality == "San Francisco"
    contains = client.available_phone_numbers("US").local.list(contains="4242", limit=3)
    assert contains and all("4242" in o.phone_number for o in contains)
    gb = client.available_phone_numbers("GB").local.list(limit=3)
    assert gb and all(phonenumbers.is_valid_number(phonenumbers.parse(o.phone_number)) for o in gb)
    assert client.available_phone_numbers("GB").local.list(sms_enabled=True, limit=3) == []
    with pytest.raises(TwilioException) as unknown:  # list pages raise the base class, with the response
        client.available_phone_numbers("ZZ").local.list(limit=1)
    assert unknown.value.args[1].status_code == 404 and "20404" in unknown.value.args[1].text

    bought = client.incoming_phone_numbers.create(
        phone_number=offers[0].phone_number, voice_url="https://app.example.com/hooks/twilio/voice", voice_method="POST"
    )
    assert bought.sid.startswith("PN") and bought.phone_number == offers[0].phone_number
    assert bought.voice_url == "https://app.example.com/hooks/twilio/voice"
    assert bought.capabilities["sms"] is True and bought.date_created is not None
    with pytest.raises(TwilioRestException) as taken:
        client.incoming_phone_numbers.create(phone_number=offers[0].phone_number)
    assert taken.value.code == 21422
    by_area = client.incoming_phone_numbers.create(area_code="212")
    assert by_area.phone_number.startswith("+1212")

    updated = client.incoming_phone_numbers(bought.sid).update(
        status_callback="https://app.example.com/hooks/twilio/status",
        sms_url="https://app.example.com/hooks/twilio/sms",
    )
    assert updated.status_callback.endswith("/status") and updated.sms_url.endswith("/sms")
    assert updated.voice_url.endswith("/voice")  # untouched settings stay
    assert [n.sid for n in client.incoming_phone_numbers.list(phone_number=bought.phone_number)] == [bought.sid]
    assert client.incoming_phone_numbers(bought.sid).fetch().sms_url.endswith("/sms")

    assert client.incoming_phone_numbers(bought.sid).delete() is True
    assert client.incoming_phone_numbers.list(phone_number=bought.phone_number) == []
    with pytest.raises(TwilioRestException) as gone:
        client.incoming_phone_numbers(bought.sid).fetch()
    assert gone.value.status == 404


def test_lists_page_through_next_page_uri(subaccount):
    _, client = subaccount
    for offer in client.available_phone_numbers("US").local.list(area_code=512, limit=7):
        client.incoming_phone_numbers.create(phone_number=offer.phone_number)
    assert len(client.incoming_phone_numbers.list(page_size=3)) == 7


def test_a_call_plays_out_with_signed_callbacks_and_a_recording(twilio, subaccount):
    account, client = subaccount
    receiver = Receiver(account.auth_token).start()  # [!!] a subaccount's callbacks are signed with its own token
    try:
        number = client.incoming_phone_numbers.create(area_code="415")
        call = client.calls.create(
            to="+12125550199",
            from_=number.phone_number,
            url=receiver.base_url + "/voice",
            status_callback=receiver.base_url + "/status?org=acme",
            status_callback_event=["initiated", "ringing", "answered", "completed"],
            record=True,
            recording_status_callback=receiver.base_url + "/recording",
        )
        assert call.sid.startswith("CA") and call.status == "queued" and call.direction == "outbound-api"

        posted = twilio.complete_call(call.sid, duration=42)
        assert [c.kind for c in posted] == ["status", "status", "status", "status", "recording"]
        assert [c.params["CallStatus"] for c in posted[:4]] == ["initiated", "ringing", "in-progress", "completed"]
        assert [c.params["SequenceNumber"] for c in posted[:4]] == ["0", "1", "2", "3"]
        assert all(c.status == 200 for c in twilio.callbacks) and all(receiver.valid)
        assert len(receiver.valid) == 6  # the voice request on answer, four statuses, the recording
        voice = twilio.callbacks_for(call.sid, "voice")[0]
        assert voice.params["CallStatus"] == "in-progress" and voice.response_body == TWIML
        final = posted[3]
        assert final.params["CallDuration"] == "42" and final.params["AccountSid"] == account.sid
        assert final.params["Direction"] == "outbound-api" and final.params["CallbackSource"] == "call-progress-events"
        assert final.headers["I-Twilio-Idempotency-Token"] != posted[2].headers["I-Twilio-Idempotency-Token"]
        assert receiver.requests_to("/status")[0].query == {"org": "acme"}

        fetched = client.calls(call.sid).fetch()
        assert fetched.status == "completed" and fetched.duration == "42" and fetched.start_time is not None

        recording = posted[4].params
        assert recording["RecordingStatus"] == "completed" and recording["RecordingDuration"] == "42"
        assert recording["RecordingUrl"].startswith(twilio.base_url)
        fetched_recording = client.recordings(recording["RecordingSid"]).fetch()
        assert fetched_recording.call_sid == call.sid and fetched_recording.duration == "42"
        assert [r.sid for r in client.recordings.list(call_sid=call.sid)] == [recording["RecordingSid"]]

        # Media is binary (the SDK's Response keeps text only): fetched with the account's credentials.
        credentials = (twilio.account_sid, twilio.auth_token)
        wav = requests.get(recording["RecordingUrl"] + ".wav", auth=credentials, timeout=10)
        assert wav.status_code == 200 and wav.headers["Content-Type"] == "audio/x-wav"
        with wave.open(io.BytesIO(wav.content)) as audio:
            assert audio.getframerate() == 8000 and audio.getnframes() > 8000
        assert requests.get(recording["RecordingUrl"], auth=credentials, timeout=10).content == wav.content
        mp3 = requests.get(recording["RecordingUrl"] + ".mp3", auth=credentials, timeout=10)
        assert mp3.status_code == 200 and mp3.content[:2] == b"\xff\xfb"
        assert requests.get(recording["RecordingUrl"] + ".wav", timeout=10).status_code == 401

        assert client.recordings(recording["RecordingSid"]).delete() is True
        with pytest.raises(TwilioRestException) as gone:
            client.recordings(recording["RecordingSid"]).fetch()
        assert gone.value.status == 404
    finally:
        receiver.stop()


def test_canceling_a_queued_call_posts_its_final_status(twilio, subaccount):
    account, client = subaccount
    receiver = Receiver(account.auth_token).start()
    try:
        number = client.incoming_phone_numbers.create(area_code="415")
        call = client.calls.create(
            to="+12125550199", from_=number.phone_number, twiml=TWIML, status_callback=receiver.base_url + "/status"
        )
        assert client.calls(call.sid).update(status="canceled").status == "canceled"
        twilio.settle()
        [callback] = twilio.callbacks_for(call.sid)
        assert callback.params["CallStatus"] == "canceled" and receiver.valid == [True]
        with pytest.raises(TwilioRestException) as ended:
            client.calls(call.sid).update(status="completed")
        assert ended.value.code == 21220
    finally:
        receiver.stop()


def test_inbound_call_posts_the_signed_voice_webhook_and_returns_twiml(twilio):
    receiver = Receiver(twilio.auth_token).start()
    try:
        client = twilio_client()
        number = client.incoming_phone_numbers.create(area_code="415", voice_url=receiver.base_url + "/voice")
        answer = twilio.inbound_call(number.phone_number, "+12125550199")
        assert answer == TWIML and answer.status == 200 and receiver.valid == [True]
        voice = receiver.requests[0].form
        assert voice["Direction"] == "inbound" and voice["CallStatus"] == "ringing"
        assert voice["CallSid"] == answer.call_sid
        assert voice["To"] == number.phone_number and voice["From"] == "+12125550199"
        assert client.calls(answer.call_sid).fetch().status == "ringing"
    finally:
        receiver.stop()


def test_autopilot_plays_every_created_call_out(twilio):
    receiver = Receiver(twilio.auth_token).start()
    try:
        twilio.autopilot, twilio.autopilot_delay = True, 0.01
        client = twilio_client()
        number = client.incoming_phone_numbers.create(area_code="415")
        call = client.calls.create(
            to="+12125550199", from_=number.phone_number, url=receiver.base_url + "/voice",
            status_callback=receiver.base_url + "/status", record=True,
            recording_status_callback=receiver.base_url + "/recording",
        )  # fmt: skip
        twilio.settle()
        assert [c.kind for c in twilio.callbacks_for(call.sid)] == ["voice", "status", "recording"]
        assert client.calls(call.sid).fetch().status == "completed" and all(receiver.valid)
    finally:
        receiver.stop()


def test_twilio_errors(twilio, subaccount):
    _, client = subaccount
    number = client.incoming_phone_numbers.create(area_code="415")
    with pytest.raises(TwilioRestException) as invalid_to:
        client.calls.create(to="+1555", from_=number.phone_number, twiml=TWIML)
    assert invalid_to.value.status == 400 and invalid_to.value.code == 21211
    with pytest.raises(TwilioRestException) as unverified:
        client.calls.create(to="+12125550199", from_="+14155550100", twiml=TWIML)
    assert unverified.value.code == 21210

    forged = twilio_client(twilio.account_sid, "not-the-token")
    with pytest.raises(TwilioRestException) as refused:
        forged.api.v2010.accounts(twilio.account_sid).fetch()
    assert refused.value.status == 401 and refused.value.code == 20003


def test_the_fixture_points_the_settings_at_the_stand_in(twilio_standin, settings):
    assert settings.PROVIDER_BASE_URLS["twilio"] == twilio_standin.base_url
    assert settings.TWILIO_ACCOUNT_SID == twilio_standin.account_sid
    assert settings.TWILIO_AUTH_TOKEN == twilio_standin.auth_token
    client = twilio_client(
        settings.TWILIO_API_KEY_SID, settings.TWILIO_API_KEY_SECRET, subaccount_sid=settings.TWILIO_ACCOUNT_SID
    )
    assert client.api.v2010.accounts(settings.TWILIO_ACCOUNT_SID).fetch().status == "active"  # API-key auth


def test_injected_failures_answer_once_in_twilios_shape(twilio):
    twilio.fail_next(503, "Service unavailable", path_prefix="/2010-04-01/Accounts/")
    with pytest.raises(TwilioRestException) as unavailable:
        twilio_client().api.v2010.accounts(twilio.account_sid).fetch()
    assert unavailable.value.status == 503 and unavailable.value.code == 20503
    assert twilio_client().api.v2010.accounts(twilio.account_sid).fetch().status == "active"


def test_callbacks_can_go_through_a_django_test_client(twilio, client):
    twilio.route_callbacks_to(client)
    number = twilio_client().incoming_phone_numbers.create(
        area_code="415", voice_url="https://app.example.com/no-such-hook/"
    )
    answer = twilio.inbound_call(number.phone_number, "+12125550199")
    assert answer.status == 404  # delivered to the application's URL routing (which has no such path)
    assert twilio.callbacks[-1].headers["X-Twilio-Signature"]
