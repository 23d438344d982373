"""The authorization code dance: consent, PKCE (S256 only), single-use codes, exact redirect URIs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.permissions import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from accounts.oauth.models import AccessToken, Grant, RefreshToken
from accounts.oauth.tests.factories import (
    REDIRECT_URI,
    authorize_params,
    authorize_url,
    consent_post,
    exchange,
    obtain_code,
    pkce_pair,
    query,
    register,
    tokens_for,
)

pytestmark = pytest.mark.django_db


# --- the consent screen -------------------------------------------------------------------


def test_authorize_needs_a_signed_in_person(client, app_client):
    _verifier, challenge = pkce_pair()
    response = client.get(authorize_url(authorize_params(app_client, challenge=challenge)))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert "next=" in response["Location"]


def test_consent_screen_names_the_application_the_scopes_in_words_and_the_organizations(
    client, organization, owner, app_client
):
    other = OrganizationFactory(name="Second Clinic", slug="second-clinic")
    MembershipFactory(organization=other, user=owner, role=Role.MEMBER)
    client.force_login(owner)
    _verifier, challenge = pkce_pair()
    page = client.get(
        authorize_url(authorize_params(app_client, challenge=challenge, scope="organization:read api_keys:read"))
    )
    assert page.status_code == 200
    body = page.content.decode()
    assert "Connect Acme CRM?" in body
    assert "Read the organization&#x27;s details" in body and "List API keys (never their secrets)" in body
    assert "Acme Dental" in body and "Second Clinic" in body
    # In Second Clinic the person is a member: the screen says API keys are beyond their role there.
    assert "Not with your role here: List API keys (never their secrets)" in body
    assert page["Cache-Control"] == "no-store"
    assert Grant.objects.unscoped("test: reads across organizations").count() == 0  # nothing is issued by looking


def test_consent_issues_a_code_for_the_chosen_organization_and_scopes(client, organization, owner, app_client, events):
    client.force_login(owner)
    verifier, challenge = pkce_pair()
    params = authorize_params(app_client, challenge=challenge, scope="organization:read members:read")
    response = consent_post(client, params, organization=organization, scopes=["organization:read"])
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    answer = query(location)
    assert answer["state"] == "state-123" and answer["code"]
    assert "iss" in answer  # RFC 9207: the issuer, against mix-up attacks
    grant = Grant.objects.unscoped("test: reads across organizations").get()
    assert grant.organization == organization and grant.user == owner
    assert grant.scope == "organization:read"
    assert grant.code != answer["code"]  # stored as its SHA-256
    assert grant.expires <= timezone.now() + timedelta(seconds=600)
    authorized = [e for e in events if e["event"] == "oauth.authorized"]
    assert authorized and authorized[0]["organization_id"] == str(organization.id)
    assert authorized[0]["scopes"] == ["organization:read"]


def test_deny_sends_the_person_back_with_access_denied(client, organization, owner, app_client):
    client.force_login(owner)
    _verifier, challenge = pkce_pair()
    params = authorize_params(app_client, challenge=challenge)
    response = consent_post(client, params, organization=organization, scopes=["organization:read"], allow="no")
    assert response.status_code == 302
    assert query(response["Location"])["error"] == "access_denied"
    assert Grant.objects.unscoped("test: reads across organizations").count() == 0


def test_a_scope_beyond_the_role_is_refused_with_a_clear_message(client, organization, member, app_client):
    client.force_login(member)
    _verifier, challenge = pkce_pair()
    params = authorize_params(app_client, challenge=challenge, scope="organization:read api_keys:read")
    response = consent_post(client, params, organization=organization, scopes=["organization:read", "api_keys:read"])
    assert response.status_code == 400
    body = response.content.decode()
    assert (
        "Your role in Acme Dental (Member) does not allow: List API keys (never their secrets) (api_keys:read)" in body
    )
    assert Grant.objects.unscoped("test: reads across organizations").count() == 0
    # Unticking it works: the member connects with what their role allows.
    response = consent_post(client, params, organization=organization, scopes=["organization:read"])
    assert response.status_code == 302 and "code" in query(response["Location"])


def test_only_an_organization_of_the_person_can_be_chosen(client, organization, other_organization, owner, app_client):
    client.force_login(owner)
    _verifier, challenge = pkce_pair()
    params = authorize_params(app_client, challenge=challenge)
    response = consent_post(client, params, organization=other_organization, scopes=["organization:read"])
    assert response.status_code == 400
    assert "Choose one of your organizations." in response.content.decode()
    assert Grant.objects.unscoped("test: reads across organizations").count() == 0


def test_a_scope_not_asked_for_cannot_be_added_at_consent(client, organization, owner, app_client):
    client.force_login(owner)
    _verifier, challenge = pkce_pair()
    params = authorize_params(app_client, challenge=challenge, scope="organization:read")
    response = consent_post(client, params, organization=organization, scopes=["organization:read", "members:write"])
    assert response.status_code == 400
    assert Grant.objects.unscoped("test: reads across organizations").count() == 0


def test_unknown_scope_is_refused(client, owner, app_client):
    client.force_login(owner)
    _verifier, challenge = pkce_pair()
    response = client.get(authorize_url(authorize_params(app_client, challenge=challenge, scope="admin:everything")))
    assert response.status_code == 302
    assert query(response["Location"])["error"] == "invalid_scope"


def test_resource_indicators_are_refused(client, owner, app_client):
    client.force_login(owner)
    _verifier, challenge = pkce_pair()
    params = authorize_params(app_client, challenge=challenge, resource="https://api.example")
    response = client.get(authorize_url(params))
    assert response.status_code == 302
    assert query(response["Location"])["error"] == "invalid_target"


# --- PKCE ------------------------------------------------------------------------------------


def test_pkce_is_required(client, owner, app_client):
    client.force_login(owner)
    response = client.get(authorize_url(authorize_params(app_client, challenge=None)))
    assert response.status_code == 302
    answer = query(response["Location"])
    assert answer["error"] == "invalid_request" and "code" not in answer


@pytest.mark.parametrize("method", ["plain", None])
def test_pkce_plain_is_refused(client, owner, app_client, method):
    client.force_login(owner)
    params = authorize_params(app_client, challenge=None, code_challenge="a" * 43, code_challenge_method=method)
    response = client.get(authorize_url(params))
    assert response.status_code == 302
    answer = query(response["Location"])
    assert answer["error"] == "invalid_request"
    assert "S256" in answer["error_description"]


def test_pkce_plain_slipped_into_the_consent_form_is_refused(client, organization, owner, app_client):
    client.force_login(owner)
    params = authorize_params(app_client, challenge=None, code_challenge="a" * 43, code_challenge_method="plain")
    response = consent_post(client, params, organization=organization, scopes=["organization:read"])
    assert response.status_code == 302
    assert query(response["Location"])["error"] == "invalid_request"
    assert Grant.objects.unscoped("test: reads across organizations").count() == 0


def test_wrong_or_missing_verifier_is_refused(client, organization, owner, app_client):
    client.force_login(owner)
    code, _verifier = obtain_code(client, app_client, organization=organization)
    wrong = exchange(client, app_client, code, pkce_pair()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    missing = exchange(client, app_client, code, None)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    assert AccessToken.objects.unscoped("test: reads across organizations").count() == 0


# --- codes -----------------------------------------------------------------------------------


def test_code_is_single_use_and_its_reuse_revokes_only_what_it_produced(
    client, organization, owner, app_client, bearer
):
    client.force_login(owner)
    other_tokens = tokens_for(client, app_client, organization=organization)  # another authorization, untouched
    code, verifier = obtain_code(client, app_client, organization=organization)
    first = exchange(client, app_client, code, verifier)
    assert first.status_code == 200
    tokens = first.json()
    assert bearer(tokens["access_token"]).get("/api/v1/me").status_code == 200

    again = exchange(client, app_client, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # RFC 6749 4.1.2: what the first exchange produced is revoked...
    assert bearer(tokens["access_token"]).get("/api/v1/me").status_code == 401
    assert RefreshToken.objects.unscoped("test: reads across organizations").filter(revoked__isnull=True).count() == 1
    # ...and nothing else: the other authorization still works.
    assert bearer(other_tokens["access_token"]).get("/api/v1/me").status_code == 200


def test_expired_code_is_refused(client, organization, owner, app_client):
    client.force_login(owner)
    code, verifier = obtain_code(client, app_client, organization=organization)
    Grant.objects.unscoped("test: reads across organizations").update(expires=timezone.now() - timedelta(seconds=1))
    response = exchange(client, app_client, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_code_is_bound_to_its_client(client, organization, owner, app_client):
    client.force_login(owner)
    code, verifier = obtain_code(client, app_client, organization=organization)
    intruder = register(organization, name="Other app")
    response = exchange(client, intruder, code, verifier)
    assert response.status_code == 400
    assert AccessToken.objects.unscoped("test: reads across organizations").count() == 0


def test_code_of_a_removed_member_is_refused(client, organization, admin_user, app_client):
    from accounts.models import Membership

    client.force_login(admin_user)
    code, verifier = obtain_code(client, app_client, organization=organization)
    Membership.objects.for_org(organization).filter(user=admin_user).delete()
    response = exchange(client, app_client, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


# --- redirect URIs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://client.example/callback/",
        "https://client.example/callback?x=1",
        "https://client.example:8443/callback",
        "http://client.example/callback",
        "https://evil.example/callback",
    ],
)
def test_unregistered_redirect_uri_is_refused_without_redirecting(client, owner, app_client, redirect_uri):
    client.force_login(owner)
    _verifier, challenge = pkce_pair()
    response = client.get(authorize_url(authorize_params(app_client, challenge=challenge, redirect_uri=redirect_uri)))
    assert response.status_code == 400
    assert "Location" not in response
    assert "cannot be completed" in response.content.decode()


def test_token_request_must_name_the_same_redirect_uri(client, organization, owner):
    two = register(organization, redirect_uris="https://client.example/callback\nhttps://client.example/other")
    client.force_login(owner)
    code, verifier = obtain_code(client, two, organization=organization)
    response = exchange(client, two, code, verifier, redirect_uri="https://client.example/other")
    assert response.status_code == 400
    assert AccessToken.objects.unscoped("test: reads across organizations").count() == 0


def test_loopback_redirect_uri_of_a_native_app(client, organization, owner):
    native = register(organization, client_type="public", redirect_uris="http://127.0.0.1:8765/cb")
    client.force_login(owner)
    verifier, challenge = pkce_pair()
    params = authorize_params(native, challenge=challenge, redirect_uri="http://127.0.0.1:8765/cb")
    response = consent_post(client, params, organization=organization, scopes=["organization:read"])
    assert response.status_code == 302 and response["Location"].startswith("http://127.0.0.1:8765/cb?")
    other_port = authorize_params(native, challenge=challenge, redirect_uri="http://127.0.0.1:9999/cb")
    assert client.get(authorize_url(other_port)).status_code == 400  # compared exactly, port included


# --- grants that do not exist here ----------------------------------------------------------------


def test_implicit_grant_is_refused(client, owner, app_client):
    client.force_login(owner)
    _verifier, challenge = pkce_pair()
    response = client.get(authorize_url(authorize_params(app_client, challenge=challenge, response_type="token")))
    assert response.status_code == 302
    location = response["Location"]
    assert query(location)["error"] == "unsupported_response_type"
    assert "access_token" not in location


@pytest.mark.parametrize(
    "data",
    [
        {"grant_type": "password", "username": "owner@acme.test", "password": "a long enough test password"},
        {"grant_type": "client_credentials"},
        {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "x"},
    ],
)
def test_other_grants_are_refused(client, owner, app_client, data):
    response = client.post(reverse("oauth:token"), data, **app_client.basic_auth())
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert AccessToken.objects.unscoped("test: reads across organizations").count() == 0


# --- errors are clear 4xx, never 500 --------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"grant_type": "authorization_code"},
        {"grant_type": "authorization_code", "code": "nope", "code_verifier": "x" * 43, "redirect_uri": REDIRECT_URI},
        {"grant_type": "refresh_token"},
        {"grant_type": "refresh_token", "refresh_token": "jc_ort_nope"},
        {"grant_type": "refresh_token", "refresh_token": "\x00"},
    ],
)
def test_token_endpoint_errors_are_json_4xx(client, app_client, data):
    response = client.post(reverse("oauth:token"), data, **app_client.basic_auth())
    assert 400 <= response.status_code < 500
    assert "error" in response.json()
    assert response["Cache-Control"] == "no-store"


def test_token_endpoint_refuses_a_wrong_client_secret(client, organization, owner, app_client):
    client.force_login(owner)
    code, verifier = obtain_code(client, app_client, organization=organization)
    app_client.secret = "jc_ocs_wrong"
    response = exchange(client, app_client, code, verifier)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_unknown_client_gets_our_error_page(client, owner):
    client.force_login(owner)
    response = client.get(reverse("oauth:authorize"), {"client_id": "nope", "response_type": "code"})
    assert response.status_code == 400
    assert "cannot be completed" in response.content.decode()


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_token_endpoint_only_takes_post(client, method):
    assert getattr(client, method)(reverse("oauth:token")).status_code == 405


def test_tampered_consent_form_is_refused(client, organization, owner, app_client):
    client.force_login(owner)
    response = client.post(reverse("oauth:authorize"), {"client_id": app_client.client_id, "allow": "yes"})
    assert response.status_code == 400
    response = client.post(reverse("oauth:authorize"), {"client_id": "nope", "allow": "yes"})
    assert response.status_code == 400
    _verifier, challenge = pkce_pair()
    params = authorize_params(app_client, challenge=challenge, redirect_uri="https://evil.example/cb")
    response = consent_post(client, params, organization=organization, scopes=["organization:read"], allow="no")
    assert response.status_code == 400 and "Location" not in response


@pytest.mark.parametrize("challenge", ["short", "a" * 44, "a" * 42 + "=", "a" * 128])
def test_malformed_s256_challenge_is_refused(client, owner, app_client, challenge):
    client.force_login(owner)
    response = client.get(authorize_url(authorize_params(app_client, challenge=challenge)))
    assert response.status_code == 302
    assert query(response["Location"])["error"] == "invalid_request"


def test_endpoints_answer_with_or_without_a_trailing_slash(client, owner, app_client):
    client.force_login(owner)
    _verifier, challenge = pkce_pair()
    query_string = authorize_url(authorize_params(app_client, challenge=challenge)).split("?", 1)[1]
    assert client.get(f"/oauth/authorize?{query_string}").status_code == 200
    assert client.get(f"/oauth/authorize/?{query_string}").status_code == 200
    for path in ("/oauth/token", "/oauth/token/", "/oauth/revoke_token", "/oauth/revoke_token/"):
        assert client.post(path, {}).status_code in (400, 401), path


def test_a_person_without_an_organization_can_only_deny(client, app_client):
    from accounts.tests.factories import UserFactory

    loner = UserFactory(email="loner@example.test")
    client.force_login(loner)
    _verifier, challenge = pkce_pair()
    params = authorize_params(app_client, challenge=challenge)
    page = client.get(authorize_url(params)).content.decode()
    assert "You are not a member of any organization yet." in page
    assert 'value="yes"' not in page
    response = consent_post(client, params, organization=None, scopes=["organization:read"])
    assert response.status_code == 400
    assert Grant.objects.unscoped("test: reads across organizations").count() == 0


@pytest.mark.parametrize("client_id", ["\x00", "a" * 300, "ü"])
def test_odd_client_ids_are_refused_cleanly(client, owner, client_id):
    client.force_login(owner)
    assert client.get(reverse("oauth:authorize"), {"client_id": client_id, "response_type": "code"}).status_code == 400
    response = client.post(reverse("oauth:authorize"), {"client_id": client_id, "allow": "yes"})
    assert response.status_code == 400
    response = client.post(reverse("oauth:token"), {"grant_type": "authorization_code", "client_id": client_id, "code": "x"})
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("field", ["redirect_uri", "state", "scope", "code_challenge"])
def test_nul_bytes_in_the_authorization_request_are_refused_cleanly(client, organization, owner, app_client, field):
    client.force_login(owner)
    _verifier, challenge = pkce_pair()
    params = authorize_params(app_client, challenge=challenge)
    params[field] = params.get(field, "") + "\x00"
    assert client.get(authorize_url(params)).status_code in (200, 302, 400)  # never a 500
    response = consent_post(client, params, organization=organization, scopes=["organization:read"])
    assert response.status_code in (302, 400)
    assert response.status_code == 400 or "code" not in query(response["Location"])
    assert Grant.objects.unscoped("test: reads across organizations").count() == 0
