"""Opt-out per (our number, their number), through Twilio's signed SMS webhook (C15, the SMS side of C31).

Texts are signed as Twilio signs them (the SDK's RequestValidator with the auth token of the number's
subaccount at the Twilio stand-in) and posted to ``/hooks/twilio/sms/``. The pre-send gate is asked
right after: an opt-out takes effect at once.
"""

from __future__ import annotations

import datetime as dt

import pytest

from compliance.models import AuditEvent, DoNotCallEntry
from compliance.selectors import do_not_call_lookup
from compliance.services import do_not_call_remove
from jagcall.kernel.webhooks.models import ReceivedWebhook
from messaging.models import ChangeVia, Direction, Message, MessagingProfile, SenderType, Subscription, SubscriptionChange
from messaging.selectors import subscription_for
from messaging.services.gate import pre_send_check
from messaging.services.subscriptions import subscription_confirm_opt_out, subscription_undo_opt_out
from messaging.tests.support import sms_line, text
from telephony.services.dialing import DialRefused
from telephony.services.outbound import place_call
from telephony.tests.outbound_support import make_agent, twilio_line

PUBLIC = "https://app.jagcall.test"
TEXTER = "+12129870188"  # New York
NOON_IN_NEW_YORK = dt.datetime(2027, 1, 15, 17, 0, tzinfo=dt.UTC)
EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'

pytestmark = pytest.mark.django_db


@pytest.fixture
def number(twilio_standin, settings, organization):
    settings.PUBLIC_BASE_URL = PUBLIC
    return sms_line(organization, "+14155550123")


@pytest.fixture
def second_number(number, organization):
    return sms_line(organization, "+14155550124")


def refusal_codes(organization, sender, to=TEXTER) -> list[str]:
    return [r.code for r in pre_send_check(organization=organization, to_number=to, sender=sender)]


def unsubscribed(number, recipient=TEXTER) -> bool:
    subscription = subscription_for(number, recipient)
    return subscription is not None and not subscription.subscribed


def events(organization, action: str | None = None) -> list[AuditEvent]:
    found = AuditEvent.objects.for_org(organization).order_by("occurred_at", "id")
    return [e for e in found if action is None or e.action == action]


def replies(organization) -> list[Message]:
    return list(
        Message.objects.for_org(organization).filter(direction=Direction.OUTBOUND, sender_type=SenderType.SYSTEM)
    )


# --- keywords ---------------------------------------------------------------------------------


def test_an_opt_out_still_refuses_while_the_blind_index_keys_rotate(client, organization, number, settings):
    # The gate's reads match the one current key's index, or any of the keys' while a new one is added.
    text(client, number, "STOP")
    assert refusal_codes(organization, number) == ["opted_out"]
    settings.JAGCALL_BLIND_INDEX_KEYS = "v2:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUY=," + settings.JAGCALL_BLIND_INDEX_KEYS
    assert refusal_codes(organization, number) == ["opted_out"]  # the row is still under v1
    assert refusal_codes(organization, number, to="+12129870199") == []


@pytest.mark.parametrize(
    "body", ["STOP", "stop", "Stop!", "  quit. ", "UnSubscribe\n", "cancel.", "End 🙏", "revoke", "OptOut", "ＳＴＯＰ"]
)
def test_a_texted_stop_unsubscribes_the_pair_at_once_with_one_confirmation(client, organization, number, body):
    assert refusal_codes(organization, number) == []
    answer = text(client, number, body)
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/xml")
    assert b"<Message>" in answer.content and b"unsubscribed" in answer.content and b"START" in answer.content
    assert unsubscribed(number)
    assert refusal_codes(organization, number) == ["opted_out"]  # at once, not in days
    # The person's text and the confirmation are both in the thread.
    assert [m.body for m in Message.objects.for_org(organization).filter(direction=Direction.INBOUND)] == [body]
    assert len(replies(organization)) == 1
    # A keyword stops calls too: the sender is on the do-not-call list (source: a text).
    entry = DoNotCallEntry.objects.for_org(organization).get()
    assert entry.number == TEXTER and entry.source == "sms" and entry.reason == "consent_revoked"


def test_a_second_stop_changes_nothing_and_sends_no_second_confirmation(client, organization, number):
    text(client, number, "STOP")
    before = len(events(organization))
    for body in ("STOP", "unsubscribe", "please stop texting me"):
        answer = text(client, number, body)
        assert answer.status_code == 200 and answer.content == EMPTY
    assert len(replies(organization)) == 1
    assert SubscriptionChange.objects.for_org(organization).count() == 1
    assert DoNotCallEntry.objects.for_org(organization).count() == 1
    assert [e.action for e in events(organization)[before:]] == []


