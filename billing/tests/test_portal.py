"""The Billing pages (/o/<slug>/billing/): who reaches them, what the overview shows, and each action through
the Stripe stand-in (jagcall/kernel/standins/stripe.py) spoken to by the real SDK: Checkout and back, a plan
change with its proration preview, the Customer Portal, and the spend cap.
"""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.entitlements import PLANS, USAGE_COUNTERS, Standing
from accounts.models import Membership
from accounts.permissions import Role
from accounts.services import organization_billing_update
from accounts.tests.factories import MembershipFactory, UserFactory
from billing import selectors
from billing.models import BillingAccount, UsageEvent
from billing.selectors import month_start, next_month_start
from compliance.models import AuditEvent

pytestmark = pytest.mark.django_db

ROUTES = [
    ("billing:overview", "get"),
    ("billing:checkout", "post"),
    ("billing:checkout-return", "get"),
    ("billing:plan-change", "get"),
    ("billing:plan-change", "post"),
    ("billing:portal", "post"),
    ("billing:spend-cap", "post"),
]


def url(name: str, organization) -> str:
    return reverse(name, kwargs={"org_slug": organization.slug})


def page(response) -> str:
    return response.content.decode()


def text(response) -> str:
    """The page's words, without tags and with runs of spaces made one."""
    return " ".join(re.sub(r"<[^>]+>", " ", page(response)).split())


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def account_of(organization) -> BillingAccount | None:
    return BillingAccount.objects.for_org(organization).filter(organization=organization).first()


def audit_actions(organization) -> list[str]:
    return list(AuditEvent.objects.unscoped("test: inspects rows directly").filter(organization=organization)
                .order_by("occurred_at").values_list("action", flat=True))  # fmt: skip


def hosted_id(location: str) -> str:
    """The id at the end of a stand-in hosted page's URL (/stand-in/checkout/cs_..., /stand-in/portal/bps_...)."""
    return location.rstrip("/").rsplit("/", 1)[-1]


def stripe_prices() -> None:
    """The plans' prices at Stripe (the stand-in), as `manage.py billing_prices_sync` makes them."""
    from billing.services.prices import prices_sync

    prices_sync()


def subscribe(client, organization, standin, plan: str = "pro", interval: str = "month"):
    """Subscribe as an owner does: Checkout, Subscribe on Stripe's page, back to the return URL (followed)."""
    stripe_prices()
    response = client.post(url("billing:checkout", organization), {"plan": plan, "interval": interval})
    assert response.status_code == 303, page(response)[:2000]
    session_id = hosted_id(response["Location"])
    standin.complete_checkout(session_id)
    back = client.get(f"{url('billing:checkout-return', organization)}?session_id={session_id}", follow=True)
    organization.refresh_from_db()
    return back


# --- who reaches the pages ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,method", ROUTES, ids=[f"{n}-{m}" for n, m in ROUTES])
@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER])
def test_admins_and_members_are_refused_every_billing_route(organization, owner, name, method, role):
    user = MembershipFactory(organization=organization, user=UserFactory(), role=role).user
    response = getattr(client_for(user), method)(url(name, organization), {"plan": "pro", "interval": "month", "cap": "50"})
    assert response.status_code == 403
    assert account_of(organization) is None  # nothing was written, no Stripe customer asked for


@pytest.mark.parametrize("name,method", ROUTES, ids=[f"{n}-{m}" for n, m in ROUTES])
def test_another_organizations_billing_is_not_found(organization, other_organization, owner, other_owner, name, method):
    response = getattr(client_for(owner), method)(url(name, other_organization), {"plan": "pro", "interval": "month"})
    assert response.status_code == 404
    assert account_of(other_organization) is None


def test_the_owner_reaches_the_overview_and_the_nav_links_it(organization, owner, admin_user):
    response = client_for(owner).get(url("billing:overview", organization))
    assert response.status_code == 200
    nav = re.search(r'<nav class="container org-nav".*?</nav>', page(response), re.S).group()
    assert f'href="{url("billing:overview", organization)}" aria-current="page">Billing</a>' in nav
    # After Settings.
    assert nav.index(">Settings</a>") < nav.index(">Billing</a>")
    dashboard = page(client_for(admin_user).get(reverse("accounts:dashboard", kwargs={"org_slug": organization.slug})))
    assert url("billing:overview", organization) not in dashboard


