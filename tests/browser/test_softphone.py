"""The softphone in real Chromium: the vendored Twilio Voice SDK loads, the page fetches its access token,
says plainly when calls are simulated, and explains a refusal.

Served by the real ASGI application; the token endpoint reaches the Twilio stand-in through the SDK.
Twilio's voice servers are never reachable from tests, so no call is placed from the browser here
(the hook that such a call reaches is tested in telephony/tests/test_browser_calling_hook.py).
"""

from __future__ import annotations

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from telephony.services.browser import browser_identity
from telephony.tests.factories import PhoneNumberFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def clinic():
    organization = OrganizationFactory(name="Harbor Clinic", slug="harbor-clinic")
    user = UserFactory(email="nurse@harbor.test")
    MembershipFactory(organization=organization, user=user, role="member")
    PhoneNumberFactory(organization=organization, number="+14155550142", friendly_name="Front desk")
    return organization, user


def sign_in(page, base, email):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/o/**")


def open_softphone(browser, base, email):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, base, email)
    page.get_by_role("link", name="Phone").click()
    page.wait_for_url(f"{base}/o/harbor-clinic/phone/")
    return context, page, errors


def test_simulated_mode_fetches_the_token_and_offers_the_platform_instead(
    asgi_live_server, browser, shot, settings, twilio_standin, clinic
):
    organization, user = clinic
    settings.SIMULATED_PROVIDERS = True
    context, page, errors = open_softphone(browser, asgi_live_server, user.email)
    try:
        page.locator("[data-softphone][data-state='simulated']").wait_for(timeout=15000)
        assert page.evaluate("typeof window.Twilio.Device") == "function"
        softphone = page.locator("[data-softphone]")
        assert softphone.get_attribute("data-sdk") == "loaded"
        assert softphone.get_attribute("data-token") == "issued"
        assert softphone.get_attribute("data-identity") == browser_identity(user=user, organization=organization)
        notice = page.locator("[data-softphone-simulated]")
        assert notice.is_visible()
        assert "Calls are simulated here, so this browser phone cannot connect." in notice.inner_text()
        assert "Simulated mode" in page.locator("[data-status]").inner_text()
        assert page.get_by_role("button", name="Call", exact=True).is_disabled()
        assert page.get_by_label("Call from").first.input_value() == "+14155550142"
        assert len([r for r in twilio_standin.requests if r.path.endswith("/Keys.json")]) == 1
        shot(page, "softphone-simulated")
        assert not errors, errors
    finally:
        context.close()


def test_the_page_fetches_its_token_and_starts_the_device(asgi_live_server, browser, shot, settings, twilio_standin, clinic):
    organization, user = clinic
    settings.SIMULATED_PROVIDERS = False
    context, page, errors = open_softphone(browser, asgi_live_server, user.email)
    try:
        softphone = page.locator("[data-softphone]")
        page.locator("[data-softphone][data-token='issued']").wait_for(timeout=15000)
        assert page.evaluate("typeof window.Twilio.Device") == "function"
        assert softphone.get_attribute("data-identity") == browser_identity(user=user, organization=organization)
        assert not page.locator("[data-softphone-simulated]").count()
        # The dial pad writes into the number field while no call is up.
        for key in "+14155550100":
            if key != "+":
                page.locator(f"[data-digit='{key}']").click()
        assert page.get_by_label("Number to call").input_value() == "14155550100"
        page.get_by_label("Number to call").fill("not a number")
        # Read in the same turn as the submit: with no Twilio to reach here, the device's failed attempts to
        # connect put their own message on the same line whenever they fail, which may be just after it.
        shown = page.locator("[data-dial-form]").evaluate(
            "form => { form.requestSubmit(); "
            "return document.querySelector('[data-softphone] [data-error]').textContent; }"
        )
        assert shown.startswith("Enter the number to call in international format"), shown
        shot(page, "softphone-started")
        assert not errors, errors
    finally:
        context.close()


def test_a_refused_token_is_explained(asgi_live_server, browser, shot, settings, clinic):
    _organization, user = clinic
    settings.SIMULATED_PROVIDERS = False
    settings.PROVIDER_BASE_URLS = {"twilio": "http://127.0.0.1:9"}  # Twilio out of reach
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC" + "2" * 32, "platform-token"
    settings.PROVIDER_MAX_RETRIES = 0
    context, page, errors = open_softphone(browser, asgi_live_server, user.email)
    try:
        page.locator("[data-softphone][data-state='error']").wait_for(timeout=15000)
        alert = page.locator("[data-error]")
        assert alert.is_visible() and "Twilio could not set up browser calling" in alert.inner_text()
        assert page.locator("[data-status]").inner_text() == "Not connected."
        shot(page, "softphone-token-refused")
        assert not errors, errors
    finally:
        context.close()
