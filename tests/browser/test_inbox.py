"""Messages in a real browser: texts reach the open inbox and thread live, as the Twilio stand-in posts
Twilio's signed webhook to the live server; the composer counts segments as the person types (with
exactly the rules of messaging/segments.py); a text sent appears in the thread and its status follows.
"""

from __future__ import annotations

import re

import pytest

from accounts.permissions import Role
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from messaging.models import Conversation, Direction, Message
from messaging.segments import GSM7_BASIC, GSM7_EXTENDED, count_segments

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

SENDER = "+12129870188"

# Texts where a counter is easily wrong: the 160/153 and 70/67 edges, extension characters at a segment's
# end (never split), surrogate pairs at one (never split), characters that look GSM and are not.
TRICKY = [
    "",
    "a" * 160,
    "a" * 161,
    "a" * 306,
    "a" * 307,
    "€" * 80,
    "€" * 81,
    "a" * 152 + "€",
    "a" * 159 + "[",
    "a" * 153 + "{" + "a" * 10,
    "^{}\\[~]|€\f",
    "Line one\nLine two\r\nand a tab\tafter",
    "ç" * 10,  # a lower-case c cedilla is not GSM-7 (only the capital is)
    "Ç" * 10,
    "àèéìòù ÄÖÑÜäöñü ΔΦΓΛΩΠΨΣΘΞ ¡¿§¤£¥",
    "See you soon 😊",
    "😀" * 35,
    "😀" * 36,
    "a" * 66 + "😀",
    "a" * 69 + "😀",
    "a" * 70,
    "é" * 70 + "ç",
    "👍🏽 thumbs with a skin tone, 👨‍👩‍👧 a family",
    "\u200b zero width space",
    "curly “quotes” and ‘apostrophes’ – en dash",
    "\x1b escape",
    "x" * 1600,
    "".join(sorted(GSM7_BASIC | GSM7_EXTENDED)),
]


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def texting_line(organization):
    from messaging.tests.support import sms_line

    return sms_line(organization, "+14155550123")


def counter(page) -> dict:
    box = page.locator("[data-segment-counter]")
    return {
        "encoding": box.get_attribute("data-encoding"),
        "segments": int(box.get_attribute("data-segments")),
        "characters": int(box.get_attribute("data-characters")),
    }


