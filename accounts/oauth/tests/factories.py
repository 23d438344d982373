"""Helpers for OAuth tests: register an application, run the authorization code dance with PKCE."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from django.urls import reverse

from accounts.oauth.services import oauth_application_create
from accounts.oauth.tokens import generate_access_token, generate_refresh_token

REDIRECT_URI = "https://client.example/callback"


@dataclass
class Client:
    application: object
    secret: str | None

    @property
    def client_id(self) -> str:
        return self.application.client_id

    def basic_auth(self) -> dict:
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(raw).decode()}

    def auth(self) -> tuple[dict, dict]:
        """(extra body fields, extra headers) that authenticate this client at the token endpoint."""
        if self.secret:
            return {}, self.basic_auth()
        return {"client_id": self.client_id}, {}


def register(organization, *, client_type="confidential", redirect_uris=REDIRECT_URI, name="Acme CRM") -> Client:
    application, secret = oauth_application_create(
        organization=organization, actor=None, name=name, client_type=client_type, redirect_uris=redirect_uris
    )
    return Client(application, secret)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(client: Client, *, challenge: str | None, scope="organization:read members:read", **extra) -> dict:
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "state-123",
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def authorize_url(params: dict) -> str:
    return f"{reverse('oauth:authorize')}?{urlencode(params)}"


def consent_post(http, params: dict, *, organization, scopes, allow="yes"):
    """Submit the consent form as the signed-in browser would (hidden fields carry the request)."""
    data = {
        "client_id": params["client_id"],
        "redirect_uri": params.get("redirect_uri", ""),
        "response_type": params["response_type"],
        "scope": params.get("scope", ""),
        "state": params.get("state", ""),
        "code_challenge": params.get("code_challenge", ""),
        "code_challenge_method": params.get("code_challenge_method", ""),
        "organization": organization.slug if organization is not None else "",
        "scopes": list(scopes),
        "allow": allow,
    }
    return http.post(reverse("oauth:authorize"), data)


def query(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def obtain_code(http, client: Client, *, organization, scopes=("organization:read", "members:read"), challenge=None):
    """Consent and return (code, verifier)."""
    verifier, challenge_ = pkce_pair()
    challenge = challenge or challenge_
    params = authorize_params(client, challenge=challenge, scope=" ".join(scopes))
    page = http.get(authorize_url(params))
    assert page.status_code == 200, page.content[:500]
    response = consent_post(http, params, organization=organization, scopes=scopes)
    assert response.status_code == 302, response.content[:1000]
    answer = query(response["Location"])
    assert "code" in answer, answer
    return answer["code"], verifier


def exchange(http, client: Client, code: str, verifier: str | None, *, redirect_uri=REDIRECT_URI):
    body, headers = client.auth()
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, **body}
    if verifier is not None:
        data["code_verifier"] = verifier
    return http.post(reverse("oauth:token"), data, **headers)


def refresh(http, client: Client, refresh_token: str, **extra):
    body, headers = client.auth()
    return http.post(
        reverse("oauth:token"),
        {"grant_type": "refresh_token", "refresh_token": refresh_token, **body, **extra},
        **headers,
    )


def tokens_for(http, client: Client, *, organization, scopes=("organization:read", "members:read")) -> dict:
    code, verifier = obtain_code(http, client, organization=organization, scopes=scopes)
    response = exchange(http, client, code, verifier)
    assert response.status_code == 200, response.content
    return response.json()


def connect(application, *, organization, user, scope="organization:read") -> str:
    """A live token pair of ``application`` acting for ``user`` in ``organization``, written directly
    (for tests that need a connection without a browser); returns the access token."""
    import uuid
    from datetime import timedelta

    from django.utils import timezone
    from oauth2_provider.models import set_token_value

    from accounts.oauth.models import AccessToken, RefreshToken

    now = timezone.now()
    raw = generate_access_token()
    access_token = AccessToken(
        organization=organization, user=user, application=application, scope=scope, expires=now + timedelta(hours=1)
    )
    set_token_value(access_token, raw)
    access_token.save()
    refresh_token = RefreshToken(
        organization=organization, user=user, application=application, access_token=access_token,
        token_family=uuid.uuid4(), expires_at=now + timedelta(days=30),
    )
    set_token_value(refresh_token, generate_refresh_token())
    refresh_token.save()
    return raw
