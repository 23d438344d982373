from __future__ import annotations

import pytest

from accounts.principals import Principal

OPERATOR = Principal.system("operator")  # service keys, as the create_api_key command makes them


def record(organization=None, action="member.invited", **kwargs):
    from compliance.services import audit_record

    return audit_record(action=action, organization=organization, **kwargs)


def jwt_for(user, organization) -> str:
    from accounts.jwt.tokens import OrganizationRefreshToken

    return str(OrganizationRefreshToken.for_membership(user=user, organization=organization).access_token)


def api_key_for(organization, scopes=("audit:read",), name="Audit reader"):
    """(ApiKey, raw key)."""
    from accounts.api_keys.services import api_key_create
    from accounts.scopes import ALL_SCOPES

    return api_key_create(organization=organization, actor=OPERATOR, service_role="owner", name=name, scopes=list(scopes))


@pytest.fixture
def rf_request(rf):
    """A request as the portal sees it: address, browser and request id."""

    def make(user=None, path="/o/acme-dental/team/", ip="203.0.113.7", ua="Mozilla/5.0 (Audit test)", request_id="req-12345678"):
        from django.contrib.auth.models import AnonymousUser

        request = rf.get(path, REMOTE_ADDR=ip, HTTP_USER_AGENT=ua)
        request.user = user if user is not None else AnonymousUser()
        request.request_id = request_id
        return request

    return make