# --- the overview ------------------------------------------------------------------------------------


def test_without_a_subscription_the_page_explains_starter_and_offers_checkout(organization, owner, settings):
    settings.SIMULATED_PROVIDERS = False
    response = client_for(owner).get(url("billing:overview", organization))
    words = text(response)
    assert "Acme Dental has no subscription yet, so it is on the Starter plan's allowances" in words
    assert "500 call minutes and 1,000 SMS segments a month, 3 team members and 2 phone numbers" in words
    assert "Subscribing opens Stripe Checkout" in words
    assert "Checkout is simulated" not in words
    assert "Manage billing" not in words and "Change to this plan" not in words
    for code in PLANS:
        assert f'data-subscribe="{code}"' in page(response)
    assert 'hx-boost="false" data-subscribe' in page(response)  # off to Stripe: a real navigation, not htmx
    # [!!] No card field.
    assert not re.search(r'autocomplete="cc-|name="(card|cvc|cvv|exp)', page(response), re.I)

    settings.SIMULATED_PROVIDERS = True
    words = text(client_for(owner).get(url("billing:overview", organization)))
    assert "Checkout is simulated on this machine: no card is needed and nothing is charged." in words


def test_the_plans_table_shows_prices_limits_features_and_support(organization, owner):
    response = client_for(owner).get(url("billing:overview", organization))
    words = text(response)
    for price in ("$49 a month", "$199 a month", "$799 a month", "$490 a year", "$1,990 a year", "$7,990 a year"):
        assert price in words
    assert "2 months free" in words
    for label in ("Team members", "Phone numbers", "Calls at once", "Call minutes a month", "SMS segments a month",
                  "Knowledge storage", "Single sign-on (SAML)", "HIPAA mode", "Support"):  # fmt: skip
        assert label in words
    assert "100 MB" in words and "1 GB" in words and "10 GB" in words
    assert "15,000" in words and "Dedicated manager, 4-hour response" in words
    assert "$0.09" in words and "$0.015" in words  # Starter's overage rates
    # The current plan is marked.
    assert re.search(r'<th scope="col" data-plan="starter" class="current" aria-current="true">', page(response))
    assert 'data-plan="pro" class="current"' not in page(response)


@pytest.fixture
def mid_month(monkeypatch):
    """The usage selectors see the middle of the current month (UTC): the projection is exactly twice the use."""
    now = timezone.now()
    start, end = month_start(now), next_month_start(now)
    middle = start + (end - start) / 2
    monkeypatch.setattr(selectors, "timezone", SimpleNamespace(now=lambda: middle))
    return SimpleNamespace(start=start, middle=middle, end=end)


def record_usage(organization, when, *, minutes: int = 0, segments: int = 0) -> None:
    for kind, quantity in (("call_minutes", minutes), ("sms_segments", segments)):
        if quantity:
            UsageEvent.objects.create(
                organization=organization, kind=kind, quantity=quantity, source=f"test:{kind}:{quantity}",
                identifier=f"test:{organization.slug}:{kind}:{quantity}", occurred_at=when,
            )  # fmt: skip


def test_the_overview_shows_the_months_usage_projection_and_charges(organization, owner, other_organization, mid_month):
    record_usage(organization, mid_month.start + dt.timedelta(hours=1), minutes=600, segments=600)
    record_usage(organization, mid_month.start - dt.timedelta(hours=1), minutes=999)  # last month: not counted
    record_usage(other_organization, mid_month.start + dt.timedelta(hours=1), minutes=50)  # not ours
    response = client_for(owner).get(url("billing:overview", organization))
    html = page(response)
    minutes = re.search(r'<article data-usage="call_minutes">.*?</article>', html, re.S).group()
    segments = re.search(r'<article data-usage="sms_segments">.*?</article>', html, re.S).group()
    assert "<strong data-used>600</strong>" in minutes and "<span data-included>500</span>" in minutes
    assert '<progress value="600" max="500"' in minutes and "100% used" in minutes
    assert "100 beyond the included" in minutes and "<strong data-projected>1,200</strong>" in minutes
    assert "<strong data-used>600</strong>" in segments and "<span data-included>1,000</span>" in segments
    assert "60% used" in segments and "<strong data-projected>1,200</strong>" in segments
    # 100 minutes beyond Starter's 500 at $0.09: $9.00 so far; projected 700 minutes ($63) + 200 segments ($3).
    assert '<span class="stat-value" data-charges>$9.00</span>' in html
    assert '<span class="stat-value" data-projected-charges>$66.00</span>' in html
    assert f"Usage in {mid_month.start:%B %Y}" in text(response)


