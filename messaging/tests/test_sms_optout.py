"""The SMS webhook: a texted STOP puts the sender on the organization's do-not-call list, so calls stop at once.

Texts are signed as Twilio signs them (the SDK's RequestValidator with the auth token of the number's
subaccount at the Twilio stand-in) and posted to ``/hooks/twilio/sms/``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compliance.models import AuditEvent, DoNotCallEntry
from compliance.selectors import do_not_call_lookup
from compliance.services import do_not_call_remove
from jagcall.kernel.webhooks.models import ReceivedWebhook
from telephony.services.dialing import DialRefused
from telephony.services.outbound import place_call
from telephony.services.sms import OPT_OUT_KEYWORDS, sms_opt_out_keyword
from telephony.tests.calls_support import line, signed_post
from telephony.tests.outbound_support import make_agent, twilio_line

PUBLIC = "https://app.jagcall.test"
TEXTER = "+12129870188"  # New York
NOON_IN_NEW_YORK = dt.datetime(2027, 1, 15, 17, 0, tzinfo=dt.UTC)
EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
_serial = itertools.count(1)


@pytest.fixture
def number(twilio_standin, settings, organization):
    settings.PUBLIC_BASE_URL = PUBLIC
    return line(organization, "+14155550123", agent=False)


def text(client, number, body: str, *, sender: str = TEXTER, account_sid: str | None = None, headers=None, **extra):
    params = {
        "MessageSid": f"SM{next(_serial):032d}",
        "AccountSid": account_sid or number.account_sid,
        "From": sender,
        "To": number.number,
        "Body": body,
        "NumMedia": "0",
        **extra,
    }
    return signed_post(client, "twilio-hooks:sms", params, account_sid=params["AccountSid"], headers=headers)


def listed(organization, sender: str = TEXTER) -> bool:
    return do_not_call_lookup(organization=organization, number=sender) is not None


def events(organization) -> list[AuditEvent]:
    return list(AuditEvent.objects.for_org(organization).order_by("occurred_at", "id"))


# --- which texts are an opt-out ---------------------------------------------------------------------

_AROUND = st.text(alphabet=string.whitespace + string.punctuation + "¡¿…“”‘’«»🙏👍", max_size=6)


@given(
    keyword=st.sampled_from(sorted(OPT_OUT_KEYWORDS)),
    cases=st.lists(st.booleans(), min_size=11, max_size=11),
    before=_AROUND,
    after=_AROUND,
)
def test_any_keyword_in_any_case_with_spaces_and_punctuation_around_is_an_opt_out(keyword, cases, before, after):
    word = "".join(c.lower() if lower else c for c, lower in zip(keyword, cases, strict=False))
    assert sms_opt_out_keyword(before + word + after) == keyword


@given(
    keyword=st.sampled_from(sorted(OPT_OUT_KEYWORDS)),
    extra=st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=5),
    where=st.sampled_from(["before", "after", "word"]),
)
def test_a_keyword_inside_other_words_is_not_an_opt_out(keyword, extra, where):
    body = {"before": extra + keyword, "after": keyword + extra, "word": f"please {keyword.lower()} {extra}"}[where]
    assert sms_opt_out_keyword(body) is None


@pytest.mark.parametrize("body", ["", "START", "unstop", "HELP", "stopp", "stop calling me please", "x" * 500])
def test_texts_that_are_not_opt_outs(body):
    assert sms_opt_out_keyword(body) is None


# --- through the signed webhook ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body", ["STOP", "stop", "Stop!", "  quit. ", "UnSubscribe\n", "cancel.", "End 🙏", "STOPALL", "revoke", "OptOut",
             "ＳＴＯＰ"],
)  # fmt: skip
def test_a_texted_stop_adds_the_sender_to_the_do_not_call_list(client, organization, number, body):
    answer = text(client, number, body)
    assert answer.status_code == 200 and answer.content == EMPTY
    assert answer["Content-Type"].startswith("text/xml")
    entry = DoNotCallEntry.objects.for_org(organization).get()
    assert entry.number == TEXTER and entry.source == "sms" and entry.reason == "consent_revoked"
    assert entry.added_by == "twilio webhook"


@pytest.mark.django_db
def test_twilios_advanced_opt_out_marker_is_honoured(client, organization, number):
    # A keyword configured in the Twilio console (here in French) arrives with OptOutType=STOP.
    answer = text(client, number, "Arrêt", OptOutType="STOP")
    assert answer.status_code == 200 and answer.content == EMPTY
    assert listed(organization)


@pytest.mark.django_db
def test_an_ordinary_text_changes_nothing_and_gets_empty_twiml(client, organization, number):
    before = len(events(organization))
    for body in ("Hi, can I move my appointment to Friday?", "stop calling me at work please", "HELP", ""):
        answer = text(client, number, body)
        assert answer.status_code == 200 and answer.content == EMPTY
    assert not DoNotCallEntry.objects.for_org(organization).exists()
    assert len(events(organization)) == before


@pytest.mark.django_db
def test_the_opt_out_is_audited_without_the_senders_number(client, organization, number):
    text(client, number, "STOP")
    added = [e for e in events(organization) if e.action == "do_not_call.added"]
    received = [e for e in events(organization) if e.action == "phone_number.opt_out_received"]
    assert len(added) == 1 and len(received) == 1
    for event in (*added, *received):
        assert event.actor_key == "webhook:twilio" and event.actor_label == "twilio webhook"
    assert added[0].changes["source"] == {"before": None, "after": "sms"}
    assert received[0].metadata["reason"] == f"Texted STOP to {number.number}"
    assert received[0].resource_id == str(number.id)
    for event in events(organization):
        recorded = f"{event.metadata} {event.changes}"
        for clear in (TEXTER, TEXTER.lstrip("+"), "2129870188", "9870188", "870188"):
            assert clear not in recorded


@pytest.mark.django_db
def test_a_placed_call_to_a_number_that_texted_stop_is_refused(client, organization, owner, number, twilio_standin):
    caller = twilio_line(organization, "+14155550100")
    agent = make_agent(organization)
    text(client, number, "Stop.")
    before = len(twilio_standin.requests)
    with pytest.raises(DialRefused) as refused:
        place_call(
            organization=organization, actor=owner, agent=agent, to_number=TEXTER, from_number=caller,
            now=NOON_IN_NEW_YORK,
        )  # fmt: skip
    assert refused.value.code == "do_not_call"
    assert len(twilio_standin.requests) == before  # nothing reached Twilio


@pytest.mark.django_db
@pytest.mark.parametrize("idempotency_token", [None, "d9f1e8c2-retry"])
def test_a_duplicate_delivery_changes_nothing(client, organization, owner, number, idempotency_token):
    headers = {"I-Twilio-Idempotency-Token": idempotency_token} if idempotency_token else None
    params = {"MessageSid": "SM" + "a" * 32}
    first = text(client, number, "STOP", headers=headers, **params)
    assert first.status_code == 200 and listed(organization)
    # A manager takes the number off; Twilio's retry of the same delivery does not put it back.
    do_not_call_remove(organization=organization, actor=owner, entry=DoNotCallEntry.objects.for_org(organization).get())
    before = len(events(organization))
    again = text(client, number, "STOP", headers=headers, **params)
    assert again.status_code == 200 and again.content == EMPTY
    assert not listed(organization) and len(events(organization)) == before
    assert ReceivedWebhook.objects.filter(provider="twilio", organization_id=organization.id).count() == 1


@pytest.mark.django_db
def test_a_second_stop_from_a_listed_number_changes_nothing(client, organization, number):
    text(client, number, "STOP")
    before = len(events(organization))
    answer = text(client, number, "STOPALL")
    assert answer.status_code == 200 and answer.content == EMPTY
    assert DoNotCallEntry.objects.for_org(organization).count() == 1 and len(events(organization)) == before


@pytest.mark.django_db
def test_start_does_not_take_the_number_off_the_list(client, organization, number):
    text(client, number, "STOP")
    for body, extra in (("START", {}), ("unstop", {}), ("YES", {"OptOutType": "START"})):
        assert text(client, number, body, **extra).content == EMPTY
    assert listed(organization)  # taking a number off stays a manager's decision


@pytest.mark.django_db
def test_a_number_signed_by_another_account_is_refused(client, organization, other_organization, number):
    theirs = line(other_organization, "+14155550177", agent=False)
    assert theirs.account_sid != number.account_sid
    # A valid signature of the other organization's account, about this organization's number.
    refused = text(client, number, "STOP", account_sid=theirs.account_sid)
    assert refused.status_code == 404
    assert not listed(organization) and not listed(other_organization)
    assert not ReceivedWebhook.objects.filter(provider="twilio").exists()


@pytest.mark.django_db
def test_a_number_we_do_not_hold_is_refused(client, organization, number):
    number.released_at = NOON_IN_NEW_YORK
    number.save(update_fields=["released_at"])
    assert text(client, number, "STOP").status_code == 404
    assert not listed(organization)


@pytest.mark.django_db
def test_each_organization_lists_only_texts_to_its_own_numbers(client, organization, other_organization, number):
    theirs = line(other_organization, "+14155550177", agent=False)
    text(client, theirs, "STOP")
    assert listed(other_organization) and not listed(organization)


@pytest.mark.django_db
def test_an_opt_out_from_a_sender_that_is_not_a_phone_number_is_a_clear_400(client, organization, number):
    answer = text(client, number, "STOP", sender="ACME")
    assert answer.status_code == 400 and b"international format" in answer.content
    assert not DoNotCallEntry.objects.for_org(organization).exists()


@pytest.mark.django_db
def test_an_unsigned_or_forged_text_is_refused(client, organization, number):
    forged = client.post(
        "/hooks/twilio/sms/",
        data={"AccountSid": number.account_sid, "To": number.number, "From": TEXTER, "Body": "STOP"},
        headers={"X-Twilio-Signature": "Zm9yZ2Vk"},
    )
    unsigned = client.post("/hooks/twilio/sms/", data={"AccountSid": number.account_sid, "Body": "STOP"})
    assert forged.status_code == 403 and unsigned.status_code == 403
    assert not listed(organization)


@pytest.mark.django_db
def test_odd_but_signed_texts_get_a_clear_answer_never_a_500(client, organization, number):
    nul_to = text(client, number, "STOP", To=number.number + "\x00")
    assert nul_to.status_code in (400, 404)  # a NUL: 400 by the base's checks, else no number of ours (404)
    odd_sid = text(client, number, "STOP", MessageSid="SM-not-a-sid")
    assert odd_sid.status_code == 200 and listed(organization)  # still honoured, without a dedupe record
    assert not ReceivedWebhook.objects.filter(provider="twilio", event_id__contains="not-a-sid").exists()
    long_text = text(client, number, "STOP " * 20_000, sender="+14155550177")
    assert long_text.status_code == 200 and long_text.content == EMPTY
    assert not listed(organization, "+14155550177")
