"""The OAuth scopes are the API's scopes: one registry, accounts/scopes.py.

django-oauth-toolkit asks this backend which scopes exist and what they
mean; the consent screen shows the registry's labels.
"""

from __future__ import annotations

from oauth2_provider.scopes import BaseScopes

from accounts.scopes import SCOPES

# Asked for when an authorization request names no scope: the least there is.
DEFAULT_SCOPES = ["organization:read"]


class RegistryScopes(BaseScopes):
    def get_all_scopes(self):
        return {scope: label for scope, (_action, label) in SCOPES.items()}

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        return list(SCOPES)

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return list(DEFAULT_SCOPES)
