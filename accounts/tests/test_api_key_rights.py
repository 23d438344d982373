"""An API key acts within its creator's current rights, or a service key's own role.

- Its effective scopes are its own scopes cut to what the role it acts within
  allows *now*, on every request.
- Removing or demoting its creator revokes it, or hands it to the person who
  did it (the removal dialog, the API), and the audit event lists the keys.
- No credential creates a credential with more rights than itself.
- Every refusal says something true of the key that was refused.
"""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import KeyDisposition, api_key_create, api_keys_of_member_dispose
from accounts.jwt.tokens import OrganizationRefreshToken
from accounts.models import Membership
from accounts.principals import Principal
from compliance.models import AuditEvent
from jagcall.kernel.errors import ApplicationError

pytestmark = pytest.mark.django_db

ORGANIZATION = "/api/v1/organization"
KEYS = "/api/v1/api-keys"
ME = "/api/v1/me"


def member_url(membership) -> str:
    return f"/api/v1/members/{membership.pk}"


def person_key(organization, creator, scopes, name="Integration"):
    """(ApiKey, raw) created by ``creator`` through the service, as the portal does."""
    return api_key_create(organization=organization, actor=creator, name=name, scopes=list(scopes))


def service_key(organization, role, scopes, name="Operator key"):
    return api_key_create(
        organization=organization, actor=Principal.system("create_api_key"), service_role=role, name=name,
        scopes=list(scopes),
    )


def as_key(api_client, raw):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api_client


def as_person(api_client, user, organization):
    token = OrganizationRefreshToken.for_membership(user=user, organization=organization).access_token
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client


def membership_of(user, organization) -> Membership:
    return Membership.objects.for_org(organization).get(user=user)


def error(response) -> dict:
    return response.json()["error"]


def audit(organization, action) -> AuditEvent:
    return AuditEvent.objects.for_org(organization).filter(action=action).order_by("-seq").first()


# --- effective scopes: the key's, within the role it acts as now -------------------------------


def test_a_keys_scopes_are_cut_to_its_creators_current_role_on_every_request(api_client, organization, admin_user):
    api_key, raw = person_key(organization, admin_user, ["organization:read", "organization:write", "members:read"])
    as_key(api_client, raw)
    assert api_client.patch(ORGANIZATION, {"name": "Acme Dental Group"}, format="json").status_code == 200

    # The creator's role changes (here straight in the database: no service hands the key over).
    Membership.objects.for_org(organization).filter(user=admin_user).update(role="member")
    response = api_client.patch(ORGANIZATION, {"name": "Acme Again"}, format="json")
    assert response.status_code == 403 and error(response)["code"] == "missing_scope"
    assert "organization:write" in error(response)["message"] and "(member)" in error(response)["message"]
    assert api_client.get(ORGANIZATION).status_code == 200  # reads the role allows still work
    me = api_client.get(ME).json()
    assert me["role"] == "member" and me["scopes"] == ["members:read", "organization:read"]

    Membership.objects.for_org(organization).filter(user=admin_user).update(role="admin")
    assert api_client.patch(ORGANIZATION, {"name": "Acme Dental Group"}, format="json").status_code == 200


def test_a_key_whose_creator_is_no_longer_a_member_is_refused_as_orphaned(api_client, organization, admin_user):
    _api_key, raw = person_key(organization, admin_user, ["organization:read"])
    as_key(api_client, raw)
    assert api_client.get(ORGANIZATION).status_code == 200
    Membership.objects.for_org(organization).filter(user=admin_user).delete()  # no service: nothing revoked it
    response = api_client.get(ORGANIZATION)
    assert response.status_code == 401 and error(response)["code"] == "api_key_orphaned"
    assert "no longer a member" in error(response)["message"]


# --- removing or demoting the creator: revoke, or hand over -----------------------------------------


def test_demoting_the_creator_revokes_their_keys_and_the_audit_event_lists_them(
    api_client, organization, owner, admin_user
):
    api_key, raw = person_key(organization, admin_user, ["organization:read", "members:read"])
    membership = membership_of(admin_user, organization)
    as_person(api_client, owner, organization)
    response = api_client.patch(member_url(membership), {"role": "member", "api_keys": "revoke"}, format="json")
    assert response.status_code == 200, response.content

    as_key(api_client, raw)
    response = api_client.get(ORGANIZATION)
    assert response.status_code == 401 and error(response)["code"] == "api_key_revoked"
    event = audit(organization, "member.role_changed")
    assert event.metadata["api_keys_disposition"] == "revoke"
    assert [(k["prefix"], k["to"]) for k in event.metadata["api_keys"]] == [(api_key.prefix, "revoked")]


