"""What a person signed in with ends when what vouched for it changes (accounts/revocation.py).

Each change below goes through the real page that makes it, and then:
- the person's other signed-in browser is signed out (pages send it to the
  sign-in page; the API's session credential answers 401);
- their outstanding JWT refresh tokens are refused at /api/v1/auth/token/refresh;
- their OAuth refresh tokens are refused at /oauth/token;
- the session that made the change keeps working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.jwt.tokens import OrganizationRefreshToken
from accounts.models import Membership
from accounts.oauth.tests.factories import refresh as oauth_refresh
from accounts.oauth.tests.factories import register, tokens_for
from accounts.tests.factories import DEFAULT_PASSWORD, enable_totp

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"
REFRESH_URL = "/api/v1/auth/token/refresh"
NEW_PASSWORD = "an entirely new passphrase 2"


def page(organization) -> str:
    return f"/o/{organization.slug}/"


def signed_in(user, organization) -> Client:
    """A browser where ``user`` signed in (with their second factor when they have one)."""
    browser = Client()
    browser.force_login(user)
    assert browser.get(page(organization)).status_code == 200  # the session is now listed as the person's
    return browser


@dataclass
class Outstanding:
    """Everything ``user`` holds besides the browser that will make the change."""

    browser: Client
    jwt_refresh: str
    oauth_app: object
    oauth_refresh: str


def outstanding(user, organization) -> Outstanding:
    browser = signed_in(user, organization)
    jwt_refresh = str(OrganizationRefreshToken.for_membership(user=user, organization=organization))
    app = register(organization, name=f"CRM for {user.email}")
    oauth = tokens_for(browser, app, organization=organization, scopes=("organization:read",))
    return Outstanding(browser, jwt_refresh, app, oauth["refresh_token"])


def assert_ended(held: Outstanding, organization) -> None:
    response = held.browser.get(page(organization))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))
    assert held.browser.get(ME, HTTP_X_ORGANIZATION=organization.slug).status_code == 401
    response = APIClient().post(REFRESH_URL, {"refresh": held.jwt_refresh}, format="json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "token_not_valid"
    response = oauth_refresh(Client(), held.oauth_app, held.oauth_refresh)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def assert_kept(browser: Client, organization) -> None:
    assert browser.get(page(organization)).status_code == 200
    assert browser.get(ME, HTTP_X_ORGANIZATION=organization.slug).status_code == 200


# --- each change ---------------------------------------------------------------------------


def test_a_password_change_ends_the_persons_other_sign_ins_and_keeps_this_one(organization, owner, events):
    held = outstanding(owner, organization)
    browser = signed_in(owner, organization)
    response = browser.post(
        reverse("account_change_password"),
        {"oldpassword": DEFAULT_PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.content[:500]
    assert_ended(held, organization)
    assert_kept(browser, organization)
    assert "user.sign_ins_revoked" in [e["event"] for e in events]


def test_a_password_reset_ends_every_sign_in_of_the_person(organization, owner):
    held = outstanding(owner, organization)
    browser = Client()  # the person who forgot their password, not signed in
    browser.post(reverse("account_reset_password"), {"email": owner.email})
    link = re.search(r"https?://[^/\s]+(/auth/password/reset/key/\S+/)", mail.outbox[-1].body).group(1)
    form = browser.get(link)
    response = browser.post(form["Location"], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content[:500]
    assert_ended(held, organization)


def test_removing_the_second_factor_ends_the_persons_other_sign_ins_and_keeps_this_one(organization, owner):
    enable_totp(owner)
    held = outstanding(owner, organization)
    browser = signed_in(owner, organization)  # password and code
    response = browser.get(reverse("mfa_deactivate_totp"))
    if response.status_code == 302 and "reauthenticate" in response["Location"]:
        browser.post(response["Location"], {"password": DEFAULT_PASSWORD})
    response = browser.post(reverse("mfa_deactivate_totp"))
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=owner, type="totp").exists()
    assert_ended(held, organization)
    assert_kept(browser, organization)


def test_signing_in_with_a_recovery_code_ends_the_persons_other_sign_ins(organization, owner):
    enable_totp(owner)
    codes = RecoveryCodes.activate(owner).generate_codes()
    held = outstanding(owner, organization)
    browser = Client()
    response = browser.post(reverse("account_login"), {"login": owner.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    response = browser.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert response.status_code == 302
    assert_ended(held, organization)
    assert_kept(browser, organization)


def test_requiring_single_sign_on_ends_the_members_sign_ins_and_keeps_the_owners_session(
    organization, owner, member, tmp_path
):
    from accounts.sso import services as sso
    from accounts.tests.test_sso import TestIdP

    organization.plan_code = "enterprise"
    organization.save(update_fields=["plan_code"])
    idp = TestIdP(tmp_path)
    sso.sso_configure(
        organization=organization, actor=owner, metadata_xml=idp.metadata_xml, enabled=True, require_sso=False
    )
    held = outstanding(member, organization)
    owners_other = outstanding(owner, organization)
    browser = signed_in(owner, organization)

    response = browser.post(
        reverse("accounts:organization-sso", kwargs={"org_slug": organization.slug}),
        {"metadata_xml": idp.metadata_xml, "enabled": "on", "require_sso": "on"},
    )
    assert response.status_code == 302, response.content[:500]
    assert_ended(held, organization)
    assert_kept(browser, organization)
    # Owners are not made to use single sign-on, so their sign-ins stand.
    assert_kept(owners_other.browser, organization)
    response = APIClient().post(REFRESH_URL, {"refresh": owners_other.jwt_refresh}, format="json")
    assert response.status_code == 200


def test_saving_single_sign_on_settings_that_already_required_it_ends_nothing(
    organization, owner, member, tmp_path, events
):
    from accounts.sso import services as sso
    from accounts.tests.test_sso import TestIdP

    organization.plan_code = "enterprise"
    organization.save(update_fields=["plan_code"])
    idp = TestIdP(tmp_path)
    sso.sso_configure(
        organization=organization, actor=owner, metadata_xml=idp.metadata_xml, enabled=True, require_sso=True
    )
    assert [e["event"] for e in events].count("user.sign_ins_revoked") == 1  # the member's, once
    sso.sso_configure(
        organization=organization, actor=owner, metadata_xml=idp.metadata_xml, enabled=True, require_sso=True
    )
    assert [e["event"] for e in events].count("user.sign_ins_revoked") == 1


def test_removal_from_an_organization_ends_the_persons_sign_ins_and_keeps_the_removers_session(
    organization, owner, member
):
    held = outstanding(member, organization)
    browser = signed_in(owner, organization)
    membership = Membership.objects.for_org(organization).get(user=member)
    response = browser.post(
        reverse("accounts:membership-remove", kwargs={"org_slug": organization.slug, "membership_id": membership.pk})
    )
    assert response.status_code == 302
    assert not Membership.objects.for_org(organization).filter(user=member).exists()
    assert_ended(held, organization)
    assert_kept(browser, organization)


# --- a JWT refresh re-checks what the token cannot know ----------------------------------------


def test_a_jwt_refresh_re_checks_membership(organization, member):
    jwt_refresh = str(OrganizationRefreshToken.for_membership(user=member, organization=organization))
    Membership.objects.for_org(organization).filter(user=member).delete()  # no service: nothing was revoked
    response = APIClient().post(REFRESH_URL, {"refresh": jwt_refresh}, format="json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "token_not_valid"
