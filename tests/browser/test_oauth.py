"""OAuth 2.0 as people click through it, in a real browser.

An owner registers a confidential application in Settings, then, as a
person using that application, connects it on the consent screen and is
sent back to the application's own address (a small HTTP server on
loopback, standing in for the application). The application's server
exchanges the code with PKCE and calls the API; the person disconnects it
under "Connected applications" and its token stops working.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from accounts.oauth.models import Application

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    # Static files reach the live server through WhiteNoise, whose file iterators are synchronous.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]


class CallbackServer:
    """The application's redirect URI: records each query string it receives and answers "Connected"."""

    def __init__(self):
        self.queries: list[dict[str, list[str]]] = []
        received = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                parts = urlsplit(self.path)
                if parts.path != "/callback":
                    self.send_error(404)
                    return
                received.append(parse_qs(parts.query))
                body = b"<!doctype html><title>Connected</title><p>Connected</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, name="oauth-callback", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_owner_registers_an_app_connects_it_and_disconnects_it(
    asgi_live_server, browser, shot, organization, owner, password
):
    base = asgi_live_server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    api = requests.Session()
    api.trust_env = False  # loopback only: no proxy from the environment
    try:
        with CallbackServer() as callback:
            page = context.new_page()
            sign_in(page, base, owner.email, password)
            page.wait_for_url(f"{base}/o/{organization.slug}/")

            # Settings -> OAuth applications: nothing registered yet.
            page.get_by_role("navigation", name=organization.name).get_by_role("link", name="Settings").click()
            page.wait_for_url(f"{base}/o/{organization.slug}/settings/")
            page.get_by_role("button", name="Manage OAuth applications").click()
            page.wait_for_url(f"{base}/o/{organization.slug}/settings/oauth-apps/")
            empty = page.locator("[data-empty-state]")
            empty.wait_for()
            assert "No OAuth applications yet." in empty.inner_text()
            shot(page, "oauth-apps-empty")

            # Register a confidential application whose redirect URI is the callback server.
            page.get_by_role("button", name="Register an application").click()
            page.wait_for_url(f"{base}/o/{organization.slug}/settings/oauth-apps/new/")
            page.get_by_label("Name").fill("Acme CRM")
            page.get_by_label("Confidential", exact=False).check()
            page.get_by_label("Redirect URIs").fill(callback.url)
            page.get_by_role("button", name="Register application").click()
            page.get_by_role("heading", name="Your client secret").wait_for()
            application = Application.objects.unscoped("test: inspects rows directly").get(organization=organization, name="Acme CRM")
            detail_url = f"{base}/o/{organization.slug}/settings/oauth-apps/{application.id}/"
            page.wait_for_url(detail_url)
            assert page.get_by_text("“Acme CRM” is registered.").is_visible()
            client_secret = page.get_by_role("textbox", name="Client secret").input_value()
            client_id = page.locator("dt:text-is('Client ID') + dd code").inner_text().strip()
            assert client_secret.startswith("jc_ocs_") and client_id == application.client_id
            assert callback.url in page.locator("dt:text-is('Redirect URIs (compared exactly)') + dd").inner_text()
            shot(page, "oauth-app-registered-secret")

            # The secret is shown once: a reload no longer has it.
            page.reload()
            page.get_by_role("heading", level=1, name="Acme CRM").wait_for()
            assert page.get_by_role("heading", name="Your client secret").count() == 0
            assert page.locator("#client-secret-value").count() == 0
            assert client_secret not in page.content()
            assert "Set; shown only once, when it was created or last rotated." in page.content()

            page.get_by_role("link", name="Back to applications").click()
            page.wait_for_url(f"{base}/o/{organization.slug}/settings/oauth-apps/")
            row = page.locator(f"#oauth-app-{application.id}")
            row.wait_for()
            assert "Acme CRM" in row.inner_text() and client_id in row.inner_text()
            assert page.locator("[data-empty-state]").count() == 0
            shot(page, "oauth-apps-list")

            # The application sends the person to the consent screen (PKCE S256).
            verifier, challenge = pkce_pair()
            state = secrets.token_urlsafe(16)
            params = {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": callback.url,
                "scope": "organization:read members:read",
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
            page.goto(f"{base}/oauth/authorize?{urlencode(params)}")
            page.get_by_role("heading", level=1, name="Connect Acme CRM?").wait_for()
            organizations = page.get_by_role("group", name="Which organization may it use?")
            acme = organizations.get_by_label("Acme Dental")
            assert acme.is_checked()
            permissions = page.get_by_role("group", name="What may it do?")
            read_org = permissions.get_by_label("Read the organization's details")
            read_team = permissions.get_by_label("List the team and their roles")
            assert read_org.is_checked() and read_team.is_checked()
            assert f"127.0.0.1:{callback.port}" in page.get_by_text("you are then sent back to").inner_text()
            shot(page, "oauth-consent")

            page.get_by_role("button", name="Allow").click()
            page.wait_for_url(f"{callback.url}?**")
            assert page.get_by_text("Connected").is_visible()
            assert len(callback.queries) == 1
            answer = callback.queries[0]
            assert answer["state"] == [state]
            code = answer["code"][0]

            # The application's server: code -> tokens (HTTP Basic + code_verifier), then the API.
            response = api.post(
                f"{base}/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": callback.url,
                    "code_verifier": verifier,
                },
                auth=(client_id, client_secret),
                timeout=15,
            )
            assert response.status_code == 200, response.text
            tokens = response.json()
            assert tokens["token_type"] == "Bearer"
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            me = api.get(f"{base}/api/v1/me", headers=bearer, timeout=15)
            assert me.status_code == 200, me.text
            assert me.json()["organization"]["slug"] == organization.slug
            assert me.json()["user"]["email"] == owner.email
            assert sorted(me.json()["scopes"]) == ["members:read", "organization:read"]

            # Account -> Connected applications: the person sees it and disconnects it.
            page.goto(f"{base}/o/{organization.slug}/")
            # The account menu stays open while the dashboard's live panels load and settle.
            page.locator("details.user-menu > summary").click()
            page.get_by_role("link", name="Connected applications").click()
            page.wait_for_url(f"{base}/account/connected-apps/")
            connection = page.locator(f"#connection-{application.id}")
            connection.wait_for()
            text = connection.inner_text()
            assert "Acme CRM" in text and "Acme Dental" in text
            assert "Read the organization's details" in text and "List the team and their roles" in text
            shot(page, "oauth-connected-apps")

            page.once("dialog", lambda dialog: dialog.accept())
            connection.get_by_role("button", name="Disconnect").click()
            page.get_by_text("“Acme CRM” is disconnected.").wait_for()
            assert page.locator(f"#connection-{application.id}").count() == 0
            assert page.get_by_text("No connected applications.").is_visible()
            shot(page, "oauth-connected-apps-after-disconnect")

            me = api.get(f"{base}/api/v1/me", headers=bearer, timeout=15)
            assert me.status_code == 401, me.text
    finally:
        context.close()
        api.close()


