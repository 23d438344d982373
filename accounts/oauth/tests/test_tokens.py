"""Tokens: bound to one organization and its granted scopes, rotated, revocable, never stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.hashers import identify_hasher
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from accounts.permissions import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from accounts.oauth.models import AccessToken, Application, Grant, RefreshToken
from accounts.oauth.tests.factories import exchange, obtain_code, refresh, tokens_for

pytestmark = pytest.mark.django_db


def _call_me(bearer, token):
    return bearer(token).get("/api/v1/me")


# --- what a token is -----------------------------------------------------------------------


def test_token_response_and_lifetimes(client, organization, owner, app_client):
    client.force_login(owner)
    before = timezone.now()
    response = exchange(client, app_client, *obtain_code(client, app_client, organization=organization))
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["access_token"].startswith("jc_oat_") and tokens["refresh_token"].startswith("jc_ort_")
    assert set(tokens["scope"].split()) == {"organization:read", "members:read"}
    chain = RefreshToken.objects.unscoped("test: reads across organizations").get()
    assert before + timedelta(days=30) <= chain.expires_at <= timezone.now() + timedelta(days=30)


def test_token_acts_for_the_chosen_organization_with_the_granted_scopes_only(
    client, organization, owner, app_client, bearer
):
    # The person owns Acme Dental and is a member of Second Clinic; they connect Second Clinic.
    second = OrganizationFactory(name="Second Clinic", slug="second-clinic")
    MembershipFactory(organization=second, user=owner, role=Role.MEMBER)
    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=second, scopes=["organization:read", "members:read"])
    me = _call_me(bearer, tokens["access_token"])
    assert me.status_code == 200
    assert me.json()["organization"]["slug"] == "second-clinic"
    assert me.json()["role"] == "member"
    assert me.json()["scopes"] == ["members:read", "organization:read"]
    assert bearer(tokens["access_token"]).get("/api/v1/members").status_code == 200
    denied = bearer(tokens["access_token"]).get("/api/v1/api-keys")
    assert denied.status_code == 403
    assert denied.json()["error"]["message"] == "This request needs the scope api_keys:read."


def test_an_owner_token_without_the_scope_is_refused_that_scope(client, organization, owner, app_client, bearer):
    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=organization, scopes=["organization:read"])
    assert _call_me(bearer, tokens["access_token"]).status_code == 200
    response = bearer(tokens["access_token"]).get("/api/v1/api-keys")
    assert response.status_code == 403
    assert "api_keys:read" in response.json()["error"]["message"]


def test_scopes_follow_the_members_current_role(client, organization, admin_user, app_client, bearer):
    client.force_login(admin_user)
    tokens = tokens_for(client, app_client, organization=organization, scopes=["organization:read", "api_keys:read"])
    api = bearer(tokens["access_token"])
    assert api.get("/api/v1/api-keys").status_code == 200
    Membership.objects.for_org(organization).filter(user=admin_user).update(role=Role.MEMBER)
    response = api.get("/api/v1/api-keys")
    assert response.status_code == 403 and "api_keys:read" in response.json()["error"]["message"]
    assert api.get("/api/v1/me").json()["scopes"] == ["organization:read"]


def test_a_removed_member_s_token_is_refused_at_once(client, organization, admin_user, app_client, bearer, events):
    client.force_login(admin_user)
    tokens = tokens_for(client, app_client, organization=organization)
    Membership.objects.for_org(organization).filter(user=admin_user).delete()
    response = _call_me(bearer, tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "organization_unavailable"
    assert any(e["event"] == "oauth.token_refused" and e["reason"] == "not_a_member" for e in events)
    assert refresh(client, app_client, tokens["refresh_token"]).status_code == 400


def test_expired_access_token_is_refused(client, organization, owner, app_client, bearer):
    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=organization)
    AccessToken.objects.unscoped("test: reads across organizations").update(expires=timezone.now() - timedelta(seconds=1))
    response = _call_me(bearer, tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "oauth_token_expired"
    assert "refresh token" in response.json()["error"]["message"]


def test_unknown_token_is_refused_in_the_api_error_shape(bearer, organization, events):
    response = _call_me(bearer, "jc_oat_not-a-real-token")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "oauth_token_invalid"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert [e["reason"] for e in events if e["event"] == "oauth.token_refused"] == ["unknown"]


def test_a_refresh_token_sent_as_bearer_is_refused_with_advice(client, organization, owner, app_client, bearer):
    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=organization)
    response = _call_me(bearer, tokens["refresh_token"])
    assert response.status_code == 401
    assert "refresh token" in response.json()["error"]["message"]


def test_jwts_and_api_keys_still_pass_through(organization, owner, bearer):
    from accounts.jwt.tokens import OrganizationRefreshToken
    from accounts.api_keys.services import api_key_create

    jwt = str(OrganizationRefreshToken.for_membership(user=owner, organization=organization).access_token)
    assert _call_me(bearer, jwt).status_code == 200
    _key, raw = api_key_create(
        organization=organization, actor=owner,
        name="K", scopes=["organization:read"],
    )
    assert _call_me(bearer, raw).status_code == 200


def test_credential_carries_what_the_api_needs(client, organization, owner, app_client):
    from rest_framework.test import APIRequestFactory

    from accounts.oauth.authentication import OAuthAccessTokenAuthentication
    from accounts.principals import Principal

    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=organization)
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    user, credential = OAuthAccessTokenAuthentication().authenticate(request)
    assert user == owner and isinstance(credential, Principal) and credential.kind == "oauth_application"
    assert credential.organization == organization and credential.role == Role.OWNER
    assert credential.scopes == frozenset({"organization:read", "members:read"})
    assert credential.rate_limit_key == f"user:{owner.id}"
    assert credential.application == app_client.application
    with pytest.raises(AttributeError):
        credential.role = "member"  # frozen


def test_terminated_application_organization_stops_its_tokens(client, organization, owner, app_client, bearer):
    from accounts import services

    second = OrganizationFactory(name="Second Clinic", slug="second-clinic")
    MembershipFactory(organization=second, user=owner, role=Role.OWNER)
    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=second)
    services.organization_terminate(organization=organization, actor=None)  # the application's organization
    assert _call_me(bearer, tokens["access_token"]).status_code == 401
    assert refresh(client, app_client, tokens["refresh_token"]).status_code == 401  # invalid_client


# --- refresh ------------------------------------------------------------------------------------


def test_refresh_rotates_and_the_old_refresh_token_is_refused(client, organization, owner, app_client, bearer):
    client.force_login(owner)
    first = tokens_for(client, app_client, organization=organization)
    chain_end = RefreshToken.objects.unscoped("test: reads across organizations").get().expires_at

    response = refresh(client, app_client, first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert _call_me(bearer, second["access_token"]).status_code == 200
    assert _call_me(bearer, first["access_token"]).status_code == 401  # the rotated pair's access token is gone
    live = RefreshToken.objects.unscoped("test: reads across organizations").get(revoked__isnull=True)
    assert live.expires_at == chain_end  # rotation never extends the chain
    assert live.organization == organization

    # The old refresh token again: refused, and the whole family is revoked (it may have been stolen).
    reused = refresh(client, app_client, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert _call_me(bearer, second["access_token"]).status_code == 401
    assert refresh(client, app_client, second["refresh_token"]).status_code == 400


def test_refresh_may_narrow_but_never_widen_scopes(client, organization, owner, app_client, bearer):
    client.force_login(owner)
    first = tokens_for(client, app_client, organization=organization, scopes=["organization:read", "members:read"])
    wider = refresh(client, app_client, first["refresh_token"], scope="organization:read api_keys:read")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    narrower = refresh(client, app_client, first["refresh_token"], scope="organization:read")
    assert narrower.status_code == 200 and narrower.json()["scope"] == "organization:read"


def test_refresh_chain_has_an_absolute_end(client, organization, owner, app_client):
    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=organization)
    RefreshToken.objects.unscoped("test: reads across organizations").update(expires_at=timezone.now() - timedelta(seconds=1))
    response = refresh(client, app_client, tokens["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_public_client_refreshes_with_its_client_id(client, organization, owner, public_client, bearer):
    client.force_login(owner)
    tokens = tokens_for(client, public_client, organization=organization)
    response = refresh(client, public_client, tokens["refresh_token"])
    assert response.status_code == 200
    assert _call_me(bearer, response.json()["access_token"]).status_code == 200


def test_another_client_cannot_use_the_refresh_token(client, organization, owner, app_client):
    from accounts.oauth.tests.factories import register

    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=organization)
    other = register(organization, name="Other")
    assert refresh(client, other, tokens["refresh_token"]).status_code == 400


# --- revocation (RFC 7009) ------------------------------------------------------------------------


def _revoke(client, app, token, hint=None):
    body, headers = app.auth()
    data = {"token": token, **body}
    if hint:
        data["token_type_hint"] = hint
    return client.post(reverse("oauth:revoke-token"), data, **headers)


def test_revoking_the_access_token_ends_the_pair_at_once(client, organization, owner, app_client, bearer):
    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=organization)
    assert _revoke(client, app_client, tokens["access_token"], "access_token").status_code == 200
    assert _call_me(bearer, tokens["access_token"]).status_code == 401
    assert refresh(client, app_client, tokens["refresh_token"]).status_code == 400


def test_revoking_the_refresh_token_ends_the_pair_at_once(client, organization, owner, public_client, bearer):
    client.force_login(owner)
    tokens = tokens_for(client, public_client, organization=organization)
    assert _revoke(client, public_client, tokens["refresh_token"], "refresh_token").status_code == 200
    assert _call_me(bearer, tokens["access_token"]).status_code == 401
    assert refresh(client, public_client, tokens["refresh_token"]).status_code == 400


def test_a_client_cannot_revoke_another_clients_token(client, organization, owner, app_client, bearer):
    from accounts.oauth.tests.factories import register

    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=organization)
    other = register(organization, name="Other")
    assert _revoke(client, other, tokens["access_token"]).status_code == 200  # RFC 7009: no hint either way
    assert _call_me(bearer, tokens["access_token"]).status_code == 200


def test_revocation_needs_client_authentication(client, organization, owner, app_client):
    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=organization)
    response = client.post(reverse("oauth:revoke-token"), {"token": tokens["access_token"]})
    assert 400 <= response.status_code < 500


# --- nothing usable is stored ----------------------------------------------------------------


def test_the_database_never_holds_a_usable_token_code_or_secret(client, organization, owner, app_client):
    client.force_login(owner)
    code, verifier = obtain_code(client, app_client, organization=organization)
    first = exchange(client, app_client, code, verifier).json()
    second = refresh(client, app_client, first["refresh_token"]).json()
    secrets_given = [
        code, first["access_token"], first["refresh_token"], second["access_token"], second["refresh_token"],
        app_client.secret,
    ]
    # Read every row of every table as text, past the ORM.
    with connection.cursor() as cursor:
        dumps = []
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')
            dumps += [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT token, token_checksum FROM oauth_accesstoken "
            "UNION ALL SELECT token, token_checksum FROM oauth_refreshtoken"
        )
        token_rows = cursor.fetchall()
    leaked = [s[:12] for s in secrets_given if any(s in dump for dump in dumps)]
    assert not leaked, f"found in the database: {leaked}"
    assert token_rows and all(token == "" and len(checksum) == 64 for token, checksum in token_rows)
    identify_hasher(Application.objects.unscoped("test: reads across organizations").get().client_secret)  # a password hash, not the secret
    assert len(Grant.objects.unscoped("test: reads across organizations").get().code) == 64