def test_texts_arrive_live_and_the_composer_counts_as_the_server(asgi_live_server, browser, shot, twilio_standin,
                                                                 settings):  # fmt: skip
    base = asgi_live_server
    settings.PUBLIC_BASE_URL = base  # the stand-in posts Twilio's signed webhooks to the live server
    twilio_standin.message_step_delay = 0.4  # a sent text's statuses come one by one, as a person would see them
    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    line = texting_line(organization)

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/harbour-dental/")
        page.get_by_role("link", name=re.compile(r"^Messages")).click()
        page.wait_for_url(f"{base}/o/harbour-dental/messages/")
        page.get_by_text("No texts yet").wait_for()
        page.locator("[data-inbox-live-status][data-state='live']").wait_for()
        shot(page, "inbox-empty")

        # A text arrives: its row appears at the top with one unread, and the navigation counts it.
        twilio_standin.inbound_message(line.number, SENDER, "Hi! Is the clinic open on Saturday? <b>bold?</b>")
        row = page.locator("[data-inbox-list] > li").first
        row.locator("[data-inbox-preview]").get_by_text("Is the clinic open on Saturday? <b>bold?</b>").wait_for()
        assert row.locator("[data-inbox-unread]").inner_text().startswith("1")
        assert page.locator("[data-inbox-list] b").count() == 0  # the text is text, never markup
        page.locator("[data-unread-total='1']").wait_for()
        assert not page.locator("[data-inbox-empty]").count()

        # A second conversation moves to the top; the first keeps its place below it.
        twilio_standin.inbound_message(line.number, "+12129870199", "Running 5 minutes late, sorry")
        page.locator("[data-inbox-list] > li").first.get_by_text("Running 5 minutes late").wait_for()
        page.locator("[data-unread-total='2']").wait_for()
        twilio_standin.inbound_message(line.number, SENDER, "Also: do you take new patients?")
        first = page.locator("[data-inbox-list] > li").first
        first.get_by_text("do you take new patients?").wait_for()
        assert first.get_attribute("data-contact-phone") == SENDER
        assert first.locator("[data-inbox-unread]").inner_text().startswith("2")
        assert page.locator("[data-inbox-list] > li").count() == 2
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload
        shot(page, "inbox-live")

        # The thread: opening it reads it; a new text appears in it live, and is read at once.
        conversation = Conversation.objects.for_org(organization).get(id=first.get_attribute("data-conversation-id"))
        first.locator("a").click()
        page.wait_for_url(f"{base}/o/harbour-dental/messages/{conversation.id}/")
        page.locator("[data-inbox-live-status][data-state='live']").wait_for()
        bodies = page.locator("[data-thread-messages] [data-message-body]")
        assert bodies.all_inner_texts() == [
            "Hi! Is the clinic open on Saturday? <b>bold?</b>", "Also: do you take new patients?",
        ]
        page.locator("[data-unread-total='1']").wait_for()  # this thread's two were read
        twilio_standin.inbound_message(line.number, SENDER, "Hello? 👋")
        page.locator("[data-thread-messages] > li").nth(2).get_by_text("Hello? 👋").wait_for()
        arrived = page.locator("[data-thread-messages] > li").nth(2)
        assert arrived.get_attribute("data-direction") == "inbound"
        assert arrived.locator("[data-message-kind]").inner_text() == "Contact"
        assert arrived.locator("[data-message-status]").inner_text() == "Received"
        for _ in range(50):
            conversation.refresh_from_db()
            if conversation.unread_count == 0:
                break
            page.wait_for_timeout(100)
        assert conversation.unread_count == 0  # read while the page is open

        # The composer: the count, the segments and the encoding follow what is typed, as the server counts.
        body = page.get_by_role("textbox", name="Message")
        body.fill("Yes, we are open 9-12.")
        assert counter(page) == {"encoding": "GSM-7", "segments": 1, "characters": 22}
        assert page.locator("[data-segment-remaining]").inner_text() == "138"
        body.press_sequentially(" 😊")
        assert counter(page) == {"encoding": "UCS-2", "segments": 1, "characters": 24}
        assert "UCS-2 because of “😊”" in page.locator("[data-segment-reason]").inner_text()
        shot(page, "thread-composer-ucs2")
        body.fill("a" * 161)
        assert counter(page) == {"encoding": "GSM-7", "segments": 2, "characters": 161}
        for text in TRICKY:
            expected = count_segments(text)
            found = page.evaluate("(text) => window.JagCallInbox.countSegments(text)", text)
            assert found == {
                "encoding": expected.encoding, "segments": expected.segments,
                "characters": expected.characters, "remaining": expected.remaining,
            }, text  # fmt: skip
        for ch in sorted(GSM7_BASIC | GSM7_EXTENDED) + ["ç", "€", "’", "\u00a0", "😊"]:
            found = page.evaluate("(text) => window.JagCallInbox.countSegments(text)", ch * 2)
            assert found["encoding"] == count_segments(ch * 2).encoding, repr(ch)

        # Send: the text is in the thread, then its status follows Twilio's callbacks without a reload.
        body.fill("Yes, we are open 9-12 on Saturday. See you! 😊")
        page.get_by_role("button", name="Send", exact=True).click()
        sent = page.locator("[data-thread-messages] > li[data-direction='outbound']")
        sent.get_by_text("Yes, we are open 9-12 on Saturday. See you! 😊").wait_for()
        message = Message.objects.for_org(organization).get(direction=Direction.OUTBOUND)
        assert message.body == "Yes, we are open 9-12 on Saturday. See you! 😊" and message.encoding == "UCS-2"
        assert twilio_standin.messages[-1].body == message.body
        assert sent.locator("[data-message-sender]").inner_text() == owner.email
        sent.locator("[data-message-status='delivered']").wait_for(timeout=15000)
        sent.locator("summary").click()
        timeline = sent.locator("[data-message-timeline] li").all_inner_texts()
        assert [t.split(" — ")[1] for t in timeline][-1] == "Delivered", timeline
        assert counter(page)["characters"] == 0  # a fresh composer
        page.locator("[data-inbox-live-status][data-state='live']").wait_for()  # the same connection, still live
        shot(page, "thread-sent")

        # They answer in their own words that they want no more texts: the opt-out and its review appear live.
        twilio_standin.inbound_message(line.number, SENDER, "Please stop texting me, I moved away")
        review = page.locator("[data-opt-out-review]")
        review.wait_for()
        assert review.locator("[data-review-message]").inner_text() == "Please stop texting me, I moved away"
        items = page.locator("[data-thread-messages] > li")
        items.filter(has_text="I moved away").and_(page.locator("[data-direction='inbound']")).wait_for()
        # The confirmation sent in reply is in the thread too, from JagCall.
        confirmation = items.filter(has_text="you are unsubscribed")
        confirmation.wait_for()
        assert confirmation.locator("[data-message-kind]").inner_text() == "Automatic reply"
        shot(page, "thread-opt-out-review")
        review.get_by_role("button", name="Undo opt-out").click()
        page.get_by_text(f"The opt-out is undone: {SENDER} can be texted from {line.number} again.").wait_for()
        assert not page.locator("[data-opt-out-review]").count()

        # Back in the inbox: the conversation is on top, read, with the last text (the confirmation) as preview.
        page.get_by_role("link", name="← All messages").click()
        page.wait_for_url(f"{base}/o/harbour-dental/messages/")
        top = page.locator("[data-inbox-list] > li").first
        assert top.get_attribute("data-conversation-id") == str(conversation.id)
        assert top.get_attribute("data-unread") == "0"
        assert "Sent: Harbour Dental: you are unsubscribed" in top.locator("[data-inbox-preview]").inner_text()
        shot(page, "inbox-after-reply")
    finally:
        context.close()
    twilio_standin.settle()


