"""The organization and its team over the API: scopes, the team rules, one organization only."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.jwt.tokens import OrganizationRefreshToken
from accounts.api_keys.services import api_key_create
from accounts.models import Membership
from accounts.permissions import Role
from accounts.scopes import ALL_SCOPES
from accounts.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

ORGANIZATION = "/api/v1/organization"
MEMBERS = "/api/v1/members"


def member_url(membership_id) -> str:
    return f"{MEMBERS}/{membership_id}"


from accounts.principals import Principal
from jagcall.kernel.errors import ApplicationError

OPERATOR = Principal.system("operator")


def jwt_for(user, organization) -> str:
    return str(OrganizationRefreshToken.for_membership(user=user, organization=organization).access_token)


def make_key(organization, scopes, created_by=None):
    return api_key_create(
        organization=organization, actor=created_by or OPERATOR, service_role="" if created_by else "owner", name="Test key",
        scopes=list(scopes),
    )[1]


def bearer(client, token):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def membership_of(user, organization) -> Membership:
    return Membership.objects.for_org(organization).get(user=user)


# --- the organization ------------------------------------------------------------------------


def test_get_organization(api_client, organization):
    response = bearer(api_client, make_key(organization, ["organization:read"])).get(ORGANIZATION)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "name", "slug", "plan_code", "status", "require_two_factor", "created_at"}
    assert body["id"] == str(organization.id)
    assert (body["name"], body["slug"], body["status"]) == ("Acme Dental", "acme-dental", "active")
    assert body["require_two_factor"] is False


def test_patch_organization_renames_it(api_client, organization, owner):
    bearer(api_client, jwt_for(owner, organization))
    response = api_client.patch(ORGANIZATION, {"name": "Acme Orthodontics"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "Acme Orthodontics"
    organization.refresh_from_db()
    assert organization.name == "Acme Orthodontics"


def test_patch_organization_with_a_key_acts_as_its_creator(api_client, organization, admin_user):
    bearer(api_client, make_key(organization, ["organization:write"], created_by=admin_user))
    response = api_client.patch(ORGANIZATION, {"name": "Renamed"}, format="json")
    assert response.status_code == 200
    organization.refresh_from_db()
    assert organization.name == "Renamed"


def test_a_key_whose_creator_lost_the_role_cannot_write(api_client, organization, admin_user):
    bearer(api_client, make_key(organization, ["organization:write", "members:write"], created_by=admin_user))
    membership = membership_of(admin_user, organization)
    membership.role = Role.MEMBER
    membership.save()
    response = api_client.patch(ORGANIZATION, {"name": "Renamed"}, format="json")
    assert response.status_code == 403
    message = response.json()["error"]["message"]
    assert "organization:write" in message and "current role (member) of the person who created this key" in message
    organization.refresh_from_db()
    assert organization.name == "Acme Dental"


def test_a_service_key_acts_within_the_role_it_was_given(api_client, organization):
    bearer(api_client, api_key_create(
        organization=organization, actor=OPERATOR, service_role=Role.MEMBER, name="Reader", scopes=["organization:read"],
    )[1])
    assert api_client.get(ORGANIZATION).status_code == 200
    # A member-role service key cannot be given a write scope at all...
    with pytest.raises(ApplicationError, match="organization:write"):
        api_key_create(organization=organization, actor=OPERATOR, service_role=Role.MEMBER, name="W", scopes=["organization:write"])
    # ...and an admin-role one writes, recorded as itself.
    bearer(api_client, make_key(organization, ["organization:write"]))
    assert api_client.patch(ORGANIZATION, {"name": "Renamed"}, format="json").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 121}, "name"), ({"name": "   "}, "name")],
)
def test_patch_organization_validation_errors(api_client, organization, owner, body, field):
    bearer(api_client, jwt_for(owner, organization))
    response = api_client.patch(ORGANIZATION, body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["details"]
    assert error["message"]
    organization.refresh_from_db()
    assert organization.name == "Acme Dental"


def test_organization_scopes(api_client, organization, member):
    bearer(api_client, make_key(organization, ["members:read"]))
    response = api_client.get(ORGANIZATION)
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This request needs the scope organization:read."

    bearer(api_client, make_key(organization, ["organization:read"]))
    response = api_client.patch(ORGANIZATION, {"name": "x"}, format="json")
    assert response.status_code == 403
    assert "organization:write" in response.json()["error"]["message"]

    # A member's token reads, but cannot write.
    bearer(api_client, jwt_for(member, organization))
    assert api_client.get(ORGANIZATION).status_code == 200
    response = api_client.patch(ORGANIZATION, {"name": "x"}, format="json")
    assert response.status_code == 403
    assert "organization:write" in response.json()["error"]["message"]


def test_organization_is_the_credentials_own(api_client, organization, other_organization, other_owner):
    response = bearer(api_client, jwt_for(other_owner, other_organization)).get(ORGANIZATION)
    assert response.json()["id"] == str(other_organization.id)
    api_client.patch(ORGANIZATION, {"name": "Globex Renamed"}, format="json")
    organization.refresh_from_db()
    assert organization.name == "Acme Dental"


# --- the team ----------------------------------------------------------------------------------


def test_members_list_newest_first_and_paginated(api_client, organization, owner, admin_user, member):
    now = timezone.now()
    for offset, user in enumerate([owner, admin_user, member]):
        Membership.objects.for_org(organization).filter(user=user).update(created_at=now - timedelta(days=3 - offset))
    bearer(api_client, make_key(organization, ["members:read"]))
    response = api_client.get(MEMBERS, {"limit": 2})
    assert response.status_code == 200
    body = response.json()
    assert [m["user"]["email"] for m in body["results"]] == ["member@acme.test", "admin@acme.test"]
    first = body["results"][0]
    assert set(first) == {"id", "user", "role", "created_at"}
    assert set(first["user"]) == {"id", "email", "name"}
    assert first["id"] == str(membership_of(member, organization).id)
    assert first["role"] == "member"
    assert body["next"]
    rest = api_client.get(body["next"]).json()
    assert [m["user"]["email"] for m in rest["results"]] == ["owner@acme.test"]
    assert rest["next"] is None


def test_members_list_shows_only_this_organization(api_client, organization, owner, other_owner):
    body = bearer(api_client, make_key(organization, ["members:read"])).get(MEMBERS).json()
    emails = [m["user"]["email"] for m in body["results"]]
    assert emails == ["owner@acme.test"]


def test_member_scopes(api_client, organization, owner, member):
    target = membership_of(member, organization)
    bearer(api_client, make_key(organization, ["organization:read"]))
    response = api_client.get(MEMBERS)
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This request needs the scope members:read."

    bearer(api_client, make_key(organization, ["members:read"], created_by=owner))
    for response in (
        api_client.patch(member_url(target.id), {"role": "admin"}, format="json"),
        api_client.delete(member_url(target.id)),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["message"] == "This request needs the scope members:write."
    target.refresh_from_db()
    assert target.role == Role.MEMBER


def test_change_role(api_client, organization, owner, member):
    target = membership_of(member, organization)
    bearer(api_client, jwt_for(owner, organization))
    response = api_client.patch(member_url(target.id), {"role": "admin"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    assert response.json()["user"]["email"] == "member@acme.test"
    target.refresh_from_db()
    assert target.role == Role.ADMIN


def test_change_role_with_a_key_acts_as_its_creator(api_client, organization, owner, member):
    target = membership_of(member, organization)
    bearer(api_client, make_key(organization, ["members:write"], created_by=owner))
    assert api_client.patch(member_url(target.id), {"role": "admin"}, format="json").status_code == 200
    target.refresh_from_db()
    assert target.role == Role.ADMIN


def test_change_role_validation_error(api_client, organization, owner, member):
    target = membership_of(member, organization)
    bearer(api_client, jwt_for(owner, organization))
    response = api_client.patch(member_url(target.id), {"role": "king"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"role": ["Choose a role: owner, admin, member."]}
    response = api_client.patch(member_url(target.id), {}, format="json")
    assert response.status_code == 400
    assert "role" in response.json()["error"]["details"]


def test_last_owner_cannot_be_demoted(api_client, organization, owner):
    bearer(api_client, jwt_for(owner, organization))
    response = api_client.patch(member_url(membership_of(owner, organization).id), {"role": "admin"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "last_owner"
    assert error["message"] == "An organization must keep at least one owner. Make someone else an owner first."
    assert membership_of(owner, organization).role == Role.OWNER


def test_last_owner_cannot_be_removed(api_client, organization, owner):
    second = MembershipFactory(organization=organization, user=UserFactory(email="second@acme.test"), role=Role.OWNER)
    bearer(api_client, jwt_for(second.user, organization))
    assert api_client.patch(member_url(second.id), {"role": "admin"}, format="json").status_code == 200
    # Now ``owner`` is the last owner; the (former owner, now admin) cannot remove them anyway.
    response = api_client.delete(member_url(membership_of(owner, organization).id))
    assert response.status_code == 403
    assert Membership.objects.for_org(organization).filter(user=owner).exists()


def test_admin_cannot_touch_an_owner(api_client, organization, owner, admin_user):
    target = membership_of(owner, organization)
    bearer(api_client, jwt_for(admin_user, organization))
    response = api_client.patch(member_url(target.id), {"role": "member"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Only an owner can change an owner's role or make someone an owner."
    response = api_client.delete(member_url(target.id))
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Only an owner can remove an owner."
    target.refresh_from_db()
    assert target.role == Role.OWNER


def test_admin_cannot_make_an_owner(api_client, organization, owner, admin_user, member):
    target = membership_of(member, organization)
    bearer(api_client, jwt_for(admin_user, organization))
    response = api_client.patch(member_url(target.id), {"role": "owner"}, format="json")
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.role == Role.MEMBER


def test_remove_member(api_client, organization, owner, member):
    target = membership_of(member, organization)
    bearer(api_client, jwt_for(owner, organization))
    response = api_client.delete(member_url(target.id))
    assert response.status_code == 204
    assert not Membership.objects.for_org(organization).filter(pk=target.pk).exists()


def test_remove_yourself_is_refused(api_client, organization, owner):
    bearer(api_client, jwt_for(owner, organization))
    response = api_client.delete(member_url(membership_of(owner, organization).id))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "use_leave"


def test_last_owner_removal_by_another_owner_keeps_one(api_client, organization, owner):
    """Two owners: one removes the other; then the remaining owner is the last and stays."""
    second = MembershipFactory(organization=organization, user=UserFactory(email="second@acme.test"), role=Role.OWNER)
    bearer(api_client, jwt_for(owner, organization))
    assert api_client.delete(member_url(second.id)).status_code == 204
    assert Membership.objects.for_org(organization).filter(role=Role.OWNER).count() == 1


def test_another_organizations_membership_is_404(api_client, organization, other_organization, owner, other_owner):
    theirs = membership_of(other_owner, other_organization)
    bearer(api_client, jwt_for(owner, organization))
    for response in (
        api_client.patch(member_url(theirs.id), {"role": "member"}, format="json"),
        api_client.delete(member_url(theirs.id)),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert membership_of(other_owner, other_organization).role == Role.OWNER
    assert api_client.delete(member_url(uuid.uuid4())).status_code == 404