def test_an_opt_out_is_per_sending_number(client, organization, number, second_number):
    text(client, number, "STOP")
    assert refusal_codes(organization, number) == ["opted_out"]
    assert refusal_codes(organization, second_number) == []  # texted STOP to the other number only
    assert refusal_codes(organization, number, to="+12129870199") == []  # someone else


def test_stopall_unsubscribes_from_every_number_of_the_organization(client, organization, number, second_number):
    answer = text(client, number, "STOPALL")
    assert b"any of our numbers" in answer.content
    assert refusal_codes(organization, number) == ["opted_out"]
    assert refusal_codes(organization, second_number) == ["opted_out"]
    assert len(replies(organization)) == 1


def test_twilios_advanced_opt_out_is_honoured_and_twilio_sends_the_confirmation(client, organization, number):
    # A keyword set in the Twilio console (here in French) arrives with OptOutType=STOP; Twilio answers it itself.
    answer = text(client, number, "Arrêt", OptOutType="STOP")
    assert answer.status_code == 200 and answer.content == EMPTY
    assert unsubscribed(number)
    change = SubscriptionChange.objects.for_org(organization).get()
    assert change.via == ChangeVia.TWILIO_OPT_OUT and change.keyword == "STOP"
    assert replies(organization) == []


def test_start_resubscribes_with_one_confirmation(client, organization, number):
    text(client, number, "STOP")
    answer = text(client, number, "start")
    assert b"subscribed again" in answer.content
    assert not unsubscribed(number) and refusal_codes(organization, number) == []
    history = list(SubscriptionChange.objects.for_org(organization).order_by("created_at"))
    assert [(c.subscribed, c.keyword) for c in history] == [(False, "STOP"), (True, "START")]
    # Texting is open again from this number; calls stay refused until an owner takes the entry off.
    assert do_not_call_lookup(organization=organization, number=TEXTER) is not None


@pytest.mark.parametrize("body", ["YES", "unstop"])
def test_yes_or_unstop_resubscribe_an_unsubscribed_pair(client, organization, number, body):
    text(client, number, "STOP")
    text(client, number, body)
    assert not unsubscribed(number)


def test_yes_from_a_subscribed_person_is_an_ordinary_answer(client, organization, number):
    answer = text(client, number, "YES")
    assert answer.content == EMPTY
    assert not Subscription.objects.for_org(organization).exists()
    assert replies(organization) == []


@pytest.mark.parametrize("body", ["HELP", "info"])
def test_help_and_info_answer_with_the_organizations_help_text(client, organization, number, body):
    default = text(client, number, body)
    assert organization.name.encode() in default.content and b"STOP" in default.content
    MessagingProfile.objects.create(organization=organization, help_text="Acme Dental: call us at +14155550100.")
    custom = text(client, number, body)
    assert b"Acme Dental: call us at +14155550100." in custom.content
    assert not Subscription.objects.for_org(organization).exists()


# --- free-text revocations --------------------------------------------------------------------


def test_a_free_text_revocation_unsubscribes_with_a_confirmation_and_is_flagged(client, organization, number):
    answer = text(client, number, "Please stop texting me, thanks")
    assert b"unsubscribed" in answer.content
    subscription = subscription_for(number, TEXTER)
    assert not subscription.subscribed and subscription.needs_review
    change = SubscriptionChange.objects.for_org(organization).get(subscription=subscription)
    assert change.via == ChangeVia.FREE_TEXT and change.flagged_for_review
    assert change.message.body == "Please stop texting me, thanks"
    assert refusal_codes(organization, number) == ["opted_out"]
    # Calls are not touched by a reading of free text: that stays a decision of the team.
    assert do_not_call_lookup(organization=organization, number=TEXTER) is None


def test_a_member_undoes_a_false_positive_in_one_step_and_it_is_audited(client, organization, owner, number):
    text(client, number, "remove me from your list")
    subscription = subscription_for(number, TEXTER)
    subscription_undo_opt_out(organization=organization, actor=owner, subscription=subscription)
    subscription.refresh_from_db()
    assert subscription.subscribed and not subscription.needs_review
    assert refusal_codes(organization, number) == []
    undo = SubscriptionChange.objects.for_org(organization).filter(via=ChangeVia.MEMBER_UNDO).get()
    assert undo.subscribed and undo.actor_label == owner.email
    audited = events(organization, "sms_subscription.resubscribed")
    assert len(audited) == 1 and audited[0].actor_label == owner.email and audited[0].metadata["via"] == "member_undo"


