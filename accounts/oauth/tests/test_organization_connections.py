"""An organization's owners and admins see, and disconnect, the applications acting in it.

Whoever registered the application: a partner's application that people
here connected is listed and can be disconnected here, and only its tokens
acting here stop working.
"""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from accounts.permissions import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from compliance.models import AuditEvent
from jagcall.kernel.errors import ApplicationError
from accounts.oauth.models import AccessToken, Grant, RefreshToken
from accounts.oauth.services import oauth_organization_connection_revoke
from accounts.oauth.tests.factories import exchange, obtain_code, refresh, register, tokens_for

pytestmark = pytest.mark.django_db


def _list_url(organization):
    return reverse("oauth:organization-connection-list", kwargs={"org_slug": organization.slug})


def _disconnect_url(organization, application):
    application_id = getattr(application, "id", application)
    return reverse(
        "oauth:organization-connection-revoke", kwargs={"org_slug": organization.slug, "application_id": application_id}
    )


@pytest.fixture
def partner_app(other_organization):
    """A confidential application registered by another organization (Globex Sales)."""
    return register(other_organization, name="Globex Dialer")


@pytest.fixture
def second_clinic(owner):
    """A second organization the owner of Acme Dental also belongs to (as its owner)."""
    second = OrganizationFactory(name="Second Clinic", slug="second-clinic")
    MembershipFactory(organization=second, user=owner, role=Role.OWNER)
    return second


def _me(bearer, tokens):
    return bearer(tokens["access_token"]).get("/api/v1/me")


# --- the page ---------------------------------------------------------------------------------


def test_empty_state_explains_what_appears_here(owner_client, organization):
    page = owner_client.get(_list_url(organization))
    assert page.status_code == 200
    body = page.content.decode()
    assert "No application is connected to Acme Dental." in body
    assert "registered by other organizations" in body
    assert reverse("oauth:application-list", kwargs={"org_slug": organization.slug}) in body


def test_settings_page_links_to_it_next_to_oauth_applications(owner_client, organization):
    page = owner_client.get(reverse("accounts:organization-settings", kwargs={"org_slug": organization.slug}))
    body = page.content.decode()
    oauth_apps = body.index(reverse("oauth:application-list", kwargs={"org_slug": organization.slug}))
    connected = body.index(_list_url(organization))
    assert 0 < connected - oauth_apps < 400  # in the same section


def test_lists_every_application_acting_here_with_who_what_and_since(
    client, organization, owner, admin_user, member, app_client, partner_app, second_clinic
):
    client.force_login(owner)
    tokens_for(client, partner_app, organization=organization, scopes=["organization:read"])
    tokens_for(client, app_client, organization=second_clinic)  # acting in another organization only
    client.force_login(admin_user)
    tokens_for(client, partner_app, organization=organization, scopes=["organization:read", "members:read"])
    client.force_login(member)
    tokens_for(client, app_client, organization=organization, scopes=["organization:read"])

    client.force_login(admin_user)
    page = client.get(_list_url(organization))
    assert page.status_code == 200
    body = page.content.decode()
    assert "No application is connected" not in body
    partner_row = body.split(f'id="org-connection-{partner_app.application.id}"')[1].split("</tr>")[0]
    assert "Globex Dialer" in partner_row and "registered by Globex Sales" in partner_row
    assert "owner@acme.test" in partner_row and "admin@acme.test" in partner_row
    assert "member@acme.test" not in partner_row
    assert "Read the organization&#x27;s details" in partner_row and "List the team and their roles" in partner_row
    assert _disconnect_url(organization, partner_app.application) in partner_row
    own_row = body.split(f'id="org-connection-{app_client.application.id}"')[1].split("</tr>")[0]
    assert "registered by Acme Dental" in own_row and "member@acme.test" in own_row
    assert "owner@acme.test" not in own_row  # the owner connected it to Second Clinic, not here
    assert "List the team and their roles" not in own_row


def test_since_is_when_it_was_first_connected_however_often_it_was_refreshed(
    client, organization, owner, partner_app
):
    from datetime import timedelta

    from django.utils import timezone

    client.force_login(owner)
    tokens = tokens_for(client, partner_app, organization=organization)
    ten_days_ago = timezone.now() - timedelta(days=10)
    # As if the code had been exchanged ten days ago (the chain's end is set then) and refreshed since.
    RefreshToken.objects.unscoped("test: reads across organizations").update(expires_at=ten_days_ago + timedelta(days=30))
    assert refresh(client, partner_app, tokens["refresh_token"]).status_code == 200
    page = client.get(_list_url(organization)).content.decode()
    assert f"{ten_days_ago:%-d %b %Y}</span>" in page


def test_revoked_and_expired_connections_are_not_listed(client, organization, owner, partner_app):
    from datetime import timedelta

    from django.utils import timezone

    client.force_login(owner)
    tokens_for(client, partner_app, organization=organization)
    RefreshToken.objects.unscoped("test: reads across organizations").update(expires_at=timezone.now() - timedelta(seconds=1))
    AccessToken.objects.unscoped("test: reads across organizations").update(expires=timezone.now() - timedelta(seconds=1))
    assert "No application is connected" in client.get(_list_url(organization)).content.decode()