# --- the spend cap -----------------------------------------------------------------------------------


def test_the_owner_sets_and_removes_the_spend_cap_and_the_page_shows_its_state(organization, owner, mid_month):
    client = client_for(owner)
    record_usage(organization, mid_month.start + dt.timedelta(hours=1), minutes=600)  # $9.00 of charges
    assert 'data-cap-state="none"' in page(client.get(url("billing:overview", organization)))

    response = client.post(url("billing:spend-cap", organization), {"cap": "100"})
    assert response.status_code == 302 and response["Location"].endswith("#spend-cap")
    assert account_of(organization).spend_cap_cents == 10_000
    overview = client.get(response["Location"])
    assert "The monthly spend cap is now $100.00." in text(overview)
    assert 'data-cap-state="under"' in page(overview) and "$9.00 of your $100.00 cap used this month (9%)" in text(overview)
    assert 'value="100.00"' in page(overview)

    client.post(url("billing:spend-cap", organization), {"cap": "$10.50"})
    assert account_of(organization).spend_cap_cents == 1_050
    overview = client.get(url("billing:overview", organization))
    assert 'data-cap-state="warned"' in page(overview) and "Nearing the cap" in text(overview)

    client.post(url("billing:spend-cap", organization), {"cap": "5"})
    overview = client.get(url("billing:overview", organization))
    assert 'data-cap-state="reached"' in page(overview)
    assert "Cap reached: $9.00 of your $5.00 cap used. New outbound calls and texts are paused" in text(overview)

    response = client.post(url("billing:spend-cap", organization), {"cap": ""})
    assert response.status_code == 302
    assert account_of(organization).spend_cap_cents is None
    overview = client.get(url("billing:overview", organization))
    assert "The spend cap is removed" in text(overview) and 'data-cap-state="none"' in page(overview)
    assert audit_actions(organization).count("billing.spend_cap_changed") == 4


@pytest.mark.parametrize(
    "value,message",
    [
        ("fifty", "Enter an amount in dollars, such as 50 or 125.50."),
        ("-20", "A spend cap cannot be negative"),
        ("12.345", "Use at most two decimals (whole cents), such as 125.50."),
        ("1e3", "Enter an amount in dollars, such as 50 or 125.50."),
        ("NaN", "Enter an amount in dollars, such as 50 or 125.50."),
        ("0.50", "Set a cap of at least $1.00, or remove it."),
        ("100001", "Set a cap of at most $100,000.00 a month."),
        ("9" * 21, "Ensure this value has at most 20 characters"),
    ],
)
def test_an_invalid_cap_is_refused_at_the_field_and_nothing_is_written(organization, owner, value, message):
    client = client_for(owner)
    client.post(url("billing:spend-cap", organization), {"cap": "40"})
    before = audit_actions(organization)
    response = client.post(url("billing:spend-cap", organization), {"cap": value})
    assert response.status_code == 400
    html = page(response)
    field_error = re.search(r'<small class="field-error" id="id_cap_error">(.*?)</small>', html, re.S)
    assert field_error and message in field_error.group(1), html[:3000]
    assert 'aria-invalid="true"' in html and "data-error-summary" in html
    assert account_of(organization).spend_cap_cents == 4_000  # unchanged
    assert audit_actions(organization) == before


# --- Checkout ----------------------------------------------------------------------------------------


