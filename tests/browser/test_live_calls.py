"""Live calls in a real browser: the calls list and the dashboard's live panel follow calls as the Twilio
stand-in posts its signed callbacks to the live server, without a reload.

A caller rings the organization's number (a new row appears, ringing); an outbound call then goes from
dialing through ringing and in progress to completed while the page stays open.
"""

from __future__ import annotations

import pytest

from accounts.permissions import Role
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from telephony.models import Call, CallDirection

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

CALLER = "+14155550142"


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _status_badge(page, call_id):
    return page.locator(f'tr[data-call-id="{call_id}"] [data-call-status]')


def test_calls_appear_and_change_state_without_a_reload(asgi_live_server, browser, shot, twilio_standin, settings):
    from telephony.services.twilio_accounts import twilio_for
    from telephony.services.urls import public_url
    from telephony.tests.calls_support import line

    base = asgi_live_server
    settings.PUBLIC_BASE_URL = base  # the stand-in posts its callbacks to the live server, signed for this URL
    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    number = line(organization)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/harbour-dental/")
        page.locator("[data-live-calls] [data-calls-live-status][data-state='live']").wait_for()

        page.goto(f"{base}/o/harbour-dental/calls/")
        page.get_by_text("No calls yet: buy a number and call it, or place a call").wait_for()
        page.locator("[data-calls-live-status][data-state='live']").wait_for()
        shot(page, "calls-empty")

        # A caller rings: the voice webhook answers, and the row appears on the open page.
        answer = twilio_standin.inbound_call(number.number, CALLER)
        assert answer.status == 200 and "<Stream" in answer
        inbound = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
        _status_badge(page, inbound.id).filter(has_text="Ringing").wait_for(timeout=10000)
        assert page.locator(f'tr[data-call-id="{inbound.id}"]').get_by_text("+1 415 ••• 0142").is_visible()
        shot(page, "calls-inbound-ringing")
        twilio_standin.complete_call(answer.call_sid, duration=17, record=False)
        _status_badge(page, inbound.id).filter(has_text="Completed").wait_for(timeout=10000)

        # An outbound call: dialing -> ringing -> in progress -> completed, each posted by the stand-in.
        outbound = Call.objects.create(
            organization=organization, direction=CallDirection.OUTBOUND, agent=number.agent, phone_number=number,
            from_number=number.number, to_number="+14155550177", account_sid=number.account_sid,
        )  # fmt: skip
        access = twilio_for(organization)
        created = access.client.api.v2010.accounts(access.account_sid).calls.create(
            to="+14155550177", from_=number.number, url=public_url("twilio-hooks:voice", call=outbound.id),
            status_callback=public_url("twilio-hooks:status", call=outbound.id),
            status_callback_event=["initiated", "ringing", "answered", "completed"],
        )  # fmt: skip
        for status, label, name in (
            ("initiated", "Dialing", None),
            ("ringing", "Ringing", "calls-outbound-ringing"),
            ("in-progress", "In progress", "calls-outbound-in-progress"),
        ):
            callback = twilio_standin.advance(created.sid, status)
            assert callback.status == 204, (callback.status, callback.response_body)
            _status_badge(page, outbound.id).filter(has_text=label).wait_for(timeout=10000)
            if name:
                shot(page, name)
        twilio_standin.advance(created.sid, "completed", CallDuration="42")
        row = page.locator(f'tr[data-call-id="{outbound.id}"]')
        _status_badge(page, outbound.id).filter(has_text="Completed").wait_for(timeout=10000)
        assert row.locator("[data-call-duration]").inner_text() == "42 s"
        shot(page, "calls-outbound-completed")
        assert page.locator("tbody[data-calls-table] tr").count() == 2
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded
    finally:
        context.close()