def test_owner_edits_an_app_rotates_its_secret_and_disconnects_a_partners_app(
    asgi_live_server, browser, shot, organization, owner, password, other_organization
):
    from accounts.oauth.tests.factories import connect, register

    base = asgi_live_server
    crm = register(organization, name="Acme CRM", redirect_uris="https://crm.example/callback")
    partner = register(other_organization, name="Globex Dialer")  # another organization's application
    partner_token = connect(partner.application, organization=organization, user=owner, scope="organization:read")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    api = requests.Session()
    api.trust_env = False  # loopback only: no proxy from the environment
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, password)
        page.wait_for_url(f"{base}/o/{organization.slug}/")
        detail_url = f"{base}/o/{organization.slug}/settings/oauth-apps/{crm.application.id}/"
        page.goto(detail_url)

        # Edit: a plain-http address is refused on the page, with nothing saved; then a valid change is saved.
        edit = page.locator("form", has=page.get_by_role("button", name="Save changes"))
        edit.get_by_label("Name").fill("Acme CRM v2")
        edit.get_by_label("Redirect URIs").fill("http://crm.example/v2/callback")
        edit.get_by_role("button", name="Save changes").click()
        page.locator("[data-error-summary]").wait_for()
        assert "use https" in page.locator("[data-error-summary]").inner_text()
        crm.application.refresh_from_db()
        assert crm.application.name == "Acme CRM"
        shot(page, "oauth-app-edit-error")
        edit.get_by_label("Redirect URIs").fill("https://crm.example/v2/callback")
        edit.get_by_role("button", name="Save changes").click()
        page.get_by_text("“Acme CRM v2” is saved.").wait_for()
        page.get_by_role("heading", level=1, name="Acme CRM v2").wait_for()
        assert "https://crm.example/v2/callback" in page.locator(
            "dt:text-is('Redirect URIs (compared exactly)') + dd"
        ).inner_text()

        # Rotate the secret (after confirming): the new one is shown once, the old one is refused.
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Rotate client secret").click()
        page.get_by_role("heading", name="Your client secret").wait_for()
        assert page.get_by_text("has a new client secret. The previous one no longer works.").is_visible()
        new_secret = page.get_by_role("textbox", name="Client secret").input_value()
        assert new_secret.startswith("jc_ocs_") and new_secret != crm.secret
        shot(page, "oauth-app-secret-rotated")
        page.reload()
        page.get_by_role("heading", level=1, name="Acme CRM v2").wait_for()
        assert new_secret not in page.content()
        refused = api.post(
            f"{base}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "jc_ort_x"},
            auth=(crm.client_id, crm.secret), timeout=15,
        )
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        accepted = api.post(
            f"{base}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "jc_ort_x"},
            auth=(crm.client_id, new_secret), timeout=15,
        )
        assert accepted.status_code == 400 and accepted.json()["error"] == "invalid_grant"  # client accepted

        # Settings -> Connected applications: the partner's application, connected here; disconnect it.
        bearer = {"Authorization": f"Bearer {partner_token}"}
        assert api.get(f"{base}/api/v1/me", headers=bearer, timeout=15).status_code == 200
        page.goto(f"{base}/o/{organization.slug}/settings/")
        shot(page, "organization-settings-oauth")
        page.get_by_role("button", name="Connected applications").click()
        page.wait_for_url(f"{base}/o/{organization.slug}/settings/connected-apps/")
        row = page.locator(f"#org-connection-{partner.application.id}")
        row.wait_for()
        text = row.inner_text()
        assert "Globex Dialer" in text and "registered by Globex Sales" in text and owner.email in text
        assert "Read the organization's details" in text
        shot(page, "oauth-organization-connected-apps")
        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name="Disconnect").click()
        page.get_by_text("“Globex Dialer” is disconnected from Acme Dental.").wait_for()
        empty = page.locator("[data-empty-state]")
        empty.wait_for()
        assert "No application is connected to Acme Dental." in empty.inner_text()
        shot(page, "oauth-organization-connected-apps-empty")
        me = api.get(f"{base}/api/v1/me", headers=bearer, timeout=15)
        assert me.status_code == 401, me.text
    finally:
        context.close()
        api.close()
