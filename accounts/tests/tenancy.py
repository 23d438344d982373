"""accounts' cases for the cross-tenant walk (accounts/tests/urlwalk.py, accounts/tests/test_tenancy.py)."""

from __future__ import annotations

from accounts.api_keys.services import api_key_create
from accounts.permissions import Role
from accounts.principals import Principal
from accounts.tests.factories import InvitationFactory, MembershipFactory

OPERATOR = Principal.system("operator")

# kwarg -> how to make an object of that kind inside an organization
OBJECT_KWARGS = {
    "membership_id": lambda org: MembershipFactory(organization=org, role=Role.MEMBER).id,
    "invitation_id": lambda org: InvitationFactory(organization=org).id,
    "api_key_id": lambda org: api_key_create(
        organization=org, actor=OPERATOR, service_role="owner",
        name="Tenancy walk", scopes=["api_keys:read"],
    )[0].id,
}

# url name -> why it needs no organization in its route
PUBLIC_ROUTES = {
    "accounts:home": "redirects to one of the user's own organizations",
    "account_login": "sign in",
    "account_logout": "sign out",
    "accounts:organization-list": "lists only the user's own organizations",
    "accounts:organization-create": "creates a new organization",
    "accounts:invitation-accept": "bound to a secret single-use token, not to an id",
    "api:token-obtain": "exchanges a person's credentials for a token bound to one of their organizations",
    "api:token-refresh": "exchanges a refresh token for new tokens of the same organization",
    "api:token-revoke": "revokes the refresh token it is given",
    "sso:metadata": "public SAML service-provider metadata of an organization with SSO on; no data beyond its SSO addresses",
    "sso:login": "starts SAML sign-in at the organization's own IdP; the visitor is not signed in yet",
    "sso:acs": "receives the IdP's signed assertion; the organization's configuration decides who may sign in",
}
