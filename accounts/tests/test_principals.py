"""Who acts is explicit (accounts/principals.py): built once at the edge, given to services as ``actor=``,
and recorded by the audit log exactly as given.

The same service (``organization_update``, ``membership_role_change``) is
called through the API with an API key, through the portal by a person, and
from a task as a system job; each audit event names that actor and never
anyone else (an API key's action is never put down to its creator).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts import services
from accounts.api_keys.services import api_key_create
from accounts.models import Membership
from accounts.principals import Kind, Principal, as_principal
from compliance.models import ActorType, AuditEvent
from jagcall.kernel.errors import PermissionDenied

pytestmark = pytest.mark.django_db


def last_event(organization, action) -> AuditEvent:
    event = AuditEvent.objects.for_org(organization).filter(action=action).order_by("-seq").first()
    assert event is not None, f"no {action} event"
    return event


def membership_of(user, organization) -> Membership:
    return Membership.objects.for_org(organization).get(user=user)


# --- one service, three kinds of actor -----------------------------------------------------------


def test_an_api_keys_action_is_recorded_as_the_key_never_as_its_creator(api_client, organization, owner, member):
    api_key, raw = api_key_create(
        organization=organization, actor=owner, name="CRM sync", scopes=["organization:write", "members:write"]
    )
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api_client.patch("/api/v1/organization", {"name": "Renamed by a key"}, format="json").status_code == 200
    response = api_client.patch(
        f"/api/v1/members/{membership_of(member, organization).pk}", {"role": "admin"}, format="json"
    )
    assert response.status_code == 200, response.content

    for action in ("organization.updated", "member.role_changed"):
        event = last_event(organization, action)
        assert event.actor_type == ActorType.API_KEY
        assert event.actor_label == f"jc_live_{api_key.prefix}" and event.api_key_prefix == api_key.prefix
        assert event.actor_id is None  # not the owner who created the key
        assert owner.email not in event.actor_label


def test_the_same_services_called_from_the_portal_record_the_person(client, organization, owner, member):
    client.force_login(owner)
    settings_page = reverse("accounts:organization-settings", kwargs={"org_slug": organization.slug})
    response = client.post(settings_page, {"name": "Renamed in the portal"})
    assert response.status_code == 302
    url = reverse(
        "accounts:membership-role",
        kwargs={"org_slug": organization.slug, "membership_id": membership_of(member, organization).pk},
    )
    assert client.post(url, {"role": "admin"}).status_code == 302

    for action in ("organization.updated", "member.role_changed"):
        event = last_event(organization, action)
        assert event.actor_type == ActorType.USER
        assert event.actor_id == owner.pk and event.actor_label == owner.email
        assert event.api_key_prefix == ""


def test_the_same_service_called_from_a_task_records_the_system_job(organization, owner):
    services.organization_update(
        organization=organization, actor=Principal.system("nightly-rename"), name="Renamed by a job"
    )
    event = last_event(organization, "organization.updated")
    assert event.actor_type == ActorType.SYSTEM
    assert event.actor_label == "nightly-rename" and event.actor_id is None and event.api_key_prefix == ""


# --- what a principal may do, and what it is told -------------------------------------------------


def test_a_key_principal_carries_no_more_than_the_role_it_acts_within(organization, owner):
    api_key, _raw = api_key_create(
        organization=organization, actor=owner, name="Wide", scopes=["organization:read", "organization:write"]
    )
    principal = Principal.for_api_key(api_key, role="member")
    assert principal.kind == Kind.API_KEY and principal.user is None
    assert principal.scopes == frozenset({"organization:read"})
    assert not principal.can("organization.update")
    with pytest.raises(PermissionDenied, match=r"person who created it, whose role \(member\)"):
        principal.require("organization.update")
    with pytest.raises(PermissionDenied, match="no longer a member"):
        Principal.for_api_key(api_key, role=None).require("organization.view")


def test_a_service_keys_refusal_names_its_own_role_not_a_creator(organization):
    api_key, _raw = api_key_create(
        organization=organization, actor=Principal.system("operator"), service_role="member", name="Ops",
        scopes=["organization:read"],
    )
    with pytest.raises(PermissionDenied) as refused:
        Principal.for_api_key(api_key, role=api_key.service_role).require("organization.update")
    assert "service key's role (member)" in refused.value.message
    assert "created" not in refused.value.message.replace("create a key", "")


def test_a_principal_of_one_organization_cannot_act_in_another(organization, other_organization, owner, other_owner):
    principal = as_principal(owner, organization)
    assert principal.kind == Kind.MEMBER and principal.role == "owner"
    with pytest.raises(PermissionDenied, match="another organization"):
        as_principal(principal, other_organization)
    with pytest.raises(PermissionDenied):
        services.organization_update(organization=other_organization, actor=principal, name="Hijacked")
    other_organization.refresh_from_db()
    assert other_organization.name == "Globex Sales"
    with pytest.raises(PermissionDenied, match="not a member"):
        as_principal(owner, other_organization)  # a person acts only where they are a member
