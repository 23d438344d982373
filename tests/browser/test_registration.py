"""A new business owner's whole identity journey, in a real browser:
register (Turnstile) -> verify email -> enable 2FA -> sign out -> sign in with
TOTP -> sign in with a recovery code -> end another session.
"""

from __future__ import annotations

import re
import time

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail

from accounts.models import Membership, Organization

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "dr.lee@harborview.test"
PASSWORD = "molar bridge harbor 42"


def totp(secret: str, steps_from_now: int = 0) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + steps_from_now))


def sign_out(page, base):
    page.goto(f"{base}/auth/logout/")
    page.get_by_role("button", name="Sign Out").click()


def sign_in(page, base, second_factor: str):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/auth/2fa/authenticate/")
    page.get_by_label("Code").fill(second_factor)
    page.get_by_role("button", name="Sign In").click()


def test_register_verify_enable_two_factor_and_manage_sessions(asgi_live_server, browser, shot, turnstile):
    base = asgi_live_server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    phone = browser.new_context(viewport={"width": 390, "height": 844}, user_agent="Phone test browser")
    try:
        page = context.new_page()
        page.goto(f"{base}/auth/signup/")
        page.locator(".cf-turnstile[data-stand-in-state='verified']").wait_for(timeout=10000)
        page.get_by_label("Organization name").fill("Harbor View Dental")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Password (again)").fill(PASSWORD)
        shot(page, "signup-filled")
        page.get_by_role("button", name="Create account").click()
        page.get_by_text("verification", exact=False).first.wait_for()
        shot(page, "signup-verification-sent")
        assert turnstile.siteverify_requests, "the token was not verified server-side"

        message = next(m for m in mail.outbox if "confirm-email" in m.body)
        page.goto(re.search(r"https?://\S+/auth/confirm-email/\S+/", message.body).group(0))
        page.get_by_role("button", name="Confirm").click()

        page.goto(f"{base}/auth/login/")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        organization = Organization.objects.get(name="Harbor View Dental")
        page.wait_for_url(f"{base}/o/{organization.slug}/")
        assert Membership.objects.for_org(organization).get().role == "owner"
        shot(page, "registered-owner-dashboard")

        # Enable two-factor: the password again, then a code from the app.
        page.goto(f"{base}/auth/2fa/totp/activate/")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Confirm").click()
        secret = page.locator("#authenticator_secret").input_value()
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        shot(page, "totp-activate")
        page.get_by_label("Authenticator code").fill(totp(secret))
        page.get_by_role("button", name="Activate").click()
        page.wait_for_url("**/2fa/recovery-codes/**")  # shown once, right after activation
        codes = page.locator("#recovery_codes").input_value().split()
        assert len(codes) == 10 and all(len(c) == 34 for c in codes)
        shot(page, "recovery-codes")

        sign_out(page, base)
        sign_in(page, base, totp(secret))
        page.wait_for_url(f"{base}/o/{organization.slug}/")
        page.goto(f"{base}/o/{organization.slug}/")
        assert page.get_by_role("heading", level=1).inner_text().strip() == "Harbor View Dental"

        sign_out(page, base)
        sign_in(page, base, codes[0])
        page.wait_for_url(f"{base}/o/{organization.slug}/")
        page.goto(f"{base}/o/{organization.slug}/")
        assert page.get_by_role("heading", level=1).inner_text().strip() == "Harbor View Dental"

        # A second device signs in with a recovery code: every other session ends (the code may have
        # been taken with the device), so the first one is sent to sign in again.
        other = phone.new_page()
        sign_in(other, base, codes[1])
        other.wait_for_url(f"{base}/o/{organization.slug}/")
        page.goto(f"{base}/o/{organization.slug}/")
        assert "/auth/login/" in page.url
        shot(page, "signed-out-after-a-recovery-code")
        sign_in(page, base, totp(secret, 1))  # the next step's code: not used yet, accepted
        page.wait_for_url(f"{base}/o/{organization.slug}/")

        # The first device then ends the second one from "Signed-in devices".
        other.goto(f"{base}/o/{organization.slug}/team/")  # a page with no live connection left open
        assert other.get_by_role("heading", level=1).inner_text().strip() == "Team"
        page.goto(f"{base}/auth/sessions/")
        assert "Phone test browser" in page.content()
        shot(page, "sessions")
        with page.expect_navigation():  # the request that ends the other sessions has completed
            page.get_by_role("button", name="Sign Out Other Sessions").click()
        other.goto(f"{base}/o/{organization.slug}/team/")
        assert "/auth/login/" in other.url
        page.goto(f"{base}/o/{organization.slug}/")
        assert page.get_by_role("heading", level=1).inner_text().strip() == "Harbor View Dental"
    finally:
        context.close()
        phone.close()