def test_subscribe_through_checkout_and_come_back_on_pro(organization, owner, stripe_standin):
    stripe_prices()
    client = client_for(owner)
    response = client.post(url("billing:checkout", organization), {"plan": "pro", "interval": "month"})
    assert response.status_code == 303
    assert response["Location"].startswith(f"{stripe_standin.base_url}/stand-in/checkout/cs_")
    session = stripe_standin.checkout_sessions[hosted_id(response["Location"])]
    # Stripe fills the braces in itself: they reach it unescaped.
    assert session["success_url"] == "http://testserver/o/acme-dental/billing/checkout/return/?session_id={CHECKOUT_SESSION_ID}"
    assert session["cancel_url"] == "http://testserver/o/acme-dental/billing/?checkout=canceled"
    assert session["customer"] == account_of(organization).stripe_customer_id

    # Back before paying (or before Stripe finished): the page says it is confirming, nothing changes.
    early = client.get(f"{url('billing:checkout-return', organization)}?session_id={session['id']}", follow=True)
    assert "Stripe is confirming your payment; this page updates in a moment." in text(early)
    organization.refresh_from_db()
    assert organization.plan_code == "starter"

    stripe_standin.complete_checkout(session["id"])  # "Subscribe" on the hosted page
    back = client.get(session["success_url"].replace("http://testserver", "").replace("{CHECKOUT_SESSION_ID}", session["id"]))
    assert back.status_code == 302 and back["Location"] == url("billing:overview", organization)
    overview = client.get(back["Location"])
    assert "You are now on Pro." in text(overview)
    organization.refresh_from_db()
    assert organization.plan_code == "pro" and organization.billing_standing == Standing.GOOD
    account = account_of(organization)
    assert (account.subscription_status, account.subscribed_plan_code, account.interval) == ("active", "pro", "month")
    words = text(overview)
    assert "$199 a month, billed monthly" in words and "Active: paid and in good standing." in words
    assert f"Renews {account.current_period_end:%-d %B %Y}" in words
    # Subscribed: "Manage billing" and "Change to this plan", no more Checkout.
    assert "data-manage-billing" in page(overview) and 'data-subscribe="' not in page(overview)
    assert f'{url("billing:plan-change", organization)}?plan=enterprise&amp;interval=month' in page(overview)
    assert f'{url("billing:plan-change", organization)}?plan=pro&amp;interval=year' in page(overview)  # switch billing
    assert re.search(r'<th scope="col" data-plan="pro" class="current" aria-current="true">', page(overview))
    assert {"billing.checkout_started", "billing.subscription_changed"} <= set(audit_actions(organization))

    # A second Checkout is refused: a live subscription changes plan in place.
    again = client.post(url("billing:checkout", organization), {"plan": "enterprise", "interval": "month"})
    assert again.status_code == 409
    assert "already has a subscription: change its plan from the Billing page instead" in text(again)


def test_a_canceled_checkout_comes_back_to_an_unchanged_page(organization, owner):
    response = client_for(owner).get(f"{url('billing:overview', organization)}?checkout=canceled")
    assert "Checkout was canceled: nothing was charged and your plan is unchanged." in text(response)


def test_an_unknown_plan_is_refused_without_asking_stripe(organization, owner):
    response = client_for(owner).post(url("billing:checkout", organization), {"plan": "platinum", "interval": "month"})
    assert response.status_code == 400 and "Choose one of the plans." in text(response)
    assert account_of(organization) is None


def test_stripe_unreachable_is_a_502_or_503_with_what_to_do_never_a_500(organization, owner, settings):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.PROVIDER_BASE_URLS = {**settings.PROVIDER_BASE_URLS, "stripe": f"http://127.0.0.1:{closed}"}
    settings.STRIPE_SECRET_KEY = "sk_test_unreachable"
    settings.PROVIDER_MAX_RETRIES = 0
    response = client_for(owner).post(url("billing:checkout", organization), {"plan": "pro", "interval": "month"})
    assert response.status_code in (502, 503)
    assert "Stripe could not" in text(response) and "try again" in text(response)
    assert organization.plan_code == "starter"


# --- changing plan -----------------------------------------------------------------------------------


def confirm_form(response) -> dict:
    html = page(response)
    form = re.search(r"<form method=\"post\"[^>]*data-confirm-plan-change>.*?</form>", html, re.S).group()
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))


