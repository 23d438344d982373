"""The authorization server is configured as documented, and only our endpoints are mounted."""

from __future__ import annotations

import pytest
from django.conf import settings
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
)
from oauth2_provider.settings import oauth2_settings

from accounts.tests.urlwalk import all_routes


def test_settings_match_the_promises():
    assert oauth2_settings.PKCE_REQUIRED is True
    assert oauth2_settings.AUTHORIZATION_CODE_EXPIRE_SECONDS <= 600
    assert oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS <= 3600
    assert oauth2_settings.ROTATE_REFRESH_TOKEN is True
    assert oauth2_settings.REFRESH_TOKEN_REUSE_PROTECTION is True
    assert oauth2_settings.REFRESH_TOKEN_GRACE_PERIOD_SECONDS == 0
    assert 0 < oauth2_settings.REFRESH_TOKEN_EXPIRE_SECONDS <= 60 * 60 * 24 * 30
    assert oauth2_settings.ALLOWED_REDIRECT_URI_SCHEMES == ["https"]
    assert oauth2_settings.ALLOW_URI_WILDCARDS is False
    assert oauth2_settings.OIDC_ENABLED is False
    assert oauth2_settings.COMPLIANT_BCP_RFC9700_TOKEN_STORAGE is True
    assert oauth2_settings.COMPLIANT_BCP_RFC9700_PKCE_METHOD is True
    assert get_application_model()._meta.label == "oauth.Application"
    assert get_grant_model()._meta.label == "oauth.Grant"
    assert get_access_token_model()._meta.label == "oauth.AccessToken"
    assert get_refresh_token_model()._meta.label == "oauth.RefreshToken"
    assert settings.OAUTH2_PROVIDER_ID_TOKEN_MODEL == "oauth.IDToken"


def test_oauth_scopes_are_the_api_scopes():
    from oauth2_provider.scopes import get_scopes_backend

    from accounts.scopes import SCOPES

    backend = get_scopes_backend()
    assert backend.get_all_scopes() == {scope: label for scope, (_action, label) in SCOPES.items()}
    assert set(backend.get_available_scopes()) == set(SCOPES)


def test_only_our_three_endpoints_of_the_toolkit_are_mounted():
    toolkit = [r for r in all_routes() if r.view_class and r.view_class.__module__.startswith("oauth2_provider")]
    assert not toolkit, [r.name for r in toolkit]
    names = {r.name for r in all_routes() if r.route.startswith("^oauth/")}
    assert names == {"oauth:authorize", "oauth:token", "oauth:revoke-token"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/oauth/applications/", "/oauth/authorized_tokens/", "/oauth/introspect/", "/oauth/device/",
     "/oauth/.well-known/openid-configuration", "/oauth/userinfo/", "/oauth/register/"],
)
def test_toolkit_pages_we_do_not_offer_are_absent(owner_client, path):
    assert owner_client.get(path).status_code == 404
