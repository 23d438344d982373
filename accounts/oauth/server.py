"""The OAuth 2.0 server: the authorization code grant with PKCE (S256), and refresh.

oauthlib's WebApplicationServer knows only ``response_type=code`` and the
``authorization_code`` and ``refresh_token`` grants: the implicit, password,
client-credentials and device grants are not merely switched off, they do
not exist here (``unsupported_response_type`` / ``unsupported_grant_type``).
"""

from __future__ import annotations

import re

from oauthlib.oauth2 import WebApplicationServer
from oauthlib.oauth2.rfc6749 import errors

PKCE_METHOD = "S256"
PKCE_REQUIRED = (
    "PKCE is required: send code_challenge (the base64url SHA-256 of your code_verifier) "
    "with code_challenge_method=S256."
)


# RFC 7636 4.2: BASE64URL(SHA256(verifier)) is 43 characters of the unreserved set.
CHALLENGE_FORMAT = re.compile(r"[A-Za-z0-9_-]{43}")


def require_s256(request) -> dict:
    """[!!] Only S256 challenges: "plain" (or no method, which means plain) is refused."""
    if request.code_challenge is None or request.code_challenge_method != PKCE_METHOD:
        raise errors.InvalidRequestError(description=PKCE_REQUIRED, request=request)
    if not CHALLENGE_FORMAT.fullmatch(request.code_challenge):
        raise errors.InvalidRequestError(
            description="code_challenge must be the base64url SHA-256 of your code_verifier, without padding "
            "(43 characters).",
            request=request,
        )
    return {}


class AuthorizationCodeServer(WebApplicationServer):
    def __init__(
        self, request_validator, *, token_generator=None, token_expires_in=None, refresh_token_generator=None, **_kwargs
    ):
        # The toolkit passes settings for grants this server does not have (device flow); they are dropped.
        super().__init__(
            request_validator,
            token_generator=token_generator,
            token_expires_in=token_expires_in,
            refresh_token_generator=refresh_token_generator,
        )
        self.auth_grant.custom_validators.post_auth.append(require_s256)