def test_the_preview_shows_stripes_proration_and_confirming_changes_the_plan(organization, owner, stripe_standin):
    client = client_for(owner)
    subscribe(client, organization, stripe_standin, "pro", "month")
    response = client.get(f"{url('billing:plan-change', organization)}?plan=enterprise&interval=month")
    assert response.status_code == 200
    words = text(response)
    assert "Change to Enterprise" in words and "Acme Dental is on Pro, billed monthly." in words
    # The stand-in's proration lines: a credit for Pro's unused time, a charge for Enterprise's remaining time.
    lines = re.findall(r"<tr data-line><td>(.*?)</td><td class=\"amount( credit)?\">(.*?)</td></tr>", page(response))
    descriptions = [line[0] for line in lines]
    assert any(d.startswith("Unused time on JagCall Pro after") for d in descriptions), descriptions
    assert any(d.startswith("Remaining time on JagCall Enterprise after") for d in descriptions), descriptions
    credit = next(line for line in lines if line[0].startswith("Unused time"))
    assert credit[1] == " credit" and credit[2].startswith("−$")
    assert re.search(r"<td class=\"amount\" data-amount-due>\$[\d,]+\.\d\d</td>", page(response))
    assert "(USD)" in words and "data-refusals" not in page(response)

    data = confirm_form(response)
    assert data["plan"] == "enterprise" and data["interval"] == "month" and int(data["proration_date"]) > 0
    done = client.post(url("billing:plan-change", organization), data)
    assert done.status_code == 302 and done["Location"] == url("billing:overview", organization)
    assert "Your plan is now Enterprise, billed monthly." in text(client.get(done["Location"]))
    organization.refresh_from_db()
    assert organization.plan_code == "enterprise"
    assert stripe_standin.subscription_for(account_of(organization).stripe_customer_id)["items"]["data"][0]["price"][
        "lookup_key"] == "jagcall_enterprise_monthly"  # fmt: skip
    assert "billing.plan_change_requested" in audit_actions(organization)


def test_the_same_plan_and_an_expired_preview_show_the_message_with_a_4xx(organization, owner, stripe_standin):
    client = client_for(owner)
    subscribe(client, organization, stripe_standin, "pro", "month")
    same = client.get(f"{url('billing:plan-change', organization)}?plan=pro&interval=month")
    assert same.status_code == 400 and "You are on the Pro plan already." in text(same)
    assert "data-confirm-plan-change" not in page(same)

    stale = int(timezone.now().timestamp()) - 3600
    expired = client.post(url("billing:plan-change", organization), {"plan": "enterprise", "interval": "month",
                                                                    "proration_date": str(stale)})  # fmt: skip
    assert expired.status_code == 400
    assert "This price preview has expired: review the change again before confirming it." in text(expired)
    # A fresh preview to confirm instead.
    assert int(confirm_form(expired)["proration_date"]) > stale
    organization.refresh_from_db()
    assert organization.plan_code == "pro"

    nonsense = client.post(url("billing:plan-change", organization), {"plan": "enterprise", "interval": "weekly"})
    assert nonsense.status_code == 400 and "Choose monthly or yearly billing." in text(nonsense)


def test_a_smaller_plan_the_organization_outgrew_is_refused_and_blocked(organization, owner, stripe_standin, monkeypatch):
    client = client_for(owner)
    subscribe(client, organization, stripe_standin, "pro", "month")
    for n in range(4):  # with the owner: 5 team members, Starter allows 3
        MembershipFactory(organization=organization, user=UserFactory(email=f"seat{n}@acme.test"), role=Role.MEMBER)
    monkeypatch.setitem(USAGE_COUNTERS, "seats", lambda org: Membership.objects.for_org(org).count())
    preview = client.get(f"{url('billing:plan-change', organization)}?plan=starter&interval=month")
    assert preview.status_code == 200
    words = text(preview)
    assert "Acme Dental uses more than the Starter plan allows" in words
    assert "The Starter plan allows 3 team members and 5 are in use: remove 2 first." in words
    assert "data-confirm-plan-change" not in page(preview)

    forced = client.post(url("billing:plan-change", organization), {
        "plan": "starter", "interval": "month", "proration_date": str(int(timezone.now().timestamp()))})  # fmt: skip
    assert forced.status_code == 409 and "remove 2 first" in text(forced)
    assert "data-confirm-plan-change" not in page(forced)
    organization.refresh_from_db()
    assert organization.plan_code == "pro"


def test_a_plan_change_without_a_subscription_says_to_subscribe(organization, owner):
    response = client_for(owner).get(f"{url('billing:plan-change', organization)}?plan=pro&interval=month")
    assert response.status_code == 409
    assert "no subscription to change yet: choose a plan to subscribe through Stripe Checkout" in text(response)