# --- disconnecting -----------------------------------------------------------------------------


def test_disconnect_revokes_only_this_organizations_tokens(
    client, organization, owner, admin_user, other_owner, other_organization, partner_app, second_clinic, bearer, events
):
    client.force_login(owner)
    owners_here = tokens_for(client, partner_app, organization=organization)
    owners_elsewhere = tokens_for(client, partner_app, organization=second_clinic)
    pending_code, pending_verifier = obtain_code(client, partner_app, organization=organization)
    client.force_login(admin_user)
    admins_here = tokens_for(client, partner_app, organization=organization)
    client.force_login(other_owner)
    registrars = tokens_for(client, partner_app, organization=other_organization)

    client.force_login(admin_user)
    response = client.post(_disconnect_url(organization, partner_app.application))
    assert response.status_code == 302 and response["Location"] == _list_url(organization)
    page = client.get(response["Location"]).content.decode()
    assert "“Globex Dialer” is disconnected from Acme Dental." in page
    assert "No application is connected to Acme Dental." in page

    # Every token acting here stops working at once, and so does a code not yet exchanged...
    for tokens in (owners_here, admins_here):
        answer = _me(bearer, tokens)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "oauth_token_invalid"
        assert refresh(client, partner_app, tokens["refresh_token"]).status_code == 400
    assert exchange(client, partner_app, pending_code, pending_verifier).status_code == 400
    # ...and what the same application holds for other organizations is untouched.
    assert _me(bearer, owners_elsewhere).json()["organization"]["slug"] == "second-clinic"
    assert _me(bearer, registrars).json()["organization"]["slug"] == "globex-sales"
    assert refresh(client, partner_app, owners_elsewhere["refresh_token"]).status_code == 200
    assert not AccessToken.objects.for_org(organization).exists()
    assert not RefreshToken.objects.for_org(organization).filter(revoked__isnull=True).exists()
    assert not Grant.objects.for_org(organization).exists()

    revoked = [e for e in events if e["event"] == "oauth.organization_connection_revoked"]
    assert len(revoked) == 1
    assert revoked[0]["organization_id"] == str(organization.id) and revoked[0]["user_id"] == str(admin_user.id)
    assert revoked[0]["application_id"] == str(partner_app.application.id)
    assert revoked[0]["registered_by_organization_id"] == str(other_organization.id)
    assert revoked[0]["connections_ended"] == 2
    audit = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="oauth.organization_connection_revoked")
    assert audit.organization_id == organization.id and audit.actor_id == admin_user.id
    assert audit.resource_type == "oauth_application" and audit.resource_id == str(partner_app.application.id)

    # Nothing is left to disconnect here: a second press is a 404.
    assert client.post(_disconnect_url(organization, partner_app.application)).status_code == 404
    # People can connect it again.
    client.force_login(owner)
    assert _me(bearer, tokens_for(client, partner_app, organization=organization)).status_code == 200


def test_the_registering_organization_may_disconnect_its_own_application_here(
    client, organization, owner, member, app_client, bearer
):
    client.force_login(member)
    tokens = tokens_for(client, app_client, organization=organization, scopes=["organization:read"])
    client.force_login(owner)
    assert client.post(_disconnect_url(organization, app_client.application)).status_code == 302
    assert _me(bearer, tokens).status_code == 401


def test_members_cannot_see_or_disconnect(client, organization, owner, member, partner_app, bearer):
    client.force_login(owner)
    tokens = tokens_for(client, partner_app, organization=organization)
    client.force_login(member)
    assert client.get(_list_url(organization)).status_code == 403
    assert client.post(_disconnect_url(organization, partner_app.application)).status_code == 403
    assert _me(bearer, tokens).status_code == 200


def test_an_application_not_acting_here_is_404(
    client, organization, owner, other_owner, other_organization, partner_app, bearer, events
):
    client.force_login(other_owner)
    theirs = tokens_for(client, partner_app, organization=other_organization)
    client.force_login(owner)
    # Connected in Globex only: under Acme Dental it is someone else's business.
    assert client.post(_disconnect_url(organization, partner_app.application)).status_code == 404
    assert client.post(_disconnect_url(organization, uuid.uuid4())).status_code == 404
    # Another organization's page: not a member, 404.
    assert client.get(_list_url(other_organization)).status_code == 404
    assert client.post(_disconnect_url(other_organization, partner_app.application)).status_code == 404
    assert client.get(_disconnect_url(organization, partner_app.application)).status_code == 405  # POST only
    assert _me(bearer, theirs).status_code == 200
    assert "Globex Dialer" not in client.get(_list_url(organization)).content.decode()
    assert not [e for e in events if e["event"] == "oauth.organization_connection_revoked"]


def test_service_refuses_an_application_with_nothing_here(organization, other_organization, partner_app):
    with pytest.raises(ApplicationError) as raised:
        oauth_organization_connection_revoke(
            organization=organization, application=partner_app.application, actor=None
        )
    assert raised.value.status == 404