def test_a_keyword_opt_out_cannot_be_undone_by_a_member(client, organization, owner, number):
    from jagcall.kernel.errors import ApplicationError

    text(client, number, "STOP")
    with pytest.raises(ApplicationError) as refused:
        subscription_undo_opt_out(organization=organization, actor=owner, subscription=subscription_for(number, TEXTER))
    assert refused.value.code == "not_undoable" and "START" in refused.value.message
    assert unsubscribed(number)


def test_keeping_a_flagged_opt_out_clears_the_flag_and_keeps_it(client, organization, owner, number):
    text(client, number, "no more texts")
    subscription = subscription_for(number, TEXTER)
    subscription_confirm_opt_out(organization=organization, actor=owner, subscription=subscription)
    subscription.refresh_from_db()
    assert not subscription.subscribed and not subscription.needs_review
    assert len(events(organization, "sms_subscription.review_confirmed")) == 1


@pytest.mark.parametrize("body", ["stop by tomorrow?", "don't stop", "Hi, can I move my appointment to Friday?", ""])
def test_an_ordinary_text_changes_nothing_and_gets_empty_twiml(client, organization, number, body):
    answer = text(client, number, body)
    assert answer.status_code == 200 and answer.content == EMPTY
    assert not Subscription.objects.for_org(organization).exists()
    assert not DoNotCallEntry.objects.for_org(organization).exists()


# --- the record ---------------------------------------------------------------------------------


def test_every_change_is_audited_and_in_the_history_without_the_number_in_clear(client, organization, number):
    text(client, number, "STOP")
    text(client, number, "START")
    text(client, number, "please stop messaging me")
    actions = [e.action for e in events(organization) if e.action.startswith("sms_subscription.")]
    assert actions == [
        "sms_subscription.unsubscribed", "sms_subscription.resubscribed", "sms_subscription.unsubscribed",
    ]  # fmt: skip
    for event in events(organization, "sms_subscription.unsubscribed"):
        assert event.actor_key == "webhook:twilio" and event.metadata["sender"] == number.number
    assert SubscriptionChange.objects.for_org(organization).count() == 3
    for event in events(organization):
        recorded = f"{event.metadata} {event.changes}"
        for clear in (TEXTER, TEXTER.lstrip("+"), "2129870188", "9870188", "870188"):
            assert clear not in recorded


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


# --- the webhook's edges ---------------------------------------------------------------------------


@pytest.mark.parametrize("idempotency_token", [None, "d9f1e8c2-retry"])
def test_a_duplicate_delivery_changes_nothing(client, organization, owner, number, idempotency_token):
    headers = {"I-Twilio-Idempotency-Token": idempotency_token} if idempotency_token else None
    params = {"MessageSid": "SM" + "a" * 32}
    first = text(client, number, "STOP", headers=headers, **params)
    assert first.status_code == 200 and unsubscribed(number)
    do_not_call_remove(organization=organization, actor=owner, entry=DoNotCallEntry.objects.for_org(organization).get())
    before = len(events(organization))
    again = text(client, number, "STOP", headers=headers, **params)
    assert again.status_code == 200 and again.content == EMPTY  # no second confirmation
    assert do_not_call_lookup(organization=organization, number=TEXTER) is None
    assert len(events(organization)) == before
    assert Message.objects.for_org(organization).filter(direction=Direction.INBOUND).count() == 1
    assert ReceivedWebhook.objects.filter(provider="twilio", organization_id=organization.id).count() == 1


def test_a_number_signed_by_another_account_is_refused(client, organization, other_organization, number):
    theirs = sms_line(other_organization, "+14155550177")
    assert theirs.account_sid != number.account_sid
    refused = text(client, number, "STOP", account_sid=theirs.account_sid)
    assert refused.status_code == 404
    assert not Subscription.objects.unscoped("test").exists() and not Message.objects.unscoped("test").exists()
    assert not ReceivedWebhook.objects.filter(provider="twilio").exists()


def test_a_number_we_do_not_hold_is_refused(client, organization, number):
    number.released_at = NOON_IN_NEW_YORK
    number.save(update_fields=["released_at"])
    assert text(client, number, "STOP").status_code == 404
    assert not Subscription.objects.for_org(organization).exists()


def test_each_organization_hears_only_texts_to_its_own_numbers(client, organization, other_organization, number):
    theirs = sms_line(other_organization, "+14155550177")
    text(client, theirs, "STOP")
    assert unsubscribed(theirs) and not Subscription.objects.for_org(organization).exists()
    assert not Message.objects.for_org(organization).exists()