# --- the Customer Portal -----------------------------------------------------------------------------


def test_manage_billing_opens_the_customer_portal(organization, owner, stripe_standin):
    client = client_for(owner)
    nothing = client.post(url("billing:portal", organization))
    assert nothing.status_code == 409 and "There is nothing to manage at Stripe yet" in text(nothing)

    subscribe(client, organization, stripe_standin)
    response = client.post(url("billing:portal", organization))
    assert response.status_code == 303
    assert response["Location"].startswith(f"{stripe_standin.base_url}/stand-in/portal/")
    portal = stripe_standin.portal_sessions[hosted_id(response["Location"])]
    assert portal["return_url"] == "http://testserver/o/acme-dental/billing/"
    assert portal["customer"] == account_of(organization).stripe_customer_id


# --- standing: the overview and the banner on every page ---------------------------------------------


def _past_due(organization, *, days_ago: int = 2):
    from billing.services.customers import billing_account_ensure

    account = billing_account_ensure(organization)
    since = timezone.now() - dt.timedelta(days=days_ago)
    BillingAccount.objects.for_org(organization).filter(pk=account.pk).update(
        subscription_status="past_due", stripe_subscription_id="sub_test", subscribed_plan_code="pro",
        interval="month", past_due_since=since,
    )  # fmt: skip
    organization_billing_update(organization=organization, plan_code="pro", standing=Standing.PAST_DUE)
    return since


def test_past_due_shows_since_when_and_the_restriction_date_with_a_banner_everywhere(organization, owner, member, settings):
    settings.BILLING_GRACE_DAYS = 7
    since = _past_due(organization, days_ago=2)
    restrict_on = since + dt.timedelta(days=7)
    overview = client_for(owner).get(url("billing:overview", organization))
    words = text(overview)
    assert f"Stripe could not collect a payment on {since:%-d %B %Y}" in words
    assert f"Everything keeps working until {restrict_on:%-d %B %Y, %H:%M} UTC" in words
    assert 'data-standing="past_due"' in page(overview)

    banner = f"A payment failed. Update your card in Billing by {restrict_on:%-d %B %Y} to keep service."
    dashboard = reverse("accounts:dashboard", kwargs={"org_slug": organization.slug})
    for_owner = client_for(owner).get(dashboard)
    assert banner in text(for_owner)
    assert re.search(rf'data-billing-banner="past_due">.*?<a href="{url("billing:overview", organization)}">Go to Billing</a>',
                     page(for_owner), re.S)  # fmt: skip
    for_member = client_for(member).get(dashboard)
    assert banner in text(for_member) and "An owner of Acme Dental can do this." in text(for_member)
    assert url("billing:overview", organization) not in page(for_member)


def test_restricted_says_what_stopped_and_how_to_fix_it(organization, owner, member):
    from billing.services.customers import billing_account_ensure

    account = billing_account_ensure(organization)
    BillingAccount.objects.for_org(organization).filter(pk=account.pk).update(
        subscription_status="canceled", stripe_subscription_id="sub_test", subscribed_plan_code="pro", interval="month")
    organization_billing_update(organization=organization, plan_code="pro", standing=Standing.RESTRICTED)
    overview = client_for(owner).get(url("billing:overview", organization))
    words = text(overview)
    assert "Service is restricted" in words
    assert "What stopped: no outbound calls are placed and no texts are sent" in words
    assert "How to fix it: subscribe to a plan below." in words
    assert 'data-subscribe="pro"' in page(overview)  # no live subscription: Checkout again
    assert "Outbound calls and texts are paused: the subscription is unpaid or canceled. Renew it in Billing" in words
    team = client_for(member).get(reverse("accounts:team", kwargs={"org_slug": organization.slug}))
    assert "Outbound calls and texts are paused: the subscription is unpaid or canceled." in text(team)
    assert "An owner of Acme Dental can renew it." in text(team)


def test_in_good_standing_there_is_no_banner(organization, owner):
    dashboard = client_for(owner).get(reverse("accounts:dashboard", kwargs={"org_slug": organization.slug}))
    assert "data-billing-banner" not in page(dashboard)
