"""A second factor and a single sign-on belong to the session (accounts/access.py).

Every way in asks the one access check how *this session* was signed in:
pages under /o/<slug>/, the API with the session credential (X-Organization),
the back office, the OAuth consent screen and JWTs (which carry ``amr``).
Sessions are built as the sign-in flows leave them (allauth's records and
our single sign-on record); reauthentication goes through allauth's real
pages with a real password or code.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import jwt
import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.conf import settings
from django.urls import reverse

from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory, enable_totp
from conftest import record_sign_in

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"
TOKEN_URL = "/api/v1/auth/token"
REFRESH_URL = "/api/v1/auth/token/refresh"


# --- helpers ---------------------------------------------------------------------------------


def code_at(secret: str, steps_from_now: int = 0) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + steps_from_now))


def page(organization) -> str:
    return f"/o/{organization.slug}/"


def with_next(name: str, organization) -> str:
    return f"{reverse(name)}?next=%2Fo%2F{organization.slug}%2F"


def api_me(client, organization):
    """The API through the portal session credential, naming the organization."""
    return client.get(ME, HTTP_X_ORGANIZATION=organization.slug)


def error_code(response) -> str:
    return response.json()["error"]["code"]


def sso_only_session(client, user, *vouches):
    """Sign ``client`` in as an identity provider would: no password, no second factor, and a
    single sign-on vouching for each ``(organization, not_on_or_after)`` given."""
    from accounts.access import sign_in_record_sso

    client.force_login(user)
    session = client.session
    record_sign_in(session, user, password=False, second_factor=False)
    for organization, not_on_or_after in vouches:
        sign_in_record_sso(
            SimpleNamespace(session=session), user=user, organization=organization, not_on_or_after=not_on_or_after
        )
    session.save()


def password_only_session(client, user):
    """Signed in with the password alone, whatever factor the account has enrolled."""
    client.force_login(user)
    session = client.session
    record_sign_in(session, user, password=True, second_factor=False)
    session.save()


def require_sso(organization):
    from accounts.sso.models import SamlConfiguration

    organization.plan_code = "enterprise"
    organization.save(update_fields=["plan_code"])
    SamlConfiguration.objects.create(
        organization=organization,
        idp_entity_id="https://idp.example.test/metadata/",
        idp_metadata_xml="<EntityDescriptor/>",
        enabled=True,
        require_sso=True,
    )


@pytest.fixture
def person(organization, other_organization):
    """One person, a member of both organizations (A = organization, B = other_organization)."""
    user = UserFactory(email="pat@acme.test")
    MembershipFactory(organization=organization, user=user, role="member")
    MembershipFactory(organization=other_organization, user=user, role="member")
    return user


# --- a single sign-on vouches for its own organization only ----------------------------------


def test_a_single_sign_on_opens_its_own_organization_and_not_the_persons_others_until_they_sign_in_again(
    client, person, organization, other_organization
):
    sso_only_session(client, person, (organization, None))
    assert client.get(page(organization)).status_code == 200
    assert api_me(client, organization).status_code == 200

    response = client.get(page(other_organization))
    assert response.status_code == 302
    assert response["Location"] == with_next("account_reauthenticate", other_organization)
    response = api_me(client, other_organization)
    assert response.status_code == 403 and error_code(response) == "sign_in_required"
    assert "another organization's single sign-on" in response.json()["error"]["message"]

    # A real password reauthentication (allauth's page) is a sign-in of JagCall's own: B opens.
    response = client.post(with_next("account_reauthenticate", other_organization), {"password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    assert client.get(page(other_organization)).status_code == 200
    assert api_me(client, other_organization).status_code == 200
    assert client.get(page(organization)).status_code == 200


def test_after_a_single_sign_on_a_two_factor_organization_needs_the_password_and_the_code(
    client, person, organization, other_organization
):
    secret = enable_totp(person)
    other_organization.require_two_factor = True
    other_organization.save(update_fields=["require_two_factor"])
    sso_only_session(client, person, (organization, None))
    assert client.get(page(organization)).status_code == 200  # A's own sign-on applies A's own factors

    assert client.get(page(other_organization))["Location"] == with_next("account_reauthenticate", other_organization)
    client.post(reverse("account_reauthenticate"), {"password": DEFAULT_PASSWORD})
    # The password alone does not pass B's two-factor rule.
    response = client.get(page(other_organization))
    assert response.status_code == 302 and response["Location"] == with_next("mfa_reauthenticate", other_organization)
    response = api_me(client, other_organization)
    assert response.status_code == 403 and error_code(response) == "two_factor_required"

    response = client.post(reverse("mfa_reauthenticate"), {"code": code_at(secret)})
    assert response.status_code == 302
    assert client.get(page(other_organization)).status_code == 200
    assert api_me(client, other_organization).status_code == 200


def test_an_organization_requiring_sso_refuses_a_members_password_session_but_not_an_owners(
    client, organization, owner, member
):
    require_sso(organization)
    client.force_login(member)  # password (and the second factor, were one enrolled)
    response = client.get(page(organization))
    assert response.status_code == 302
    assert response["Location"] == f"/sso/{organization.slug}/login/?next=%2Fo%2F{organization.slug}%2F"
    response = api_me(client, organization)
    assert response.status_code == 403 and error_code(response) == "sso_required"

    # The organization's own sign-on opens it.
    sso_only_session(client, member, (organization, None))
    assert client.get(page(organization)).status_code == 200
    assert api_me(client, organization).status_code == 200

    # Owners keep their own sign-in (break-glass).
    client.force_login(owner)
    assert client.get(page(organization)).status_code == 200
    assert api_me(client, organization).status_code == 200


# --- an enrolled factor is not a passed factor -----------------------------------------------


def test_an_enrolled_factor_not_passed_in_this_session_does_not_open_a_two_factor_organization(
    client, organization, member
):
    enable_totp(member)
    organization.require_two_factor = True
    organization.save(update_fields=["require_two_factor"])
    password_only_session(client, member)
    response = client.get(page(organization))
    assert response.status_code == 302 and response["Location"] == with_next("mfa_reauthenticate", organization)
    response = api_me(client, organization)
    assert response.status_code == 403 and error_code(response) == "two_factor_required"


def known_totp_secret(user) -> str:
    """The staff fixture's TOTP secret, replaced by one this test knows."""
    from allauth.mfa.models import Authenticator

    Authenticator.objects.filter(user=user, type="totp").delete()
    return enable_totp(user)