def test_a_sender_that_is_not_a_phone_number_is_a_clear_400(client, organization, number):
    answer = text(client, number, "STOP", sender="ACME")
    assert answer.status_code == 400 and b"international format" in answer.content
    assert not Message.objects.for_org(organization).exists()


def test_an_unsigned_or_forged_text_is_refused(client, organization, number):
    forged = client.post(
        "/hooks/twilio/sms/",
        data={"AccountSid": number.account_sid, "To": number.number, "From": TEXTER, "Body": "STOP"},
        headers={"X-Twilio-Signature": "Zm9yZ2Vk"},
    )
    unsigned = client.post("/hooks/twilio/sms/", data={"AccountSid": number.account_sid, "Body": "STOP"})
    assert forged.status_code == 403 and unsigned.status_code == 403
    assert not Subscription.objects.for_org(organization).exists() and not Message.objects.for_org(organization).exists()


def test_odd_but_signed_texts_get_a_clear_answer_never_a_500(client, organization, number):
    nul_to = text(client, number, "STOP", To=number.number + "\x00")
    assert nul_to.status_code in (400, 404)
    odd_media = text(client, number, "hello", NumMedia="lots")
    assert odd_media.status_code == 400
    odd_sid = text(client, number, "STOP", MessageSid="SM-not-a-sid")
    assert odd_sid.status_code == 200 and unsubscribed(number)  # still honoured, without a dedupe record
    assert not ReceivedWebhook.objects.filter(provider="twilio", event_id__contains="not-a-sid").exists()
    long_text = text(client, number, "STOP " * 20_000, sender="+14155550177")
    assert long_text.status_code == 200 and long_text.content == EMPTY
    assert not unsubscribed(number, "+14155550177")


def test_the_gate_reads_the_do_not_call_list_and_the_subscription_in_one_statement(
    client, organization, other_organization, owner, other_owner, number, second_number, django_assert_num_queries
):
    """Both of the check's reads go to PostgreSQL together; each still answers for its own rows only."""
    from compliance.services import do_not_call_add
    from telephony.tests.factories import PhoneNumberFactory

    listed, clean = "+12129870155", "+12129870166"
    text(client, number, "STOP", sender=listed)  # opted out of `number` (and listed as texted: source "sms")
    entry = DoNotCallEntry.objects.for_org(organization).get()
    do_not_call_remove(organization=organization, actor=owner, entry=entry)
    do_not_call_add(organization=organization, actor=owner, number=listed)  # an owner lists it for calls and texts
    elsewhere = PhoneNumberFactory(organization=other_organization, sms_enabled=True)
    do_not_call_add(organization=other_organization, actor=other_owner, number=clean)  # another organization's list

    with django_assert_num_queries(1):
        assert refusal_codes(organization, number, to=listed) == ["do_not_call", "opted_out"]
    with django_assert_num_queries(1):
        assert refusal_codes(organization, second_number, to=listed) == ["do_not_call"]  # opted out of the other
    with django_assert_num_queries(1):
        assert refusal_codes(organization, number, to=clean) == []
    with django_assert_num_queries(1):
        assert refusal_codes(other_organization, elsewhere, to=clean) == ["do_not_call"]
    with django_assert_num_queries(1):  # no sending number: the list alone
        assert refusal_codes(organization, None, to=listed) == ["sender_number", "do_not_call"]


def test_a_text_delivered_again_after_its_dedupe_record_was_purged_changes_nothing(client, organization, number):
    """The webhook base forgets deliveries after a while; the message's own unique MessageSid still answers a
    late retry: no second message, no unread, no second opt-out or confirmation, and no error."""
    params = {"MessageSid": "SM" + "b" * 32}
    first = text(client, number, "STOP", **params)
    assert b"unsubscribed" in first.content
    ReceivedWebhook.objects.filter(provider="twilio", organization_id=organization.id).delete()
    conversation = Message.objects.for_org(organization).get(direction=Direction.INBOUND).conversation
    before = (len(events(organization)), conversation.unread_count)
    again = text(client, number, "STOP", **params)
    assert again.status_code == 200 and again.content == EMPTY
    conversation.refresh_from_db()
    assert (len(events(organization)), conversation.unread_count) == before
    assert Message.objects.for_org(organization).filter(direction=Direction.INBOUND).count() == 1
    assert len(replies(organization)) == 1 and SubscriptionChange.objects.for_org(organization).count() == 1
