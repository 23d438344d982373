"""API key authentication.

Contract:
- [!!] Keys are read from ``Authorization: Bearer jc_live_…`` only, never
  from the query string or the body. A bearer token without the
  ``jc_live_`` prefix is left to the next class (JWTs).
- The key is found by its prefix and compared by SHA-256 in constant time.
- Unknown, revoked and expired keys are refused with 401 and a
  ``api_key.rejected`` security event; a key of an organization that is no
  longer active is refused by OrganizationAPIView.
- The key acts as itself (``request.user`` is None; ``request.auth`` is its
  Principal), within the rights of its creator's *current* role in the
  organization, or a service key's own role: its effective scopes are its
  scopes intersected with that role's, on every request. A key whose
  creator is no longer a member is refused (401).
"""

from __future__ import annotations

import hmac

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from accounts.api.credentials import bearer_token
from accounts.api_keys.models import API_KEY_PREFIX, ApiKey
from accounts.api_keys.selectors import api_key_effective_role, api_key_for_authentication
from accounts.api_keys.services import api_key_parse, api_key_record_use
from accounts.hashing import secret_digest
from accounts.principals import Principal
from accounts.security_events import client_ip, emit

INVALID_KEY = "Invalid API key."


class ApiKeyAuthentication(BaseAuthentication):

    def authenticate_header(self, request):
        return 'Bearer realm="api"'

    def authenticate(self, request):
        raw_key = bearer_token(request)
        if raw_key is None or not raw_key.startswith(API_KEY_PREFIX):
            return None
        prefix = api_key_parse(raw_key)
        api_key = api_key_for_authentication(prefix=prefix) if prefix else None
        if api_key is None or not hmac.compare_digest(api_key.key_hash, secret_digest(raw_key)):
            self._reject(request, "unknown", prefix=prefix)
            raise AuthenticationFailed(INVALID_KEY, code="api_key_invalid")
        if api_key.revoked_at is not None:
            self._reject(request, "revoked", api_key=api_key)
            raise AuthenticationFailed("This API key was revoked. Create a new key.", code="api_key_revoked")
        if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
            self._reject(request, "expired", api_key=api_key)
            raise AuthenticationFailed(
                f"This API key expired on {api_key.expires_at:%Y-%m-%d %H:%M} UTC. Create a new key.",
                code="api_key_expired",
            )
        role = api_key_effective_role(api_key)
        if role is None:
            self._reject(request, "creator_not_a_member", api_key=api_key)
            raise AuthenticationFailed(
                "This API key's creator is no longer a member of the organization, so the key no longer works. "
                "Ask an owner or admin to create a new key.",
                code="api_key_orphaned",
            )
        api_key_record_use(api_key=api_key, ip=client_ip(getattr(request, "_request", request)))
        return None, Principal.for_api_key(api_key, role=role)

    @staticmethod
    def _reject(request, reason: str, *, api_key: ApiKey | None = None, prefix: str | None = None) -> None:
        emit(
            "api_key.rejected",
            request=getattr(request, "_request", request),
            organization=api_key.organization if api_key else None,
            reason=reason,
            api_key_id=str(api_key.id) if api_key else None,
            prefix=api_key.prefix if api_key else prefix,
        )