def test_removing_the_creator_with_keys_handed_over_makes_them_act_within_the_removers_role(
    api_client, organization, owner, admin_user
):
    api_key, raw = person_key(organization, admin_user, ["organization:read", "organization:write"])
    as_person(api_client, owner, organization)
    response = api_client.delete(f"{member_url(membership_of(admin_user, organization))}?api_keys=transfer")
    assert response.status_code == 204, response.content

    api_key.refresh_from_db()
    assert api_key.created_by_id == owner.pk and api_key.revoked_at is None
    as_key(api_client, raw)
    assert api_client.patch(ORGANIZATION, {"name": "Kept working"}, format="json").status_code == 200
    event = audit(organization, "member.removed")
    assert event.metadata["api_keys_disposition"] == "transfer"
    assert [(k["prefix"], k["to"]) for k in event.metadata["api_keys"]] == [(api_key.prefix, "transferred")]

    # It follows its new owner's role from now on.
    Membership.objects.for_org(organization).filter(user=owner).update(role="member")
    response = api_client.patch(ORGANIZATION, {"name": "No longer"}, format="json")
    assert response.status_code == 403 and "(member)" in error(response)["message"]


def test_keys_handed_over_are_cut_to_the_new_owners_scopes(organization, owner, admin_user, member):
    broad, _ = person_key(organization, admin_user, ["organization:read", "members:read", "organization:write"])
    write_only, _ = person_key(organization, admin_user, ["organization:write"], name="Writer")
    taker = membership_of(member, organization)
    taker.organization = organization
    done = api_keys_of_member_dispose(
        organization=organization, member=admin_user, disposition=KeyDisposition.TRANSFER, actor=Principal.member(taker)
    )
    broad.refresh_from_db()
    write_only.refresh_from_db()
    assert broad.created_by_id == member.pk and broad.scopes == ["organization:read", "members:read"]
    assert write_only.revoked_at is not None  # nothing of it was within the new owner's rights
    assert {d["prefix"]: d["to"] for d in done} == {broad.prefix: "transferred", write_only.prefix: "revoked"}


def test_removing_the_creator_with_keys_revoked_stops_them(api_client, organization, owner, admin_user):
    api_key, raw = person_key(organization, admin_user, ["organization:read"])
    as_person(api_client, owner, organization)
    removal = f"{member_url(membership_of(admin_user, organization))}?api_keys=revoke"
    assert api_client.delete(removal).status_code == 204
    as_key(api_client, raw)
    response = api_client.get(ORGANIZATION)
    assert response.status_code == 401 and error(response)["code"] == "api_key_revoked"
    event = audit(organization, "member.removed")
    assert [(k["prefix"], k["to"]) for k in event.metadata["api_keys"]] == [(api_key.prefix, "revoked")]


def test_only_a_person_can_take_keys_over(api_client, organization, owner, admin_user):
    person_key(organization, admin_user, ["organization:read"])
    _remover, raw = person_key(organization, owner, ["members:read", "members:write"], name="Team sync")
    as_key(api_client, raw)
    response = api_client.delete(f"{member_url(membership_of(admin_user, organization))}?api_keys=transfer")
    assert response.status_code == 403
    assert "Only a person can take over API keys" in error(response)["message"]
    assert Membership.objects.for_org(organization).filter(user=admin_user).exists()  # nothing happened
    # Revoking them is for the key to choose.
    removal = f"{member_url(membership_of(admin_user, organization))}?api_keys=revoke"
    assert api_client.delete(removal).status_code == 204


# --- the removal dialog in the portal ------------------------------------------------------------


def _row(html: str, membership) -> str:
    start = html.index(f'id="member-{membership.pk}"')
    return html[start:html.index("</tr>", start)]


def test_the_team_page_asks_about_keys_only_for_members_who_have_some_and_hands_them_over(
    client, organization, owner, admin_user, member, api_client
):
    _api_key, raw = person_key(organization, admin_user, ["organization:read"])
    client.force_login(owner)
    html = client.get(reverse("accounts:team", kwargs={"org_slug": organization.slug})).content.decode()
    with_keys = _row(html, membership_of(admin_user, organization))
    without_keys = _row(html, membership_of(member, organization))
    assert 'name="api_keys" value="transfer"' in with_keys and "1 API key" in with_keys
    assert 'name="api_keys"' not in without_keys

    url = reverse(
        "accounts:membership-remove",
        kwargs={"org_slug": organization.slug, "membership_id": membership_of(admin_user, organization).pk},
    )
    assert client.post(url, {"api_keys": "transfer"}).status_code == 302
    assert not Membership.objects.for_org(organization).filter(user=admin_user).exists()
    assert ApiKey.objects.for_org(organization).get(prefix=_api_key.prefix).created_by_id == owner.pk
    assert as_key(api_client, raw).get(ORGANIZATION).status_code == 200


# --- no credential creates a credential with more rights ----------------------------------------


