"""OAuth's cases for the cross-tenant walk (accounts/tests/urlwalk.py, accounts/tests/test_tenancy.py)."""

from __future__ import annotations

from accounts.oauth.services import oauth_application_create
from accounts.permissions import Role
from accounts.tests.factories import MembershipFactory


def _connected_application(org):
    """An application of ``org`` that one of its members has connected there: it shows on every OAuth page."""
    from accounts.oauth.tests.factories import connect

    application = oauth_application_create(
        organization=org, actor=None, name="Tenancy walk app", client_type="confidential",
        redirect_uris="https://client.example/callback",
    )[0]
    connect(application, organization=org, user=MembershipFactory(organization=org, role=Role.MEMBER).user)
    return application


# kwarg -> how to make an object of that kind inside an organization
OBJECT_KWARGS = {
    "application_id": lambda org: _connected_application(org).id,
}

# url name -> why it needs no organization in its route
PUBLIC_ROUTES = {
    "oauth:authorize": "OAuth consent: the signed-in person binds a code to one of their own organizations (accounts/oauth/endpoints.py)",
    "oauth:token": "OAuth token endpoint: the code or refresh token in the body is the credential, bound to one organization",
    "oauth:revoke-token": "OAuth revocation (RFC 7009): a client revokes a token issued to it",
    "oauth:connection-list": "lists only the signed-in person's own connected applications",
    "oauth:connection-revoke": "revokes only the signed-in person's own tokens for one application",
}
