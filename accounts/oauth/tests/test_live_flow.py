"""The whole dance over real HTTP, against the real ASGI application.

A third-party client (``requests``) walks it as an integrator's user and
server would: the person signs in through the login form, the consent form
is submitted as a browser submits it, then the server exchanges the code,
calls the API, refreshes and revokes.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests

from accounts.permissions import Role
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from accounts.oauth.tests.factories import REDIRECT_URI, pkce_pair, register

pytestmark = pytest.mark.django_db(transaction=True)


class Browser(requests.Session):
    """Like a browser, treats http://127.0.0.1 as a secure context: its Secure (``__Host-``) cookies go back to it."""

    def request(self, *args, **kwargs):
        response = super().request(*args, **kwargs)
        for cookie in self.cookies:
            cookie.secure = False  # requests (http.cookiejar) sends Secure cookies over https only
        return response


class FormParser(HTMLParser):
    """The page's forms and their inputs, to submit one as a browser would."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attributes.get("action"), "inputs": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(attributes)

    def form(self, action: str) -> list[tuple[str, str]]:
        """What submitting the form with this action sends: hidden and text values, checked boxes and radios."""
        for form in self.forms:
            if form["action"] == action:
                fields = []
                for field in form["inputs"]:
                    kind = field.get("type", "text")
                    if "name" not in field or "disabled" in field:
                        continue
                    if kind in ("checkbox", "radio") and "checked" not in field:
                        continue
                    fields.append((field["name"], field.get("value", "")))
                return fields
        raise AssertionError(f"no form posting to {action}")


def parse(response) -> FormParser:
    parser = FormParser()
    parser.feed(response.text)
    return parser


def test_full_authorization_code_dance_over_http(asgi_live_server):
    base = asgi_live_server
    organization = OrganizationFactory(name="Acme Dental", slug="acme-dental")
    person = UserFactory(email="owner@acme.test")
    MembershipFactory(organization=organization, user=person, role=Role.OWNER)
    crm = register(organization, name="Acme CRM")
    verifier, challenge = pkce_pair()

    browser = Browser()

    # 1. The application sends the person to /oauth/authorize; not signed in, they land on the login form.
    params = {
        "response_type": "code",
        "client_id": crm.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "organization:read members:read",
        "state": "af0ifjsldkj",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    response = browser.get(f"{base}/oauth/authorize?{urlencode(params)}", allow_redirects=False, timeout=30)
    assert response.status_code == 302
    login_url = urljoin(base, response.headers["Location"])
    assert urlsplit(login_url).path == "/auth/login/"

    # 2. They sign in with the login form (its CSRF token and its "next" included).
    login_page = browser.get(login_url, timeout=30)
    assert login_page.status_code == 200
    fields = dict(parse(login_page).form("/auth/login/"))
    assert fields.get("csrfmiddlewaretoken") and fields.get("next", "").startswith("/oauth/authorize")
    fields.update(login=person.email, password=DEFAULT_PASSWORD)
    response = browser.post(f"{base}/auth/login/", data=fields, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text[:500]
    assert urlsplit(response.headers["Location"]).path == "/oauth/authorize"

    # 3. The consent screen; they allow, with the organization and scopes preselected for them.
    consent = browser.get(urljoin(base, response.headers["Location"]), allow_redirects=False, timeout=30)
    assert consent.status_code == 200
    assert "Connect Acme CRM?" in consent.text and "List the team and their roles" in consent.text
    answer = parse(consent).form("/oauth/authorize")
    assert ("organization", "acme-dental") in answer
    assert {value for name, value in answer if name == "scopes"} == {"organization:read", "members:read"}
    response = browser.post(
        f"{base}/oauth/authorize", data=[*answer, ("allow", "yes")], allow_redirects=False, timeout=30
    )
    assert response.status_code == 302, response.text[:500]
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    callback = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert callback["state"] == "af0ifjsldkj"
    code = callback["code"]

    # 4. The application's server exchanges the code (client secret by HTTP Basic, and the PKCE verifier).
    server = requests.Session()
    exchange_form = {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
    }
    token_url = f"{base}/oauth/token"
    response = server.post(
        token_url,
        data=exchange_form,
        auth=(crm.client_id, crm.secret),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600

    # 5. Calling the API as the person, in the organization they chose, with the scopes they gave.
    me = server.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=30)
    assert me.status_code == 200, me.text
    assert me.json()["organization"]["slug"] == "acme-dental"
    assert me.json()["user"]["email"] == "owner@acme.test"
    assert me.json()["scopes"] == ["members:read", "organization:read"]
    keys = server.get(
        f"{base}/api/v1/api-keys", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=30
    )
    assert keys.status_code == 403 and "api_keys:read" in keys.json()["error"]["message"]

    # 6. Refresh: a new pair; the old refresh token is spent.
    response = server.post(
        token_url,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(crm.client_id, crm.secret),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    renewed = response.json()
    assert renewed["refresh_token"] != tokens["refresh_token"]
    me = server.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {renewed['access_token']}"}, timeout=30)
    assert me.status_code == 200

    # 7. Revoke (RFC 7009): the token stops working at once.
    response = server.post(
        f"{base}/oauth/revoke_token",
        data={"token": renewed["access_token"], "token_type_hint": "access_token"},
        auth=(crm.client_id, crm.secret),
        timeout=30,
    )
    assert response.status_code == 200
    me = server.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {renewed['access_token']}"}, timeout=30)
    assert me.status_code == 401
    assert me.json()["error"]["code"] == "oauth_token_invalid"
    response = server.post(
        token_url,
        data={"grant_type": "refresh_token", "refresh_token": renewed["refresh_token"]},
        auth=(crm.client_id, crm.secret),
        timeout=30,
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"

    # 8. The code was single-use all along.
    again = server.post(
        token_url,
        data=exchange_form,
        auth=(crm.client_id, crm.secret),
        timeout=30,
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