def test_a_new_message_warns_about_an_unregistered_us_number_before_sending(asgi_live_server, browser, shot,
                                                                            twilio_standin, settings):  # fmt: skip
    from messaging.models import A2PStatus, NumberMessaging
    from telephony.tests.factories import PhoneNumberFactory

    base = asgi_live_server
    settings.PUBLIC_BASE_URL = base
    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    toll_free = PhoneNumberFactory(organization=organization, number="+18885550123", sms_enabled=True)
    long_code = PhoneNumberFactory(organization=organization, number="+14155550166", sms_enabled=True)
    NumberMessaging.objects.create(organization=organization, phone_number=long_code, a2p_status=A2PStatus.PENDING)

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/harbour-dental/")
        page.goto(f"{base}/o/harbour-dental/messages/new/")
        warning = page.locator("[data-a2p-warning]")
        page.get_by_label("From").select_option(str(toll_free.id))
        assert warning.is_hidden()
        page.get_by_label("From").select_option(str(long_code.id))
        assert warning.is_visible() and "not registered for A2P 10DLC" in warning.inner_text()
        page.get_by_role("textbox", name="Message").fill("Ça va? 😊")
        assert counter(page)["encoding"] == "UCS-2"
        shot(page, "compose-a2p-warning")
        page.get_by_label("From").select_option(str(toll_free.id))
        assert warning.is_hidden()
    finally:
        context.close()


def test_a_newcomer_simulates_a_text_and_sees_it_arrive(asgi_live_server, browser, shot, twilio_standin, settings):
    base = asgi_live_server
    settings.SIMULATED_PROVIDERS = True
    settings.PUBLIC_BASE_URL = base  # the stand-in posts our SMS hook, served here
    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    line = texting_line(organization)

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/harbour-dental/")
        page.goto(f"{base}/o/harbour-dental/messages/")
        page.locator("[data-inbox-live-status][data-state='live']").wait_for()
        page.locator("[data-simulate-text] summary").click()
        assert page.get_by_text("try “Simulate an incoming text” below").is_visible()  # the empty inbox says so
        form = page.locator("[data-simulate-text] form")
        assert form.get_by_label("To").input_value() == str(line.id)
        form.get_by_label("Their text").fill("Hi, can I move my appointment to Friday?")
        shot(page, "inbox-simulate-form")
        form.get_by_role("button", name="Send the simulated text").click()
        page.get_by_text(f"Simulated mode: +14155550134 is texting {line.number}.").wait_for()
        row = page.locator("[data-inbox-list] > li").first
        row.get_by_text("Hi, can I move my appointment to Friday?").wait_for()
        assert row.get_attribute("data-contact-phone") == "+14155550134"
        shot(page, "inbox-simulated-text")
    finally:
        context.close()
    twilio_standin.settle()


def test_a_text_shown_live_stays_when_an_older_copy_of_the_page_comes_back(asgi_live_server, browser, twilio_standin,
                                                                          settings):  # fmt: skip
    """The open thread fetches itself again once its socket is live (what happened before it connected). A
    text appended live while that fetch is on its way must not be taken away by the older copy."""
    base = asgi_live_server
    settings.PUBLIC_BASE_URL = base
    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    line = texting_line(organization)
    twilio_standin.inbound_message(line.number, SENDER, "First text")
    conversation = Conversation.objects.for_org(organization).get()
    thread_url = f"{base}/o/harbour-dental/messages/{conversation.id}/"

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/harbour-dental/")
        held = []

        def hold_the_refresh(route):
            # The page's own fetch of itself (not the navigation): answered by the server now, handed to
            # the page only after the live text arrived.
            if route.request.resource_type == "fetch" and not held:
                held.append((route, route.fetch()))
            else:
                route.continue_()

        page.route(thread_url, hold_the_refresh)
        page.goto(thread_url)
        page.locator("[data-inbox-live-status][data-state='live']").wait_for()
        for _ in range(100):  # the refresh was fetched (and is held)
            if held:
                break
            page.wait_for_timeout(50)
        assert held, "the thread did not fetch itself once live"
        twilio_standin.inbound_message(line.number, SENDER, "Second text, while the page was being fetched")
        page.locator("[data-thread-messages] > li").nth(1).get_by_text("Second text").wait_for()
        route, older = held[0]
        assert "Second text" not in older.text()  # the copy was taken before the text arrived
        route.fulfill(response=older)
        page.wait_for_timeout(1500)  # the older copy has come back, and a fresh one after it
        bodies = page.locator("[data-thread-messages] [data-message-body]").all_inner_texts()
        assert bodies == ["First text", "Second text, while the page was being fetched"]
    finally:
        context.close()