def test_the_back_office_needs_the_platform_second_factor_passed_in_this_session(client, staff_user):
    secret = known_totp_secret(staff_user)
    password_only_session(client, staff_user)  # TOTP enrolled, not confirmed in this session
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and response["Location"] == f"{reverse('mfa_reauthenticate')}?next=/admin/"

    response = client.post(reverse("mfa_reauthenticate"), {"code": code_at(secret)})
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_a_single_sign_on_never_opens_the_back_office(client, staff_user, organization):
    MembershipFactory(organization=organization, user=staff_user, role="member")
    sso_only_session(client, staff_user, (organization, None))
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_reauthenticate"))


# --- a single sign-on ends when the identity provider said ------------------------------------


def test_a_session_opened_only_by_single_sign_on_ends_at_its_session_not_on_or_after(
    client, person, organization, events
):
    sso_only_session(client, person, (organization, time.time() + 3600))
    assert client.get(page(organization)).status_code == 200

    sso_only_session(client, person, (organization, time.time() - 1))  # the IdP's session has ended
    response = client.get(page(organization))
    assert response.status_code == 302 and response["Location"].startswith(settings.LOGIN_URL_PATH)
    assert "user.session_expired" in [e["event"] for e in events]
    assert not client.session.get("_auth_user_id")  # signed out, not just refused
    response = client.get(page(organization))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


def test_an_ended_vouch_stops_its_organization_while_another_sign_on_still_runs(
    client, person, organization, other_organization
):
    sso_only_session(client, person, (organization, time.time() - 1), (other_organization, time.time() + 3600))
    assert client.get(page(other_organization)).status_code == 200
    response = client.get(page(organization))
    assert response.status_code == 302 and response["Location"] == with_next("account_reauthenticate", organization)
    response = api_me(client, organization)
    assert response.status_code == 403 and error_code(response) == "sign_in_required"


