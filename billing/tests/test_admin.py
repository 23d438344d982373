"""Billing in the back office: the account page, complimentary plans and credits (audited, through the
services), and bad input refused with a form error and nothing written."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.entitlements import Standing
from billing.models import BillingAccount, BillingCredit
from billing.tests.test_portal import audit_actions, client_for, subscribe

pytestmark = pytest.mark.django_db


def account_of(organization) -> BillingAccount:
    return BillingAccount.objects.for_org(organization).get()


@pytest.fixture
def subscribed(organization, owner, stripe_standin):
    subscribe(client_for(owner), organization, stripe_standin)
    return account_of(organization)


def test_the_account_page_shows_plan_subscription_and_links_to_stripe(staff_client, organization, subscribed):
    listing = staff_client.get(reverse("admin:billing_billingaccount_changelist"), {"q": organization.slug})
    assert [a.pk for a in listing.context["cl"].result_list] == [subscribed.pk]
    by_customer = staff_client.get(reverse("admin:billing_billingaccount_changelist"), {"q": subscribed.stripe_customer_id})
    assert [a.pk for a in by_customer.context["cl"].result_list] == [subscribed.pk]
    page = staff_client.get(reverse("admin:billing_billingaccount_change", args=[subscribed.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    text = " ".join(re.sub(r"<[^>]+>", " ", content).split())
    assert "Plan: Pro" in text and "Subscription status: Active" in text and "Standing: In good standing" in text
    assert "Billing of Acme Dental" in text and "— paid" in text  # the invoice, from Stripe
    assert f"https://dashboard.stripe.com/customers/{subscribed.stripe_customer_id}" in content
    assert reverse("admin:billing_billingaccount_complimentary", args=[subscribed.pk]) in content
    assert reverse("admin:billing_billingaccount_credit", args=[subscribed.pk]) in content
    assert staff_client.get(reverse("admin:billing_billingaccount_add")).status_code == 403


def test_the_account_list_shows_a_reached_spend_cap(staff_client, organization):
    from accounts.services import organization_spend_cap_mark
    from billing.selectors import month_start
    from billing.services.subscriptions import billing_account_ensure
    from django.utils import timezone

    billing_account_ensure(organization)
    BillingAccount.objects.for_org(organization).update(spend_cap_cents=5_000)
    listing = staff_client.get(reverse("admin:billing_billingaccount_changelist"))
    assert "$50.00 a month" in listing.content.decode() and "outbound paused" not in listing.content.decode()
    organization_spend_cap_mark(organization=organization, reached_month=month_start(timezone.now()).date())
    listing = staff_client.get(reverse("admin:billing_billingaccount_changelist"))
    assert "$50.00 a month: reached this month, outbound paused" in listing.content.decode()


def test_a_complimentary_plan_is_granted_audited_and_taken_back(staff_client, staff_user, organization, owner):
    from billing.services.subscriptions import billing_account_ensure

    account = billing_account_ensure(organization)
    address = reverse("admin:billing_billingaccount_complimentary", args=[account.pk])
    form = staff_client.get(address)
    assert form.status_code == 200 and "Grant a complimentary plan" in form.content.decode()
    response = staff_client.post(address, {"plan_code": "enterprise", "reason": "Ticket 4411: partner practice"})
    assert response.status_code == 302
    organization.refresh_from_db()
    assert organization.plan_code == "enterprise" and organization.billing_standing == Standing.GOOD
    assert account_of(organization).complimentary_plan_code == "enterprise"
    assert "billing.complimentary_plan_granted" in audit_actions(organization)
    back = staff_client.post(address, {"plan_code": "", "reason": "Agreement ended"})
    assert back.status_code == 302
    organization.refresh_from_db()
    assert organization.plan_code == "starter"
    assert "billing.complimentary_plan_removed" in audit_actions(organization)


@pytest.mark.parametrize("data", [{"plan_code": "platinum", "reason": "x"}, {"plan_code": "pro", "reason": ""},
                                  {"plan_code": "pro", "reason": "   "}])
def test_a_complimentary_plan_with_bad_input_says_what_to_fix_and_writes_nothing(staff_client, organization, data):
    from billing.services.subscriptions import billing_account_ensure

    account = billing_account_ensure(organization)
    before = audit_actions(organization)
    response = staff_client.post(reverse("admin:billing_billingaccount_complimentary", args=[account.pk]), data)
    assert response.status_code == 400
    assert response.context["form"].errors
    organization.refresh_from_db()
    assert organization.plan_code == "starter" and account_of(organization).complimentary_plan_code == ""
    assert audit_actions(organization) == before


def test_a_credit_reaches_the_stripe_balance_and_is_audited(staff_client, staff_user, organization, subscribed,
                                                             stripe_standin):  # fmt: skip
    address = reverse("admin:billing_billingaccount_credit", args=[subscribed.pk])
    response = staff_client.post(address, {"amount": "25.50", "reason": "Outage on 3 December"})
    assert response.status_code == 302
    credit = BillingCredit.objects.for_org(organization).get()
    assert credit.amount_cents == 2550 and credit.granted_by == staff_user and credit.stripe_transaction_id
    customer = stripe_standin.customers[subscribed.stripe_customer_id]
    assert customer["balance"] == -2550
    [transaction] = stripe_standin.balance_transactions[subscribed.stripe_customer_id]
    assert transaction["id"] == credit.stripe_transaction_id and transaction["description"] == "Outage on 3 December"
    assert "billing.credit_granted" in audit_actions(organization)
    page = staff_client.get(reverse("admin:billing_billingaccount_change", args=[subscribed.pk])).content.decode()
    assert "$25.50" in page and "Outage on 3 December" in page


@pytest.mark.parametrize("data", [{"amount": "0", "reason": "x"}, {"amount": "-5", "reason": "x"},
                                  {"amount": "10000.01", "reason": "x"}, {"amount": "ten", "reason": "x"},
                                  {"amount": "1.234", "reason": "x"}, {"amount": "5", "reason": ""}])
def test_a_credit_with_bad_input_says_what_to_fix_and_writes_nothing(staff_client, organization, subscribed,
                                                                      stripe_standin, data):  # fmt: skip
    before = audit_actions(organization)
    response = staff_client.post(reverse("admin:billing_billingaccount_credit", args=[subscribed.pk]), data)
    assert response.status_code == 400
    assert response.context["form"].errors
    assert not BillingCredit.objects.for_org(organization).exists()
    assert stripe_standin.customers[subscribed.stripe_customer_id]["balance"] == 0
    assert audit_actions(organization) == before


def test_a_credit_stripe_refuses_is_a_form_error_and_leaves_no_row(staff_client, organization, subscribed, stripe_standin):
    from billing.services.stripe_api import client

    client().v1.customers.delete(subscribed.stripe_customer_id)  # Stripe no longer has the customer
    response = staff_client.post(reverse("admin:billing_billingaccount_credit", args=[subscribed.pk]),
                                 {"amount": "5", "reason": "Goodwill"})  # fmt: skip
    assert response.status_code == 400
    assert response.context["form"].non_field_errors()
    assert not BillingCredit.objects.for_org(organization).exists()


def test_members_of_the_portal_cannot_reach_the_grants(client, organization, owner):
    from billing.services.subscriptions import billing_account_ensure

    account = billing_account_ensure(organization)
    client.force_login(owner)
    response = client.post(reverse("admin:billing_billingaccount_credit", args=[account.pk]), {"amount": "5", "reason": "x"})
    assert response.status_code in (302, 403)
    assert not BillingCredit.objects.for_org(organization).exists()
