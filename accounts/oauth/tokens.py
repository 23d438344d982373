"""The secrets the authorization server hands out, each with a recognizable prefix.

``jc_oat_`` access tokens, ``jc_ort_`` refresh tokens and ``jc_ocs_`` client
secrets: a leaked one is easy to spot (secret scanners, logs), and the API
tells an OAuth token from an API key or a JWT by its prefix alone.
Each carries 256 bits from ``secrets``. [!!] None is stored: tokens are kept
as their SHA-256, client secrets as a password hash (oauth/models.py).
"""

from __future__ import annotations

import secrets

from oauth2_provider.generators import BaseHashGenerator

from accounts.hashing import secret_digest

ACCESS_TOKEN_PREFIX = "jc_oat_"
REFRESH_TOKEN_PREFIX = "jc_ort_"
CLIENT_SECRET_PREFIX = "jc_ocs_"


def generate_access_token(request=None) -> str:
    return f"{ACCESS_TOKEN_PREFIX}{secrets.token_urlsafe(32)}"


def generate_refresh_token(request=None) -> str:
    return f"{REFRESH_TOKEN_PREFIX}{secrets.token_urlsafe(32)}"


class ClientSecretGenerator(BaseHashGenerator):
    def hash(self) -> str:
        return f"{CLIENT_SECRET_PREFIX}{secrets.token_urlsafe(32)}"


def digest(value: str) -> str:
    """What the database holds instead of a token or code (accounts.hashing)."""
    return secret_digest(value)


def generate_client_secret_value() -> str:
    return ClientSecretGenerator().hash()
