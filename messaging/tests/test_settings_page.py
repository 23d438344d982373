"""The messaging settings page (/o/<slug>/messages/settings/): the HELP answer, "Agent answers texts" per
number and its A2P 10DLC status with "Check now" (the real twilio SDK against the Twilio stand-in).
Owners and admins only; every change is audited with who made it."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from compliance.models import AuditEvent
from messaging.models import A2PStatus, MessagingProfile, NumberMessaging
from messaging.services.inbound import help_text
from messaging.tests.support import sms_line

pytestmark = pytest.mark.django_db

PUBLIC = "https://app.jagcall.test"


@pytest.fixture
def twilio(twilio_standin, settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    return twilio_standin


def page_url(organization) -> str:
    return reverse("messaging:settings", kwargs={"org_slug": organization.slug})


def toggle_url(organization, number) -> str:
    return reverse("messaging:settings-agent-replies", kwargs={"org_slug": organization.slug, "number_id": number.id})


def check_url(organization, number) -> str:
    return reverse("messaging:settings-a2p-check", kwargs={"org_slug": organization.slug, "number_id": number.id})


def events(organization, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.for_org(organization).filter(action=action).order_by("occurred_at"))


def row_of(organization, number) -> NumberMessaging | None:
    return NumberMessaging.objects.for_org(organization).filter(phone_number=number).first()


# --- the page ------------------------------------------------------------------------------------


def test_without_a_number_that_texts_the_page_says_where_to_get_one(owner_client, organization):
    response = owner_client.get(page_url(organization))

    assert response.status_code == 200
    body = response.content.decode()
    assert "data-empty-numbers" in body and "can send texts yet" in body
    assert reverse("telephony:number-list", kwargs={"org_slug": organization.slug}) in body
    # The HELP answer can be written before any number exists; the default shows what is sent meanwhile.
    assert 'name="help_text"' in body and escape(help_text(organization)) in body


def test_each_number_that_texts_is_listed_with_its_agent_and_a2p_status(twilio, owner_client, organization):
    answered = sms_line(organization, agent=True)
    unanswered = sms_line(organization, "+12129870111")
    voice_only = sms_line(organization, "+13125550177")
    voice_only.sms_enabled = False
    voice_only.save(update_fields=["sms_enabled"])

    body = owner_client.get(page_url(organization)).content.decode()

    assert answered.number in body and unanswered.number in body and voice_only.number not in body
    assert answered.agent.name in body
    assert toggle_url(organization, answered) in body
    # No agent: the switch is disabled and says what to do; there is nothing to post.
    assert toggle_url(organization, unanswered) not in body
    assert "No agent answers this number: choose one under" in body
    assert body.count("Not checked yet") == 2 and body.count("Check now") >= 2
    assert check_url(organization, answered) in body and check_url(organization, unanswered) in body


# --- agent replies -------------------------------------------------------------------------------


def test_an_owner_turns_agent_replies_on_and_off_and_each_change_is_audited(twilio, owner_client, organization, owner):
    number = sms_line(organization, agent=True)

    on = owner_client.post(toggle_url(organization, number), {"agent_replies": ["off", "on"]}, follow=True)
    assert on.status_code == 200
    assert row_of(organization, number).agent_replies is True
    assert f"{number.agent.name} now answers texts to {number.number}" in on.content.decode()
    assert 'value="on" checked' in on.content.decode()

    off = owner_client.post(toggle_url(organization, number), {"agent_replies": "off"}, follow=True)
    assert off.status_code == 200 and row_of(organization, number).agent_replies is False

    [enabled] = events(organization, "phone_number.agent_replies_enabled")
    [disabled] = events(organization, "phone_number.agent_replies_disabled")
    assert enabled.actor_id == disabled.actor_id == owner.id
    assert enabled.changes["agent_replies"] == {"before": False, "after": True}
    assert enabled.resource_id == str(number.id) and enabled.metadata["number"] == number.number


def test_the_same_choice_again_changes_nothing_and_records_nothing(twilio, owner_client, organization):
    number = sms_line(organization, agent=True)
    owner_client.post(toggle_url(organization, number), {"agent_replies": "on"})
    owner_client.post(toggle_url(organization, number), {"agent_replies": "on"})
    assert len(events(organization, "phone_number.agent_replies_enabled")) == 1


def test_a_number_without_an_agent_cannot_answer_texts(twilio, owner_client, organization):
    number = sms_line(organization)

    response = owner_client.post(toggle_url(organization, number), {"agent_replies": "on"})

    assert response.status_code == 409
    assert f"No agent answers {number.number}: choose one for it under Numbers" in response.content.decode()
    assert row_of(organization, number) is None
    assert events(organization, "phone_number.agent_replies_enabled") == []


def test_a_missing_or_unknown_choice_is_a_400(twilio, owner_client, organization):
    number = sms_line(organization, agent=True)
    for data in ({}, {"agent_replies": "maybe"}):
        response = owner_client.post(toggle_url(organization, number), data)
        assert response.status_code == 400
        assert "Choose whether the agent answers texts" in response.content.decode()
    assert row_of(organization, number) is None


def test_a_number_that_cannot_text_has_no_agent_replies(twilio, owner_client, organization):
    number = sms_line(organization, agent=True)
    number.sms_enabled = False
    number.save(update_fields=["sms_enabled"])

    response = owner_client.post(toggle_url(organization, number), {"agent_replies": "on"})

    assert response.status_code == 409 and "cannot send or receive texts" in response.content.decode()
    assert row_of(organization, number) is None


# --- the HELP answer -----------------------------------------------------------------------------


def test_an_owner_saves_the_help_answer_and_helps_get_it(owner_client, organization, owner):
    answer = "Acme Dental: call us at +1 415 555 0100 or write to hello@acme.test. Reply STOP to unsubscribe."

    response = owner_client.post(page_url(organization), {"help_text": f"  {answer}  "}, follow=True)

    assert response.status_code == 200 and "texting HELP now gets your answer" in response.content.decode()
    assert MessagingProfile.objects.for_org(organization).get().help_text == answer
    assert help_text(organization) == answer
    [event] = events(organization, "messaging_profile.help_text_changed")
    assert event.actor_id == owner.id and event.changes["help_text"] == {"before": "", "after": answer}


def test_an_empty_help_answer_goes_back_to_the_default(owner_client, organization):
    answer = "Acme Dental: reply STOP to unsubscribe, call 415 555 0100."
    owner_client.post(page_url(organization), {"help_text": answer})
    default = f"{organization.name}: reply STOP to unsubscribe"

    response = owner_client.post(page_url(organization), {"help_text": ""}, follow=True)

    assert "texting HELP now gets the default answer" in response.content.decode()
    assert help_text(organization).startswith(default)
    assert len(events(organization, "messaging_profile.help_text_changed")) == 2


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ("A" * 300 + " Reply STOP to opt out.", "keep it to 320"),
        ("Acme Dental: call us at 415 555 0100.", "say how to opt out"),
        ("Acme Dental\u200b: reply STOP to unsubscribe.", "invisible control characters"),
    ],
)
def test_a_help_answer_carriers_would_refuse_is_a_400_saying_what_to_fix(owner_client, organization, answer, says):
    response = owner_client.post(page_url(organization), {"help_text": answer})

    assert response.status_code == 400
    assert says in response.content.decode()
    assert not MessagingProfile.objects.for_org(organization).exists()
    assert events(organization, "messaging_profile.help_text_changed") == []


# --- A2P 10DLC: "Check now" ----------------------------------------------------------------------


def test_check_now_asks_twilio_and_shows_the_status(twilio, owner_client, organization, owner):
    number = sms_line(organization)
    campaign = twilio.register_a2p(number.account_sid, number.number, "VERIFIED")

    response = owner_client.post(check_url(organization, number), follow=True)

    assert response.status_code == 200
    body = response.content.decode()
    assert f"{number.number}: Registered." in body and "US carriers accept its texts." in body
    assert 'data-a2p-status="verified"' in body and "checked" in body
    row = row_of(organization, number)
    assert (row.a2p_status, row.a2p_campaign_sid) == (A2PStatus.VERIFIED, campaign.sid)
    [event] = events(organization, "phone_number.a2p_checked")
    assert event.actor_id == owner.id and event.changes["a2p_status"]["after"] == A2PStatus.VERIFIED


def test_check_now_on_an_unregistered_number_says_how_to_register(twilio, owner_client, organization):
    number = sms_line(organization)

    body = owner_client.post(check_url(organization, number), follow=True).content.decode()

    assert f"{number.number}: Not registered." in body
    assert "Register it for A2P 10DLC in Twilio (Messaging &gt; Regulatory compliance)" in body
    # A member's check is recorded even when nothing changed since the last one.
    owner_client.post(check_url(organization, number))
    assert len(events(organization, "phone_number.a2p_checked")) == 2


def test_check_now_when_twilio_is_down_keeps_the_status_and_says_so(twilio, owner_client, organization):
    number = sms_line(organization)
    twilio.register_a2p(number.account_sid, number.number, "PENDING")
    owner_client.post(check_url(organization, number))
    twilio.fail_next(503, path_prefix="/v1/Services", times=10)

    response = owner_client.post(check_url(organization, number))

    assert response.status_code == 503
    assert "Could not check the A2P 10DLC registration" in response.content.decode()
    assert row_of(organization, number).a2p_status == A2PStatus.PENDING
    assert len(events(organization, "phone_number.a2p_checked")) == 1


def test_a_uk_number_needs_no_registration(twilio, owner_client, organization):
    number = sms_line(organization, "+442071838750")

    body = owner_client.post(check_url(organization, number), follow=True).content.decode()

    assert "Not required (not a US long code)" in body and "needs no registration" in body
    assert twilio.requests_to("/v1/") == []


# --- who may -------------------------------------------------------------------------------------


def test_an_admin_may_change_the_settings(twilio, client, organization, admin_user):
    number = sms_line(organization, agent=True)
    client.force_login(admin_user)
    assert client.get(page_url(organization)).status_code == 200
    assert client.post(toggle_url(organization, number), {"agent_replies": "on"}).status_code == 302
    assert row_of(organization, number).agent_replies is True


def test_a_member_without_numbers_manage_gets_403_and_changes_nothing(twilio, client, organization, member):
    number = sms_line(organization, agent=True)
    client.force_login(member)

    assert client.get(page_url(organization)).status_code == 403
    assert client.post(page_url(organization), {"help_text": "Reply STOP to unsubscribe."}).status_code == 403
    assert client.post(toggle_url(organization, number), {"agent_replies": "on"}).status_code == 403
    assert client.post(check_url(organization, number)).status_code == 403

    assert not MessagingProfile.objects.for_org(organization).exists()
    assert row_of(organization, number) is None
    assert twilio.requests_to("/v1/") == []


def test_another_organizations_number_is_a_404(twilio, owner_client, organization, other_organization):
    theirs = sms_line(other_organization, agent=True)

    assert owner_client.post(toggle_url(organization, theirs), {"agent_replies": "on"}).status_code == 404
    assert owner_client.post(check_url(organization, theirs)).status_code == 404
    assert row_of(other_organization, theirs) is None
    assert twilio.requests_to("/v1/") == []
    assert theirs.number not in owner_client.get(page_url(organization)).content.decode()


def test_another_organizations_page_is_a_404(owner_client, other_organization):
    assert owner_client.get(page_url(other_organization)).status_code == 404
