"""A passkey as the second factor, in a real browser with a virtual authenticator (Chromium DevTools)."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator

from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_add_a_passkey_then_sign_in_with_it(asgi_live_server, browser, shot):
    # WebAuthn refuses IP addresses as the relying party: browse by name.
    base = asgi_live_server.replace("127.0.0.1", "localhost")
    person = UserFactory(email="kim@passkey.test")
    organization = OrganizationFactory(name="Passkey Clinic", slug="passkey-clinic")
    MembershipFactory(organization=organization, user=person, role="owner")
    context = browser.new_context()
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {"options": {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                         "hasUserVerification": True, "isUserVerified": True}},
        )
        page.goto(f"{base}/auth/login/")
        page.get_by_label("Email").fill(person.email)
        page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/o/{organization.slug}/")

        page.goto(f"{base}/auth/2fa/webauthn/add/")
        if "/reauthenticate/" in page.url:
            page.get_by_label("Password").fill(DEFAULT_PASSWORD)
            page.get_by_role("button", name="Confirm").click()
        page.get_by_label("Name").fill("Laptop key")
        with page.expect_navigation():
            page.locator("#mfa_webauthn_add").click()
        shot(page, "passkey-added")
        assert Authenticator.objects.filter(user=person, type=Authenticator.Type.WEBAUTHN).count() == 1

        page.goto(f"{base}/auth/logout/")
        page.get_by_role("button", name="Sign Out").click()
        page.goto(f"{base}/auth/login/")
        page.get_by_label("Email").fill(person.email)
        page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/auth/2fa/authenticate/")
        shot(page, "passkey-second-factor")
        page.get_by_role("button", name="Use a security key").click()
        page.wait_for_url(f"{base}/o/{organization.slug}/")
        page.wait_for_load_state("networkidle")  # the sign-in's navigations are over before the next page

        # Confirm it is them with the key, rename it, then remove it: each is recorded.
        key = Authenticator.objects.get(user=person, type=Authenticator.Type.WEBAUTHN)
        edit = f"{base}/auth/2fa/webauthn/keys/{key.pk}/edit/"
        page.goto(f"{base}/auth/2fa/webauthn/reauthenticate/?next=/auth/2fa/webauthn/keys/{key.pk}/edit/")
        page.wait_for_load_state("networkidle")  # the page's script is ready to ask the key
        page.locator("#mfa_webauthn_reauthenticate").click()
        # The key's answer is asked in the page's script, then the form is posted: wait for where it leads.
        page.wait_for_url(edit, timeout=30000)
        page.get_by_label("Name").fill("Office laptop")
        with page.expect_navigation():
            page.locator("#mfa_webauthn_edit").click()
        page.goto(f"{base}/auth/2fa/webauthn/keys/{key.pk}/remove/")
        with page.expect_navigation():
            page.locator("form[method=post] button[type=submit]").last.click()
        shot(page, "passkey-removed")
        assert not Authenticator.objects.filter(user=person, type=Authenticator.Type.WEBAUTHN).exists()
    finally:
        context.close()
    from compliance.models import AuditEvent

    recorded = list(AuditEvent.objects.unscoped("test: inspects rows directly").filter(actor_id=person.id).order_by("occurred_at").values_list("action", flat=True))
    for action in ("user.mfa_enabled", "user.mfa_used", "user.reauthenticated", "user.mfa_key_renamed", "user.mfa_disabled"):
        assert action in recorded, (action, recorded)