# --- JWTs carry how they were obtained (amr) -------------------------------------------------


def obtain(api_client, user, organization, **extra):
    body = {"email": user.email, "password": DEFAULT_PASSWORD, "organization": organization.slug, **extra}
    return api_client.post(TOKEN_URL, body, format="json")


def amr(token: str) -> list:
    return jwt.decode(token, options={"verify_signature": False})["amr"]


def test_a_token_obtained_without_the_second_factor_is_refused_once_the_organization_requires_it(
    api_client, member, organization
):
    pair = obtain(api_client, member, organization).json()
    assert amr(pair["access"]) == ["pwd"] and amr(pair["refresh"]) == ["pwd"]
    secret = enable_totp(member)  # a factor enrolled afterwards is not one this token passed
    organization.require_two_factor = True
    organization.save(update_fields=["require_two_factor"])

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    assert response.status_code == 403 and error_code(response) == "two_factor_required"
    response = api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json")
    assert response.status_code == 403 and error_code(response) == "two_factor_required"

    fresh = obtain(api_client, member, organization, otp_code=code_at(secret))
    assert fresh.status_code == 200, fresh.content
    assert amr(fresh.json()["access"]) == ["pwd", "mfa"]
    assert api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {fresh.json()['access']}").status_code == 200
    refreshed = api_client.post(REFRESH_URL, {"refresh": fresh.json()["refresh"]}, format="json")
    assert refreshed.status_code == 200 and amr(refreshed.json()["access"]) == ["pwd", "mfa"]


def test_a_refresh_is_refused_once_the_organization_requires_its_single_sign_on(api_client, member, organization):
    pair = obtain(api_client, member, organization).json()
    require_sso(organization)  # written directly: the refresh itself must re-check the rule
    response = api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json")
    assert response.status_code == 403 and error_code(response) == "sso_required"
    response = obtain(api_client, member, organization)
    assert response.status_code == 403 and error_code(response) == "sso_required"


# --- OAuth consent asks the same question ------------------------------------------------------


def _consent(client, app, organization):
    from accounts.oauth.tests.factories import authorize_params, authorize_url, consent_post, pkce_pair

    _verifier, challenge = pkce_pair()
    params = authorize_params(app, challenge=challenge, scope="organization:read")
    screen = client.get(authorize_url(params))
    assert screen.status_code == 200
    return screen, consent_post(client, params, organization=organization, scopes=["organization:read"])


def _choice(screen, organization):
    return next(c for c in screen.context["choices"] if c.organization.pk == organization.pk)


def test_consent_offers_only_organizations_this_session_opens_after_a_single_sign_on(
    client, person, organization, other_organization
):
    from accounts.oauth.tests.factories import register

    app = register(organization)
    sso_only_session(client, person, (organization, None))
    screen, response = _consent(client, app, other_organization)
    assert "another organization's single sign-on" in _choice(screen, other_organization).blocked_reason
    assert response.status_code == 400 and "code=" not in response.get("Location", "")
    assert not _choice(screen, organization).blocked_reason
    _screen, response = _consent(client, app, organization)
    assert response.status_code == 302 and "code=" in response["Location"]


def test_consent_to_a_two_factor_organization_needs_the_factor_passed_in_this_session(
    client, person, organization, other_organization
):
    from accounts.oauth.tests.factories import register

    app = register(organization)
    secret = enable_totp(person)
    other_organization.require_two_factor = True
    other_organization.save(update_fields=["require_two_factor"])
    password_only_session(client, person)
    screen, response = _consent(client, app, other_organization)
    assert "two-factor" in _choice(screen, other_organization).blocked_reason
    assert response.status_code == 400 and "code=" not in response.get("Location", "")

    client.post(reverse("mfa_reauthenticate"), {"code": code_at(secret)})
    screen, response = _consent(client, app, other_organization)
    assert not _choice(screen, other_organization).blocked_reason
    assert response.status_code == 302 and "code=" in response["Location"]
