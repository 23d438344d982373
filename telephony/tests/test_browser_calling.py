"""Browser calling tokens (C14): a one-hour Twilio access token with a Voice grant for one member of one
organization, signed by an API key of the organization's own Twilio account, made once through the real
twilio SDK against the Twilio stand-in."""

from __future__ import annotations

import json
from datetime import datetime

import jwt
import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from accounts.services import membership_remove
from compliance.models import AuditEvent
from telephony.models import BrowserCallingApp, TwilioSubaccount
from telephony.services.browser import browser_identity, browser_identity_parse

pytestmark = pytest.mark.django_db


def token_url(organization) -> str:
    return reverse("telephony:browser-token", kwargs={"org_slug": organization.slug})


@pytest.fixture
def member_client(member):
    client = Client()
    client.force_login(member)
    return client


def issue(client, organization):
    response = client.post(token_url(organization), HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content[:500]
    return response.json()


def decode(raw: str, standin) -> tuple[dict, dict]:
    """Header and claims, the signature checked with the secret the stand-in gave the key the token names."""
    claims = jwt.decode(raw, options={"verify_signature": False})
    secret, _account = standin.api_keys[claims["iss"]]
    header = jwt.get_unverified_header(raw)
    verified = jwt.decode(raw, secret, algorithms=["HS256"], options={"require": ["exp", "nbf", "iat", "iss", "sub"]})
    return header, verified


def requests_to(standin, method: str, resource: str) -> list:
    return [r for r in standin.requests if r.method == method and r.path.endswith(f"/{resource}.json")]


def test_token_lasts_exactly_one_hour_with_a_voice_grant_bound_to_the_member(
    twilio_standin, organization, member, member_client
):
    body = issue(member_client, organization)

    header, claims = decode(body["token"], twilio_standin)
    app = BrowserCallingApp.objects.for_org(organization).get()
    subaccount = TwilioSubaccount.objects.for_org(organization).get()
    assert header["alg"] == "HS256" and header["cty"] == "twilio-fpa;v=1"
    # [!!] C14: exactly one hour from issue.
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["exp"] - claims["nbf"] == 3600
    # Signed by the organization's own key, in its own (sub)account.
    assert claims["iss"] == app.api_key_sid
    assert claims["sub"] == subaccount.account_sid == app.account_sid
    assert twilio_standin.api_keys[app.api_key_sid][1] == subaccount.account_sid
    # The grant: this member of this organization, the organization's TwiML application, incoming allowed.
    identity = browser_identity(user=member, organization=organization)
    assert claims["grants"]["identity"] == identity == body["identity"]
    assert browser_identity_parse(identity) == (member.pk, organization.pk)
    assert member.email not in body["token"] and member.email not in json.dumps(claims)
    assert claims["grants"]["voice"] == {
        "outgoing": {"application_sid": app.twiml_app_sid},
        "incoming": {"allow": True},
    }
    assert datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp() == claims["exp"]


def test_a_token_signed_with_another_secret_does_not_verify(twilio_standin, organization, member_client):
    raw = issue(member_client, organization)["token"]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(raw, "not-the-key-secret", algorithms=["HS256"])


def test_application_and_key_are_made_once_in_the_organizations_account(
    twilio_standin, settings, organization, member, member_client
):
    first = issue(member_client, organization)
    second = issue(member_client, organization)

    assert first["token"] and second["token"]
    applications = requests_to(twilio_standin, "POST", "Applications")
    keys = requests_to(twilio_standin, "POST", "Keys")
    assert len(applications) == 1 and len(keys) == 1
    subaccount = TwilioSubaccount.objects.for_org(organization).get()
    assert f"/Accounts/{subaccount.account_sid}/" in applications[0].path
    assert f"/Accounts/{subaccount.account_sid}/" in keys[0].path
    assert applications[0].form["VoiceUrl"] == settings.PUBLIC_BASE_URL.rstrip("/") + "/hooks/twilio/browser/voice/"
    assert applications[0].form["VoiceMethod"] == "POST"
    app = BrowserCallingApp.objects.for_org(organization).get()
    assert twilio_standin.applications[app.twiml_app_sid].settings["VoiceUrl"] == applications[0].form["VoiceUrl"]


def test_the_key_secret_is_stored_encrypted(twilio_standin, organization, member_client):
    from django.db import connection

    issue(member_client, organization)
    app = BrowserCallingApp.objects.for_org(organization).get()
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_secret FROM telephony_browsercallingapp WHERE id = %s", [app.id])
        raw = bytes(cursor.fetchone()[0])
    secret = twilio_standin.api_keys[app.api_key_sid][0]
    assert app.api_key_secret == secret
    assert secret.encode() not in raw and len(raw) > len(secret)


def test_another_organizations_member_gets_404(twilio_standin, organization, other_owner):
    client = Client()
    client.force_login(other_owner)
    assert client.post(token_url(organization)).status_code == 404
    assert not requests_to(twilio_standin, "POST", "Keys")


def test_a_removed_member_gets_no_token(twilio_standin, organization, owner, member, member_client):
    issue(member_client, organization)
    membership = Membership.objects.for_org(organization).get(user=member)
    membership_remove(organization=organization, actor=owner, membership=membership)

    again = Client()
    again.force_login(member)
    assert again.post(token_url(organization)).status_code == 404


def test_signed_out_visitor_and_get_are_refused(twilio_standin, organization, member_client):
    response = Client().post(token_url(organization))
    assert response.status_code == 302 and "/auth/login/" in response["Location"]
    assert member_client.get(token_url(organization)).status_code == 405
    assert not requests_to(twilio_standin, "POST", "Keys")


def test_token_needs_the_csrf_token(twilio_standin, organization, member):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    assert client.post(token_url(organization)).status_code == 403
    page = client.get(reverse("telephony:softphone", kwargs={"org_slug": organization.slug}))
    csrf = page.context["csrf_token"]
    assert client.post(token_url(organization), HTTP_X_CSRFTOKEN=str(csrf)).status_code == 200


def test_set_up_is_audited_and_token_issues_once_per_member_and_hour(twilio_standin, organization, member, member_client):
    issue(member_client, organization)
    issue(member_client, organization)

    events = AuditEvent.objects.for_org(organization)
    set_up = events.filter(action="browser_calling.set_up")
    issued = events.filter(action="browser_calling.token_issued")
    assert set_up.count() == 1 and issued.count() == 1
    assert issued.get().metadata["identity"] == browser_identity(user=member, organization=organization)
    assert issued.get().metadata["ttl_seconds"] == 3600


def test_twilio_unreachable_is_a_clear_502(settings, organization, member_client):
    settings.PROVIDER_BASE_URLS = {"twilio": "http://127.0.0.1:9"}  # nothing listens there
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC" + "1" * 32, "platform-token"
    settings.PROVIDER_MAX_RETRIES = 0
    response = member_client.post(token_url(organization))
    assert response.status_code == 502
    assert "Twilio could not set up browser calling" in response.json()["error"]
    assert not BrowserCallingApp.objects.for_org(organization).exists()


def test_identity_parse_refuses_anything_else():
    assert browser_identity_parse("client:alice") is None
    assert browser_identity_parse("u" + "0" * 32 + "_o" + "g" * 32) is None
    assert browser_identity_parse("") is None
    raw = "u" + "a" * 32 + "_o" + "b" * 32
    assert browser_identity_parse("client:" + raw) == browser_identity_parse(raw)


def test_softphone_page_lists_the_organizations_voice_lines(settings, organization, other_organization, member_client):
    from telephony.tests.factories import PhoneNumberFactory

    settings.SIMULATED_PROVIDERS = False
    url = reverse("telephony:softphone", kwargs={"org_slug": organization.slug})
    empty = member_client.get(url).content.decode()
    assert "has no phone number to call from yet" in empty
    mine = PhoneNumberFactory(organization=organization, number="+14155550101")
    PhoneNumberFactory(organization=organization, number="+14155550102", voice_enabled=False)
    PhoneNumberFactory(organization=other_organization, number="+14155550103")
    page = member_client.get(url).content.decode()
    assert f'<option value="{mine.number}">' in page
    assert "+14155550102" not in page and "+14155550103" not in page
    assert 'data-simulated="false"' in page and "data-softphone-simulated" not in page
    assert "twilio-voice-sdk-2.18.5/twilio.min.js" in page and token_url(organization) in page


def test_softphone_page_says_plainly_when_calls_are_simulated(settings, organization, member_client):
    settings.SIMULATED_PROVIDERS = True
    page = member_client.get(reverse("telephony:softphone", kwargs={"org_slug": organization.slug})).content.decode()
    assert "Calls are simulated here, so this browser phone cannot connect." in page
    assert 'data-simulated="true"' in page


def test_softphone_page_is_members_only(organization, other_owner):
    client = Client()
    client.force_login(other_owner)
    assert client.get(reverse("telephony:softphone", kwargs={"org_slug": organization.slug})).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_tokens_make_one_application_and_one_key(twilio_standin, organization, member):
    import threading

    from django.db import connection

    from telephony.services.twilio_accounts import subaccount_ensure

    subaccount_ensure(organization=organization)
    barrier, results = threading.Barrier(4), []

    def first_token():
        try:
            client = Client()
            client.force_login(member)
            barrier.wait(timeout=10)
            results.append(client.post(token_url(organization)).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=first_token) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [200] * 4
    assert len(requests_to(twilio_standin, "POST", "Applications")) == 1
    assert len(requests_to(twilio_standin, "POST", "Keys")) == 1
    assert BrowserCallingApp.objects.for_org(organization).count() == 1