def test_a_key_cannot_create_a_key_with_a_scope_it_does_not_hold(api_client, organization, owner):
    parent, raw = person_key(organization, owner, ["api_keys:write", "members:read"])
    as_key(api_client, raw)
    response = api_client.post(KEYS, {"name": "Wider", "scopes": ["organization:write"]}, format="json")
    assert response.status_code == 400 and error(response)["code"] == "scope_not_allowed"
    assert "This API key" in error(response)["message"] and "organization:write" in error(response)["message"]

    response = api_client.post(KEYS, {"name": "Narrower", "scopes": ["members:read"]}, format="json")
    assert response.status_code == 201, response.content
    child = ApiKey.objects.for_org(organization).get(pk=response.json()["id"])
    # The same footing as its parent: the same creator, whose current role bounds both.
    assert child.created_by_id == owner.pk and child.service_role == ""


def test_a_key_cannot_grant_what_its_creators_current_role_no_longer_allows(api_client, organization, admin_user):
    _parent, raw = person_key(organization, admin_user, ["api_keys:write", "members:read"])
    Membership.objects.for_org(organization).filter(user=admin_user).update(role="member")
    response = as_key(api_client, raw).post(KEYS, {"name": "Sneaky", "scopes": ["members:read"]}, format="json")
    assert response.status_code == 403 and error(response)["code"] == "missing_scope"


def test_a_key_made_by_a_service_key_is_a_service_key_of_the_same_role(api_client, organization):
    _parent, raw = service_key(organization, "admin", ["api_keys:write", "members:read"])
    response = as_key(api_client, raw).post(KEYS, {"name": "Child", "scopes": ["members:read"]}, format="json")
    assert response.status_code == 201, response.content
    child = ApiKey.objects.for_org(organization).get(pk=response.json()["id"])
    assert child.created_by_id is None and child.service_role == "admin"


def test_a_member_role_service_key_cannot_be_given_write_scopes(organization):
    with pytest.raises(ApplicationError) as refused:
        service_key(organization, "member", ["organization:read", "members:write"])
    assert refused.value.code == "scope_not_allowed"
    assert "service key acting as member" in refused.value.message and "members:write" in refused.value.message
    with pytest.raises(CommandError, match="service key acting as member"):
        call_command(
            "create_api_key", "--org", organization.slug, "--name", "Sync",
            "--scopes", "members:write", "--role", "member",
            stdout=StringIO(),
        )


def test_a_person_cannot_grant_beyond_their_role(organization, member):
    Membership.objects.for_org(organization).filter(user=member).update(role="admin")
    api_key_create(organization=organization, actor=member, name="Fine", scopes=["members:write"])
    Membership.objects.for_org(organization).filter(user=member).update(role="member")
    with pytest.raises(ApplicationError) as refused:
        api_key_create(organization=organization, actor=member, name="Too much", scopes=["members:write"])
    assert refused.value.status == 403  # a member may not make keys at all


# --- an operator's key: a service key with its own role, true messages ---------------------------


def test_an_operators_key_has_the_rights_of_the_role_it_was_given_everywhere(api_client, organization, member):
    out = StringIO()
    call_command(
        "create_api_key", "--org", organization.slug, "--name", "Ops", "--role", "admin",
        "--scopes", "organization:read,organization:write,api_keys:write,members:write", stdout=out,
    )
    raw = re.search(r"jc_live_\S+", out.getvalue()).group(0)
    as_key(api_client, raw)
    assert api_client.patch(ORGANIZATION, {"name": "Renamed by ops"}, format="json").status_code == 200
    assert api_client.post(KEYS, {"name": "Minted", "scopes": ["organization:read"]}, format="json").status_code == 201
    # Its role is admin: it may not make an owner, and says so truly.
    response = api_client.patch(member_url(membership_of(member, organization)), {"role": "owner"}, format="json")
    assert response.status_code == 403
    assert "person who created" not in error(response)["message"]


def test_refusals_of_a_service_key_never_speak_of_a_person_who_created_it(api_client, organization):
    _key, raw = service_key(organization, "member", ["organization:read", "members:read"])
    as_key(api_client, raw)
    for response in (
        api_client.patch(ORGANIZATION, {"name": "Nope"}, format="json"),
        api_client.post(KEYS, {"name": "Nope", "scopes": ["members:read"]}, format="json"),
        api_client.get(KEYS),
    ):
        assert response.status_code == 403
        assert "created" not in error(response)["message"], error(response)["message"]
    # A scope it holds but whose role no longer allows it: the message names the service key's role.
    ApiKey.objects.for_org(organization).filter(prefix=_key.prefix).update(
        scopes=["organization:read", "organization:write"]
    )
    response = api_client.patch(ORGANIZATION, {"name": "Nope"}, format="json")
    assert response.status_code == 403
    assert "service key's role (member)" in error(response)["message"]
    assert "person who created" not in error(response)["message"]
