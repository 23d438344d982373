"""API keys: the secret shown once, stored as prefix + hash, scoped, revocable, one organization only."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.jwt.tokens import OrganizationRefreshToken
from accounts.api_keys.services import api_key_create
from accounts.models import ApiKey
from accounts.permissions import Role
from accounts.scopes import ALL_SCOPES, scopes_for_role

from accounts.principals import Principal

OPERATOR = Principal.system("operator")  # service keys, as the create_api_key command makes them

pytestmark = pytest.mark.django_db

LIST = "/api/v1/api-keys"


def detail(api_key_id) -> str:
    return f"/api/v1/api-keys/{api_key_id}"


def jwt_for(user, organization) -> str:
    return str(OrganizationRefreshToken.for_membership(user=user, organization=organization).access_token)


def make_key(organization, scopes=("api_keys:read", "api_keys:write"), **kwargs):
    return api_key_create(
        organization=organization, actor=OPERATOR, service_role="owner", name=kwargs.pop("name", "Test key"),
        scopes=list(scopes), **kwargs,
    )


def bearer(client, token):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- the secret -----------------------------------------------------------------------------


def test_secret_appears_only_in_the_creation_response(api_client, organization, owner, events):
    bearer(api_client, jwt_for(owner, organization))
    response = api_client.post(LIST, {"name": "CRM sync", "scopes": ["members:read"]}, format="json")
    assert response.status_code == 201, response.content
    raw_key = response.json()["key"]
    prefix = response.json()["prefix"]
    assert raw_key.startswith(f"jc_live_{prefix}_") and len(raw_key) > len(f"jc_live_{prefix}_") + 40
    assert response["Cache-Control"] == "no-store"
    assert any(e["event"] == "api_key.created" for e in events)
    assert all(raw_key not in str(e) for e in events)

    listed = api_client.get(LIST)
    shown = api_client.get(detail(response.json()["id"]))
    assert listed.status_code == shown.status_code == 200
    for body in (listed.content.decode(), shown.content.decode()):
        assert raw_key not in body
        assert raw_key.removeprefix(f"jc_live_{prefix}_") not in body  # the secret part (it may itself hold "_")
        assert hashlib.sha256(raw_key.encode()).hexdigest() not in body
        assert '"key"' not in body and "key_hash" not in body
    assert listed.json()["results"][0]["prefix"] == prefix


def test_database_holds_only_prefix_and_hash(organization):
    api_key, raw_key = make_key(organization)
    secret_part = raw_key.split("_", 3)[3]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey")
        rows = cursor.fetchall()
    dump = repr(rows)
    assert raw_key not in dump and secret_part not in dump
    assert api_key.prefix in dump
    assert hashlib.sha256(raw_key.encode()).hexdigest() in dump


# --- authentication -----------------------------------------------------------------------


def test_key_works_in_the_authorization_header_only(api_client, organization):
    api_key, raw_key = make_key(organization)
    assert api_client.get(LIST, {"api_key": raw_key}).status_code == 401
    assert api_client.get(f"{LIST}?access_token={raw_key}").status_code == 401
    assert api_client.get(LIST, HTTP_X_API_KEY=raw_key).status_code == 401
    response = bearer(api_client, raw_key).get(LIST)
    assert response.status_code == 200
    assert [k["id"] for k in response.json()["results"]] == [str(api_key.id)]


def test_wrong_secret_with_a_real_prefix_is_refused(api_client, organization, events):
    api_key, raw_key = make_key(organization)
    forged = raw_key[:-4] + ("AAAA" if not raw_key.endswith("AAAA") else "BBBB")
    response = bearer(api_client, forged).get(LIST)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid API key."
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert [e["reason"] for e in events if e["event"] == "api_key.rejected"] == ["unknown"]


def test_last_use_is_recorded_at_most_once_a_minute(api_client, organization):
    api_key, raw_key = make_key(organization)
    bearer(api_client, raw_key)
    assert api_client.get(LIST).status_code == 200
    api_key.refresh_from_db()
    first = api_key.last_used_at
    assert first is not None and api_key.last_used_ip == "127.0.0.1"
    assert api_client.get(LIST).status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at == first  # no write within the minute
    ApiKey.objects.unscoped("test: inspects rows directly").filter(pk=api_key.pk).update(last_used_at=first - timedelta(minutes=2))
    assert api_client.get(LIST).status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at > first - timedelta(minutes=2)


def test_revoked_key_is_refused_at_once(api_client, organization, owner, events):
    api_key, raw_key = make_key(organization)
    bearer(api_client, raw_key)
    assert api_client.get(LIST).status_code == 200
    owner_client = bearer(type(api_client)(), jwt_for(owner, organization))
    assert owner_client.delete(detail(api_key.id)).status_code == 204
    response = api_client.get(LIST)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "api_key_revoked"
    kinds = [e["event"] for e in events]
    assert "api_key.revoked" in kinds and "api_key.rejected" in kinds
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None and api_key.revoked_by == owner


def test_expired_key_is_refused(api_client, organization):
    api_key, raw_key = make_key(organization, expires_at=timezone.now() + timedelta(days=1))
    ApiKey.objects.unscoped("test: inspects rows directly").filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(api_client, raw_key).get(LIST)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_key_of_a_terminated_organization_is_refused(api_client, organization):
    from accounts import services

    _api_key, raw_key = make_key(organization)
    services.organization_terminate(organization=organization, actor=None)
    assert bearer(api_client, raw_key).get(LIST).status_code == 401


# --- scopes -------------------------------------------------------------------------------


def test_scopes_are_enforced_with_a_403_naming_the_missing_scope(api_client, organization):
    _api_key, raw_key = make_key(organization, scopes=["api_keys:read"])
    bearer(api_client, raw_key)
    assert api_client.get(LIST).status_code == 200
    response = api_client.post(LIST, {"name": "x", "scopes": ["api_keys:read"]}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This request needs the scope api_keys:write."
    assert response.json()["error"]["code"] == "missing_scope"

    _other, members_only = make_key(organization, scopes=["members:read"])
    response = bearer(api_client, members_only).get(LIST)
    assert response.status_code == 403
    assert "api_keys:read" in response.json()["error"]["message"]


def test_jwts_carry_their_roles_scopes(api_client, organization, owner, member):
    # A member uses the product (agents, numbers and calls to read, calls and texts to send, contacts, the do-not-call
    # list to read and add to, knowledge bases to read and fill) but manages nothing: no keys, no audit,
    # no changes to agents or numbers.
    assert scopes_for_role(Role.MEMBER) == {
        "organization:read", "members:read", "agents:read", "numbers:read", "calls:read", "calls:write",
        "compliance:read", "compliance:write", "knowledge:read", "knowledge:write", "contacts:read", "contacts:write",
        "messages:read", "messages:write",
    }
    assert scopes_for_role(Role.OWNER) == ALL_SCOPES
    response = bearer(api_client, jwt_for(member, organization)).get(LIST)
    assert response.status_code == 403
    assert "api_keys:read" in response.json()["error"]["message"]
    assert bearer(api_client, jwt_for(member, organization)).get("/api/v1/me").status_code == 200


def test_member_cannot_create_keys_through_the_api(api_client, organization, member):
    response = bearer(api_client, jwt_for(member, organization)).post(
        LIST, {"name": "x", "scopes": ["members:read"]}, format="json"
    )
    assert response.status_code == 403
    assert not ApiKey.objects.unscoped("test: inspects rows directly").exists()


def test_admin_cannot_grant_a_scope_beyond_the_role(api_client, organization, admin_user, monkeypatch):
    from accounts import scopes

    # Today every scope is an admin's; make one need an owner-only right, as later scopes will.
    monkeypatch.setitem(scopes.SCOPES, "audit:read", ("billing.manage", "owner-only"))
    bearer(api_client, jwt_for(admin_user, organization))
    response = api_client.post(LIST, {"name": "x", "scopes": ["members:read", "audit:read"]}, format="json")
    assert response.status_code == 400
    body = response.json()["error"]
    assert "audit:read" in body["message"] and "members:read" not in body["message"]
    assert "scopes" in body["details"]
    assert not ApiKey.objects.unscoped("test: inspects rows directly").exists()
    assert api_client.post(LIST, {"name": "x", "scopes": ["members:read"]}, format="json").status_code == 201


def test_a_key_cannot_grant_more_than_it_holds(api_client, organization):
    _key, raw_key = make_key(organization, scopes=["api_keys:write", "members:read"])
    response = bearer(api_client, raw_key).post(LIST, {"name": "y", "scopes": ["members:write"]}, format="json")
    assert response.status_code == 400
    assert "members:write" in response.json()["error"]["message"]


def test_unknown_scope_is_a_400(api_client, organization, owner):
    response = bearer(api_client, jwt_for(owner, organization)).post(
        LIST, {"name": "x", "scopes": ["calls:teleport"]}, format="json"
    )
    assert response.status_code == 400
    assert "scopes" in response.json()["error"]["details"]


def test_past_expiry_is_a_400(api_client, organization, owner):
    response = bearer(api_client, jwt_for(owner, organization)).post(
        LIST, {"name": "x", "scopes": ["members:read"], "expires_at": "2001-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400
    assert "expires_at" in response.json()["error"]["details"]


# --- tenancy ---------------------------------------------------------------------------------


def test_a_key_sees_only_its_organizations_keys(api_client, organization, other_organization):
    mine, raw_key = make_key(organization)
    theirs, _ = make_key(other_organization, name="Globex secret key")
    bearer(api_client, raw_key)
    listed = api_client.get(LIST)
    assert [k["id"] for k in listed.json()["results"]] == [str(mine.id)]
    assert "Globex" not in listed.content.decode()
    assert api_client.get(detail(theirs.id)).status_code == 404
    assert api_client.delete(detail(theirs.id)).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert api_client.get(detail(mine.id)).status_code == 200


def test_a_key_creates_keys_for_its_own_organization_only(api_client, organization, other_organization):
    _key, raw_key = make_key(organization, scopes=["api_keys:write", "members:read"])
    response = bearer(api_client, raw_key).post(
        LIST, {"name": "child", "scopes": ["members:read"], "organization": str(other_organization.id)}, format="json"
    )
    assert response.status_code == 201
    assert ApiKey.objects.unscoped("test: inspects rows directly").get(pk=response.json()["id"]).organization == organization


def test_list_is_cursor_paginated(api_client, organization):
    for i in range(3):
        make_key(organization, name=f"k{i}")
    _key, raw_key = make_key(organization, name="reader")
    page = bearer(api_client, raw_key).get(LIST, {"limit": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    rest = api_client.get(page["next"]).json()
    assert len(rest["results"]) == 2 and rest["next"] is None


# --- management command -------------------------------------------------------------------------


def test_command_prints_a_working_key(api_client, organization):
    out = StringIO()
    call_command(
        "create_api_key", org=organization.slug, name="Ops", scopes="api_keys:read,members:read", role="admin", expires_days=7, stdout=out
    )
    raw_key = out.getvalue().strip().splitlines()[-1]
    assert raw_key.startswith("jc_live_")
    assert bearer(api_client, raw_key).get(LIST).status_code == 200
    key = ApiKey.objects.unscoped("test: inspects rows directly").get()
    assert key.scopes == ["members:read", "api_keys:read"]
    assert key.expires_at is not None
    assert key.created_by is None and key.service_role == "admin"
    assert "Service key acting as: admin" in out.getvalue()


def test_command_errors_are_clear(organization):
    with pytest.raises(CommandError, match="No active organization"):
        call_command("create_api_key", org="nope", name="x", scopes="members:read", role="member")
    with pytest.raises(CommandError, match="Unknown scope.*calls:fly"):
        call_command("create_api_key", org=organization.slug, name="x", scopes="members:read,calls:fly", role="member")
    with pytest.raises(CommandError, match="--role"):
        call_command("create_api_key", org=organization.slug, name="x", scopes="members:read")
    # A member-role service key cannot hold a scope beyond that role.
    with pytest.raises(CommandError, match="api_keys:write"):
        call_command("create_api_key", org=organization.slug, name="x", scopes="api_keys:write", role="member")
    assert not ApiKey.objects.unscoped("test: inspects rows directly").exists()


# --- portal ----------------------------------------------------------------------------------


def portal_url(organization) -> str:
    return reverse("accounts:api-key-list", kwargs={"org_slug": organization.slug})


def test_portal_shows_the_secret_once_and_revokes(client, organization, owner, api_client):
    client.force_login(owner)
    page = client.get(portal_url(organization)).content.decode()
    assert "Create key" in page
    response = client.post(portal_url(organization), {"name": "Zapier", "scopes": ["members:read"], "expires_in_days": "30"})
    assert response.status_code == 302
    api_key = ApiKey.objects.unscoped("test: inspects rows directly").get()
    shown = client.get(response["Location"])
    body = shown.content.decode()
    assert shown["Cache-Control"] == "no-store"
    start = body.index('value="jc_live_') + len('value="')
    raw_key = body[start: body.index('"', start)]
    assert hashlib.sha256(raw_key.encode()).hexdigest() == api_key.key_hash
    assert "shown only this once" in body and "Copy key" in body
    assert api_key.expires_at is not None

    reload = client.get(portal_url(organization)).content.decode()
    assert raw_key not in reload and "shown only this once" not in reload
    assert f"jc_live_{api_key.prefix}_" in reload and "Zapier" in reload

    assert bearer(api_client, raw_key).get("/api/v1/api-keys").status_code == 403  # members:read only
    revoke = client.post(reverse("accounts:api-key-revoke", kwargs={"org_slug": organization.slug, "api_key_id": api_key.id}))
    assert revoke.status_code == 302
    api_key.refresh_from_db()
    assert api_key.status == "revoked"
    assert "Revoked" in client.get(portal_url(organization)).content.decode()
    assert api_client.get("/api/v1/api-keys").status_code == 401


def test_portal_offers_only_the_roles_scopes_and_refuses_others(client, organization, admin_user, monkeypatch):
    from accounts import scopes

    client.force_login(admin_user)
    page = client.get(portal_url(organization)).content.decode()
    for scope in scopes_for_role(Role.ADMIN):
        assert f'value="{scope}"' in page
    monkeypatch.setitem(scopes.SCOPES, "audit:read", ("billing.manage", "owner-only for this test"))
    page = client.get(portal_url(organization)).content.decode()
    assert 'value="audit:read"' not in page
    response = client.post(portal_url(organization), {"name": "x", "scopes": ["audit:read"]})
    assert response.status_code == 400
    assert not ApiKey.objects.unscoped("test: inspects rows directly").exists()


def test_member_cannot_create_keys_in_the_portal(client, organization, member):
    client.force_login(member)
    assert client.get(portal_url(organization)).status_code == 403
    assert client.post(portal_url(organization), {"name": "x", "scopes": ["members:read"]}).status_code == 403
    assert not ApiKey.objects.unscoped("test: inspects rows directly").exists()


def test_portal_revoke_of_another_organizations_key_is_404(client, organization, owner, other_organization):
    theirs, _ = make_key(other_organization)
    client.force_login(owner)
    url = reverse("accounts:api-key-revoke", kwargs={"org_slug": organization.slug, "api_key_id": theirs.id})
    assert client.post(url).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_me_tells_a_key_who_it_is(api_client, organization):
    key, raw = make_key(organization, scopes=("organization:read", "members:read"))
    body = bearer(api_client, raw).get("/api/v1/me").json()
    # An operator's service key: no person, the role it was given.
    assert body["user"] is None and body["role"] == "owner"
    assert body["api_key"] == {"id": str(key.id), "name": key.name, "prefix": key.prefix}
    assert body["organization"]["id"] == str(organization.id)
    assert body["scopes"] == ["members:read", "organization:read"]
