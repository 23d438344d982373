"""The Stripe stand-in (jagcall/kernel/standins/stripe.py), driven through the real stripe SDK: products and
prices by lookup key, customers, a checkout completed on its hosted page with the webhooks checked by
``stripe.Webhook.construct_event`` on a local receiver, the customer portal, proration previews, meter
events deduplicated by identifier, event summaries, Stripe's errors and idempotent replays."""

from __future__ import annotations

import base64
import socket
import time

import pytest
import requests
import stripe

from jagcall.kernel.standins.base import Reply, StandIn
from jagcall.kernel.standins.stripe import StripeStandIn, add_interval, parse_params

SUCCESS_URL = "https://app.example.test/o/acme/billing/done?session={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://app.example.test/o/acme/billing"


class WebhookReceiver(StandIn):
    """The application's side: keeps each webhook that ``stripe.Webhook.construct_event`` accepts for
    ``secret``, and answers 400 to the others."""

    name = "stripe-webhooks"

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.received: list[stripe.Event] = []

    def handle(self, request):
        try:
            event = stripe.Webhook.construct_event(request.body, request.header("stripe-signature"), self.secret)
        except (stripe.SignatureVerificationError, ValueError):
            return Reply(status=400, body=b'{"error": "bad signature"}')
        with self._lock:
            self.received.append(event)
        return Reply(body=b"{}")

    def types(self) -> list[str]:
        with self._lock:
            return [event.type for event in self.received]


@pytest.fixture
def client(stripe_standin) -> stripe.StripeClient:
    base = stripe_standin.base_url
    return stripe.StripeClient(stripe_standin.api_key, base_addresses={"api": base, "meter_events": base})


@pytest.fixture
def receiver(stripe_standin):
    """A webhook endpoint the stand-in delivers to, with its signing secret."""
    with WebhookReceiver(stripe_standin.webhook_secret) as server:
        stripe_standin.webhook_url = server.base_url + "/hooks/stripe/"
        yield server


def _subscribed(client, standin, price_id: str, email: str = "owner@acme.test") -> tuple[str, stripe.Subscription]:
    """A customer with a subscription to ``price_id``, through checkout (completed without the page)."""
    customer = client.v1.customers.create({"email": email, "metadata": {"organization": "acme"}})
    session = client.v1.checkout.sessions.create({
        "mode": "subscription", "customer": customer.id, "line_items": [{"price": price_id, "quantity": 1}],
        "success_url": SUCCESS_URL, "cancel_url": CANCEL_URL,
    })  # fmt: skip
    standin.complete_checkout(session.id)
    return customer.id, client.v1.subscriptions.retrieve(standin.subscription_for(customer.id)["id"])


def test_parse_params_reads_stripes_bracket_notation():
    fields = {
        "line_items[0][price]": ["price_1"], "line_items[0][quantity]": ["2"], "line_items[1][price]": ["price_2"],
        "metadata[organization]": ["acme"], "metadata[0]": ["a key, not an index"], "expand[]": ["customer", "invoice"],
        "subscription_details[items][0][id]": ["si_1"], "email": ["owner@acme.test"],
    }  # fmt: skip
    assert parse_params(fields) == {
        "line_items": [{"price": "price_1", "quantity": "2"}, {"price": "price_2"}],
        "metadata": {"organization": "acme", "0": "a key, not an index"},
        "expand": ["customer", "invoice"],
        "subscription_details": {"items": [{"id": "si_1"}]},
        "email": "owner@acme.test",
    }


def test_credentials_are_generated_in_stripes_formats():
    standin = StripeStandIn()
    assert standin.api_key.startswith("sk_test_") and len(standin.api_key) > 30
    assert standin.webhook_secret.startswith("whsec_")
    assert len(base64.b64decode(standin.webhook_secret.removeprefix("whsec_"))) == 32
    assert StripeStandIn().api_key != standin.api_key


def test_the_fixture_points_the_settings_at_the_stand_in(stripe_standin, settings):
    assert settings.PROVIDER_BASE_URLS["stripe"] == stripe_standin.base_url
    assert settings.STRIPE_SECRET_KEY == stripe_standin.api_key
    assert settings.STRIPE_WEBHOOK_SECRET == stripe_standin.webhook_secret
    assert stripe_standin.webhook_url is None


def test_products_and_prices_are_found_by_lookup_key(client, stripe_standin):
    product = client.v1.products.create({"name": "JagCall Pro", "metadata": {"tier": "pro"}})
    assert product.id.startswith("prod_") and product.object == "product" and product.livemode is False
    assert product.active is True and product.metadata["tier"] == "pro" and product.created <= time.time()
    recurring = {"interval": "month"}
    monthly = client.v1.prices.create({"product": product.id, "unit_amount": 4900, "currency": "usd",
                                       "recurring": recurring, "lookup_key": "pro_monthly", "nickname": "Pro"})
    yearly = client.v1.prices.create({"product": product.id, "unit_amount": 49000, "currency": "usd",
                                      "recurring": {"interval": "year"}, "lookup_key": "pro_yearly"})  # fmt: skip
    assert monthly.id.startswith("price_") and monthly.type == "recurring" and monthly.unit_amount == 4900
    assert monthly.recurring.interval == "month" and monthly.recurring.usage_type == "licensed"
    assert monthly.nickname == "Pro" and monthly.product == product.id and str(monthly.unit_amount_decimal) == "4900"

    found = client.v1.prices.list({"lookup_keys": ["pro_monthly", "pro_yearly"], "expand": ["data.product"]})
    assert {p.lookup_key for p in found.data} == {"pro_monthly", "pro_yearly"}
    assert all(p.product.name == "JagCall Pro" for p in found.data)
    sent = stripe_standin.requests_to("/v1/prices", "GET")[-1]
    assert sent.query["lookup_keys[0]"] == "pro_monthly" and sent.query["expand[0]"] == "data.product"
    assert client.v1.prices.retrieve(monthly.id, {"expand": ["product"]}).product.id == product.id
    assert client.v1.products.retrieve(product.id).name == "JagCall Pro"

    # A lookup key belongs to one price; transfer_lookup_key moves it.
    with pytest.raises(stripe.InvalidRequestError) as taken:
        client.v1.prices.create({"product": product.id, "unit_amount": 5900, "currency": "usd",
                                 "recurring": recurring, "lookup_key": "pro_monthly"})  # fmt: skip
    assert taken.value.param == "lookup_key" and taken.value.http_status == 400
    moved = client.v1.prices.create({"product": product.id, "unit_amount": 5900, "currency": "usd",
                                     "recurring": recurring, "lookup_key": "pro_monthly",
                                     "transfer_lookup_key": True})  # fmt: skip
    assert [p.id for p in client.v1.prices.list({"lookup_keys": ["pro_monthly"]}).data] == [moved.id]
    assert client.v1.prices.retrieve(monthly.id).lookup_key is None
    newest_first = [moved.id, yearly.id, monthly.id]
    assert [p.id for p in client.v1.prices.list({"product": product.id, "active": True}).data] == newest_first

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.products.create({"name": "JagCall", "colour": "red"})
    assert unknown.value.code == "parameter_unknown" and unknown.value.param == "colour"
    with pytest.raises(stripe.InvalidRequestError) as metered:
        client.v1.prices.create({"product": product.id, "unit_amount": 1, "currency": "usd",
                                 "recurring": {"interval": "month", "usage_type": "metered"}})  # fmt: skip
    assert metered.value.param == "recurring[meter]"


def test_customers_are_created_retrieved_updated_listed_and_deleted(client):
    customer = client.v1.customers.create({"email": "owner@acme.test", "name": "Acme Dental",
                                           "metadata": {"organization": "acme", "plan": "trial"}})  # fmt: skip
    assert customer.id.startswith("cus_") and customer.object == "customer" and customer.livemode is False
    assert customer.email == "owner@acme.test" and customer.metadata.to_dict() == {"organization": "acme",
                                                                                   "plan": "trial"}  # fmt: skip
    updated = client.v1.customers.update(customer.id, {"name": "Acme Dental LLC", "metadata": {"plan": ""}})
    assert updated.name == "Acme Dental LLC" and updated.metadata.to_dict() == {"organization": "acme"}
    assert client.v1.customers.retrieve(customer.id).name == "Acme Dental LLC"
    other = client.v1.customers.create({"email": "other@acme.test"})
    assert [c.id for c in client.v1.customers.list({"email": "owner@acme.test"}).data] == [customer.id]

    deleted = client.v1.customers.delete(customer.id)
    assert deleted.id == customer.id and deleted.deleted is True
    assert client.v1.customers.retrieve(customer.id).deleted is True  # as Stripe answers for a deleted one
    with pytest.raises(stripe.InvalidRequestError) as gone:
        client.v1.customers.update(customer.id, {"name": "Acme"})
    assert gone.value.http_status == 404 and gone.value.code == "resource_missing"
    assert [c.id for c in client.v1.customers.list().data] == [other.id]


def test_lists_page_newest_first(client):
    ids = [client.v1.customers.create({"email": f"user{n}@acme.test"}).id for n in range(13)]
    first = client.v1.customers.list({"limit": 5})
    assert first.object == "list" and first.url == "/v1/customers" and first.has_more is True
    assert [c.id for c in first.data] == ids[::-1][:5]
    assert [c.id for c in first.auto_paging_iter()] == ids[::-1]


def test_stripes_errors_for_a_bad_key_an_unknown_id_and_an_unknown_url(client, stripe_standin):
    base = stripe_standin.base_url
    wrong = stripe.StripeClient("sk_test_not-the-key", base_addresses={"api": base})
    with pytest.raises(stripe.AuthenticationError) as refused:
        wrong.v1.customers.list()
    assert refused.value.http_status == 401 and "Invalid API Key provided" in refused.value.user_message
    assert requests.get(base + "/v1/customers", timeout=5).status_code == 401
    basic = requests.get(base + "/v1/customers", auth=(stripe_standin.api_key, ""), timeout=5)  # Basic, as curl -u
    assert basic.status_code == 200 and basic.json()["object"] == "list"

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.customers.retrieve("cus_nope")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    assert missing.value.param == "id" and missing.value.json_body["error"]["type"] == "invalid_request_error"
    assert missing.value.json_body["error"]["message"] == "No such customer: 'cus_nope'"
    for call in (lambda: client.v1.subscriptions.retrieve("sub_nope"), lambda: client.v1.invoices.retrieve("in_nope"),
                 lambda: client.v1.checkout.sessions.retrieve("cs_test_nope")):  # fmt: skip
        with pytest.raises(stripe.InvalidRequestError) as unknown:
            call()
        assert unknown.value.http_status == 404

    nowhere = requests.get(base + "/v1/nowhere", auth=(stripe_standin.api_key, ""), timeout=5)
    assert nowhere.status_code == 404 and "Unrecognized request URL" in nowhere.json()["error"]["message"]


def test_an_idempotency_key_replays_the_first_reply(client, stripe_standin):
    first = client.v1.customers.create({"email": "a@acme.test"}, {"idempotency_key": "signup-1"})
    again = client.v1.customers.create({"email": "a@acme.test"}, {"idempotency_key": "signup-1"})
    assert again.id == first.id
    assert [c.id for c in client.v1.customers.list().data] == [first.id]
    raw = requests.post(stripe_standin.base_url + "/v1/customers", data={"email": "a@acme.test"},
                        headers={"Idempotency-Key": "signup-1"}, auth=(stripe_standin.api_key, ""), timeout=5)
    assert raw.json()["id"] == first.id and raw.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):  # the same key with other parameters
        client.v1.customers.create({"email": "b@acme.test"}, {"idempotency_key": "signup-1"})
    # Without a key of the caller's, the SDK makes one per call: two calls, two customers.
    client.v1.customers.create({"email": "b@acme.test"})
    assert len(client.v1.customers.list().data) == 2


def test_a_retried_meter_event_is_counted_once(stripe_standin):
    base = stripe_standin.base_url
    retrying = stripe.StripeClient(stripe_standin.api_key, base_addresses={"api": base, "meter_events": base},
                                   max_network_retries=2)  # fmt: skip
    stripe_standin.add_meter("call_minutes")
    customer = stripe_standin.add_customer("owner@acme.test")
    stripe_standin.fail_next(503, "Stripe is having a moment", path_prefix="/v1/billing/meter_events")
    event = {"event_name": "call_minutes", "identifier": "call-1",
             "payload": {"stripe_customer_id": customer["id"], "value": "3"}}  # fmt: skip
    accepted = retrying.v1.billing.meter_events.create(event)
    assert accepted.identifier == "call-1" and accepted.object == "billing.meter_event"
    attempts = stripe_standin.requests_to("/v1/billing/meter_events", "POST")
    assert [r.status for r in attempts] == [503, 200]
    assert len({r.header("idempotency-key") for r in attempts}) == 1  # the retry carries the same key

    # The reply was lost and the same request is sent again with its key: replayed, not counted.
    replayed = requests.post(base + "/v1/billing/meter_events", data=attempts[-1].body,
                             headers={"Idempotency-Key": attempts[-1].header("idempotency-key"),
                                      "Content-Type": "application/x-www-form-urlencoded"},
                             auth=(stripe_standin.api_key, ""), timeout=5)  # fmt: skip
    assert replayed.status_code == 200 and replayed.headers["Idempotent-Replayed"] == "true"
    assert stripe_standin.meter_total("call_minutes", customer["id"]) == 3.0
    assert len(stripe_standin.meter_events) == 1 and stripe_standin.duplicate_meter_events == 0


def test_meter_events_are_deduplicated_by_identifier_and_summarised(client, stripe_standin):
    meter = client.v1.billing.meters.create({
        "display_name": "Call minutes", "event_name": "call_minutes", "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "value_settings": {"event_payload_key": "value"},
    })  # fmt: skip
    assert meter.id.startswith("mtr_") and meter.object == "billing.meter" and meter.status == "active"
    assert [m.id for m in client.v1.billing.meters.list().data] == [meter.id]
    assert client.v1.billing.meters.retrieve(meter.id).event_name == "call_minutes"
    price = client.v1.prices.create({"product_data": {"name": "Call minutes"}, "currency": "usd", "unit_amount": 12,
                                     "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id}})
    assert price.recurring.meter == meter.id and price.recurring.usage_type == "metered"
    customer = client.v1.customers.create({"email": "owner@acme.test"})

    now = int(time.time())
    hour = (now - 7200) - (now - 7200) % 3600  # an hour boundary two to three hours ago
    for identifier, at, value in (("call-1", hour + 60, "3"), ("call-2", hour + 120, "2.5"),
                                  ("call-3", hour + 3660, "4")):  # fmt: skip
        client.v1.billing.meter_events.create({"event_name": "call_minutes", "identifier": identifier,
                                               "timestamp": at,
                                               "payload": {"stripe_customer_id": customer.id, "value": value}})
    with pytest.raises(stripe.InvalidRequestError) as repeated:  # [!!] never billed twice
        client.v1.billing.meter_events.create({"event_name": "call_minutes", "identifier": "call-1",
                                               "payload": {"stripe_customer_id": customer.id, "value": "3"}})
    assert repeated.value.http_status == 400 and repeated.value.code == "resource_already_exists"
    assert repeated.value.user_message == "An event already exists with identifier call-1."
    assert stripe_standin.duplicate_meter_events == 1 and len(stripe_standin.meter_events) == 3
    assert stripe_standin.meter_total("call_minutes", customer.id) == 9.5

    refusals = {
        "event_name": {"event_name": "no_such_meter", "payload": {"stripe_customer_id": customer.id, "value": "1"}},
        "payload[value]": {"event_name": "call_minutes", "payload": {"stripe_customer_id": customer.id,
                                                                     "value": "ten"}},
        "payload[stripe_customer_id]": {"event_name": "call_minutes",
                                        "payload": {"stripe_customer_id": "cus_nope", "value": "1"}},
        "timestamp": {"event_name": "call_minutes", "timestamp": now - 40 * 86400,
                      "payload": {"stripe_customer_id": customer.id, "value": "1"}},
    }  # fmt: skip
    for param, params in refusals.items():
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.billing.meter_events.create(params)
        assert refused.value.http_status == 400 and refused.value.param == param
    with pytest.raises(stripe.InvalidRequestError) as no_customer:
        client.v1.billing.meter_events.create({"event_name": "call_minutes", "payload": {"value": "1"}})
    assert no_customer.value.param == "payload[stripe_customer_id]" and no_customer.value.code == "parameter_missing"
    assert stripe_standin.meter_total("call_minutes", customer.id) == 9.5

    window = {"customer": customer.id, "start_time": hour, "end_time": hour + 7200}
    summaries = client.v1.billing.meters.event_summaries.list(meter.id, window)
    assert [(s.start_time, s.end_time, s.aggregated_value) for s in summaries.data] == [(hour, hour + 7200, 9.5)]
    assert summaries.data[0].object == "billing.meter_event_summary" and summaries.data[0].meter == meter.id
    hourly = client.v1.billing.meters.event_summaries.list(meter.id, {**window, "value_grouping_window": "hour"})
    assert [(s.start_time, s.aggregated_value) for s in hourly.data] == [(hour, 5.5), (hour + 3600, 4.0)]
    other = client.v1.customers.create({"email": "other@acme.test"})
    empty = client.v1.billing.meters.event_summaries.list(meter.id, {**window, "customer": other.id})
    assert [s.aggregated_value for s in empty.data] == [0.0]
    with pytest.raises(stripe.InvalidRequestError):  # event summaries take minute boundaries only
        client.v1.billing.meters.event_summaries.list(meter.id, {**window, "start_time": hour + 1})


def test_checkout_on_the_hosted_page_delivers_signed_webhooks_in_order(client, stripe_standin, receiver):
    price = stripe_standin.add_price(product_name="JagCall Pro", unit_amount=4900, lookup_key="pro_monthly")
    customer = client.v1.customers.create({"email": "owner@acme.test", "metadata": {"organization": "acme"}})
    session = client.v1.checkout.sessions.create({
        "mode": "subscription", "customer": customer.id, "line_items": [{"price": price["id"], "quantity": 1}],
        "success_url": SUCCESS_URL, "cancel_url": CANCEL_URL, "client_reference_id": "org_42",
        "metadata": {"organization": "acme"}, "subscription_data": {"metadata": {"organization": "acme"}},
    })  # fmt: skip
    assert session.id.startswith("cs_test_") and session.object == "checkout.session"
    assert session.status == "open" and session.payment_status == "unpaid" and session.amount_total == 4900
    assert session.url == f"{stripe_standin.base_url}/stand-in/checkout/{session.id}"
    sent = stripe_standin.requests_to("/v1/checkout/sessions", "POST")[0].form
    assert sent["line_items[0][price]"] == price["id"] and sent["subscription_data[metadata][organization]"] == "acme"

    page = requests.get(session.url, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Simulated Stripe Checkout — no card is needed, nothing is charged" in page.text
    assert "JagCall Pro" in page.text and "$49 / month" in page.text and ">Subscribe</button>" in page.text
    assert f"href='{CANCEL_URL}'>Back</a>" in page.text
    assert "<input" not in page.text.lower() and "card number" not in page.text.lower()  # [!!] no card field, ever
    assert receiver.received == []

    paid = requests.post(session.url + "/pay", allow_redirects=False, timeout=15)
    assert paid.status_code == 303
    assert paid.headers["Location"] == SUCCESS_URL.replace("{CHECKOUT_SESSION_ID}", session.id)
    # Delivered before the answer, in this order, each signed with the endpoint's secret.
    assert receiver.types() == ["checkout.session.completed", "customer.subscription.created", "invoice.paid"]
    completed, created, invoice_paid = receiver.received
    assert stripe_standin.deliveries == [(completed.id, 200), (created.id, 200), (invoice_paid.id, 200)]
    assert completed.api_version == "2026-10-28.endive" and completed.livemode is False
    subscription = created.data.object
    assert completed.data.object.id == session.id and completed.data.object.client_reference_id == "org_42"
    assert completed.data.object.subscription == subscription.id and completed.data.object.customer == customer.id
    assert completed.data.object.status == "complete" and completed.data.object.payment_status == "paid"
    assert subscription.id.startswith("sub_") and subscription.status == "active"
    assert subscription.customer == customer.id and subscription.metadata.to_dict() == {"organization": "acme"}
    item = subscription["items"].data[0]
    assert item.id.startswith("si_") and item.price.id == price["id"] and item.price.lookup_key == "pro_monthly"
    assert item.quantity == 1 and abs(item.current_period_start - time.time()) < 60
    assert item.current_period_end == add_interval(item.current_period_start, "month")
    invoice = invoice_paid.data.object
    assert invoice.id.startswith("in_") and invoice.status == "paid" and invoice.amount_paid == 4900
    assert invoice.parent.subscription_details.subscription == subscription.id
    assert subscription.latest_invoice == invoice.id

    # The API says the same.
    retrieved = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["subscription"]})
    assert retrieved.status == "complete" and retrieved.subscription.id == subscription.id
    assert retrieved.subscription.status == "active"
    assert [s.id for s in client.v1.subscriptions.list({"customer": customer.id}).data] == [subscription.id]
    invoices = client.v1.invoices.list({"customer": customer.id}).data
    assert [i.id for i in invoices] == [invoice.id] and invoices[0].number.endswith("-0001")
    hosted = requests.get(invoices[0].hosted_invoice_url, timeout=5)
    assert hosted.status_code == 200 and invoices[0].number in hosted.text and "paid" in hosted.text
    assert client.v1.events.retrieve(completed.id).type == "checkout.session.completed"
    assert [e.id for e in client.v1.events.list({"type": "invoice.*"}).data] == [invoice_paid.id]

    again = requests.post(session.url + "/pay", allow_redirects=False, timeout=5)
    assert again.status_code == 400 and "no longer open" in again.text
    assert len(receiver.received) == 3


def test_a_second_checkout_changes_the_subscription_the_customer_has(client, stripe_standin, receiver):
    monthly = stripe_standin.add_price(product_name="Basic", unit_amount=4900)
    yearly = stripe_standin.add_price(product_name="Pro", unit_amount=99000, interval="year")
    customer_id, subscription = _subscribed(client, stripe_standin, monthly["id"])
    receiver.received.clear()
    session = client.v1.checkout.sessions.create({
        "mode": "subscription", "customer": customer_id, "line_items": [{"price": yearly["id"], "quantity": 1}],
        "success_url": SUCCESS_URL,
    })  # fmt: skip
    stripe_standin.complete_checkout(session.id)
    assert receiver.types() == ["checkout.session.completed", "customer.subscription.updated", "invoice.paid"]
    updated = receiver.received[1].data
    assert updated.object.id == subscription.id and updated.object["items"].data[0].price.id == yearly["id"]
    assert updated.previous_attributes["items"].data[0].price.id == monthly["id"]
    item = client.v1.subscriptions.retrieve(subscription.id)["items"].data[0]
    assert item.id == subscription["items"].data[0].id  # the item keeps its id
    assert item.current_period_end == add_interval(item.current_period_start, "year")
    assert len(client.v1.subscriptions.list({"customer": customer_id, "status": "all"}).data) == 1


def test_the_customer_portal_fails_pays_and_cancels(client, stripe_standin, receiver):
    price = stripe_standin.add_price(product_name="JagCall Pro", unit_amount=4900)
    customer_id, subscription = _subscribed(client, stripe_standin, price["id"])
    receiver.received.clear()
    portal = client.v1.billing_portal.sessions.create({"customer": customer_id, "return_url": CANCEL_URL})
    assert portal.id.startswith("bps_") and portal.object == "billing_portal.session"
    assert portal.configuration.startswith("bpc_") and portal.url == f"{stripe_standin.base_url}/stand-in/portal/{portal.id}"

    page = requests.get(portal.url, timeout=5).text
    assert "no card is needed, nothing is charged" in page and "JagCall Pro" in page and "active" in page
    for button in ("Cancel subscription", "Simulate a failed payment"):
        assert f">{button}</button>" in page
    assert f"href='{CANCEL_URL}'>Return to JagCall</a>" in page and "Pay the open invoice" not in page
    assert "<input" not in page.lower()  # [!!]

    failed = requests.post(portal.url + "/fail-payment", allow_redirects=False, timeout=15)
    assert failed.status_code == 303 and failed.headers["Location"] == f"/stand-in/portal/{portal.id}"
    assert receiver.types() == ["invoice.payment_failed", "customer.subscription.updated"]
    past_due = client.v1.subscriptions.retrieve(subscription.id, {"expand": ["latest_invoice"]})
    assert past_due.status == "past_due" and past_due.latest_invoice.status == "open"
    assert past_due.latest_invoice.amount_remaining == 4900
    assert receiver.received[1].data.previous_attributes.status == "active"
    assert ">Pay the open invoice</button>" in requests.get(portal.url, timeout=5).text

    requests.post(portal.url + "/pay-invoice", allow_redirects=False, timeout=15)
    assert receiver.types()[2:] == ["invoice.paid", "customer.subscription.updated"]
    assert client.v1.subscriptions.retrieve(subscription.id).status == "active"
    assert client.v1.invoices.retrieve(past_due.latest_invoice.id).status == "paid"

    requests.post(portal.url + "/cancel", allow_redirects=False, timeout=15)
    assert receiver.types()[4:] == ["customer.subscription.deleted"]
    canceled = client.v1.subscriptions.retrieve(subscription.id)
    assert canceled.status == "canceled" and canceled.canceled_at and canceled.ended_at
    page = requests.get(portal.url, timeout=5).text
    assert "canceled" in page and "Cancel subscription" not in page
    assert all(status == 200 for _, status in stripe_standin.deliveries)


def test_invoice_previews_show_the_prorations_of_a_plan_change(client, stripe_standin):
    basic = stripe_standin.add_price(product_name="Basic", unit_amount=4900, lookup_key="basic")
    pro = stripe_standin.add_price(product_name="Pro", unit_amount=9900, lookup_key="pro")
    customer_id, subscription = _subscribed(client, stripe_standin, basic["id"])
    item = subscription["items"].data[0]
    start, end = item.current_period_start, item.current_period_end
    half = start + (end - start) // 2  # a period is whole days: its half and quarters are whole seconds
    change = {"items": [{"id": item.id, "price": pro["id"]}], "proration_date": half}

    preview = client.v1.invoices.create_preview({
        "customer": customer_id, "subscription": subscription.id,
        "subscription_details": {**change, "proration_behavior": "create_prorations"},
    })  # fmt: skip
    lines = preview.lines.data
    prorated = [(line.amount, line.parent.subscription_item_details.proration) for line in lines]
    assert prorated == [(-2450, True), (4950, True), (9900, False)]  # half of 49 back, half of 99, then 99
    assert lines[0].description.startswith("Unused time on Basic after ") and lines[0].period.start == half
    assert lines[1].description.startswith("Remaining time on Pro after ") and lines[1].period.end == end
    assert (lines[2].period.start, lines[2].period.end) == (end, add_interval(end, "month"))
    assert lines[2].pricing.price_details.price == pro["id"] and lines[2].description == "1 × Pro (at $99 / month)"
    assert (preview.total, preview.amount_due, preview.currency) == (12400, 12400, "usd")
    assert preview.object == "invoice" and preview.status == "draft"

    quarter = end - (end - start) // 4
    immediate = client.v1.invoices.create_preview({
        "subscription": subscription.id, "subscription_details": {
            "items": [{"id": item.id, "price": pro["id"]}], "proration_date": quarter,
            "proration_behavior": "always_invoice"},
    })  # fmt: skip
    assert [line.amount for line in immediate.lines.data] == [-1225, 2475] and immediate.total == 1250

    yearly = stripe_standin.add_price(product_name="Pro", unit_amount=99000, interval="year")
    to_yearly = client.v1.invoices.create_preview({"subscription": subscription.id, "subscription_details": {
        "items": [{"id": item.id, "price": yearly["id"]}], "proration_date": half}})  # fmt: skip
    assert [line.amount for line in to_yearly.lines.data] == [-2450, 99000]  # a new yearly period from the change

    # Made with always_invoice: invoiced (and paid) at once; the period stays.
    updated = client.v1.subscriptions.update(subscription.id, {**change, "proration_behavior": "always_invoice"})
    assert updated["items"].data[0].id == item.id and updated["items"].data[0].price.id == pro["id"]
    assert updated["items"].data[0].current_period_end == end
    invoice = client.v1.invoices.retrieve(updated.latest_invoice)
    assert (invoice.status, invoice.total, invoice.billing_reason) == ("paid", 2500, "subscription_update")
    assert [line.amount for line in client.v1.invoices.create_preview({"subscription": subscription.id}).lines.data] == [9900]

    # Made with create_prorations: the prorations wait for the next invoice.
    client.v1.subscriptions.update(subscription.id, {"items": [{"id": item.id, "price": basic["id"]}],
                                                     "proration_date": quarter})  # fmt: skip
    upcoming = client.v1.invoices.create_preview({"customer": customer_id})
    assert [line.amount for line in upcoming.lines.data] == [-2475, 1225, 4900] and upcoming.total == 3650

    client.v1.subscriptions.cancel(subscription.id)
    with pytest.raises(stripe.InvalidRequestError) as none:
        client.v1.invoices.create_preview({"subscription": subscription.id})
    assert none.value.code == "invoice_upcoming_none"


def test_usage_of_a_metered_item_is_on_the_next_invoice(client, stripe_standin):
    base = stripe_standin.add_price(product_name="JagCall Pro", unit_amount=4900)
    minutes = stripe_standin.add_price(product_name="Call minutes", unit_amount=12, metered_event_name="call_minutes")
    customer_id, subscription = _subscribed(client, stripe_standin, base["id"])
    updated = client.v1.subscriptions.update(subscription.id, {"items": [{"price": minutes["id"]}],
                                                               "proration_behavior": "none"})  # fmt: skip
    metered = updated["items"].data[1]
    assert metered.price.recurring.usage_type == "metered" and "quantity" not in metered
    assert metered.current_period_end == subscription["items"].data[0].current_period_end
    for n in range(3):
        client.v1.billing.meter_events.create({"event_name": "call_minutes", "identifier": f"call-{n}",
                                               "payload": {"stripe_customer_id": customer_id, "value": "10"}})
    upcoming = client.v1.invoices.create_preview({"subscription": subscription.id})
    assert [(line.amount, line.quantity) for line in upcoming.lines.data] == [(4900, 1), (360, 30)]


def test_subscription_changes_through_the_api_are_delivered_in_the_background(client, stripe_standin, receiver):
    price = stripe_standin.add_price(unit_amount=4900)
    customer_id, subscription = _subscribed(client, stripe_standin, price["id"])
    receiver.received.clear()
    end = subscription["items"].data[0].current_period_end

    ending = client.v1.subscriptions.update(subscription.id, {"cancel_at_period_end": True,
                                                              "metadata": {"reason": "too expensive"}})
    assert ending.status == "active" and ending.cancel_at_period_end is True and ending.cancel_at == end
    assert ending.metadata["reason"] == "too expensive"
    canceled = client.v1.subscriptions.cancel(subscription.id)
    assert canceled.status == "canceled" and canceled.ended_at
    assert stripe_standin.flush_deliveries()
    assert receiver.types() == ["customer.subscription.updated", "customer.subscription.deleted"]
    updated = receiver.received[0]
    assert updated.data.previous_attributes.cancel_at_period_end is False
    assert updated.request.id.startswith("req_") and updated.request.idempotency_key  # the SDK's own key

    assert client.v1.subscriptions.list({"customer": customer_id}).data == []
    assert [s.id for s in client.v1.subscriptions.list({"customer": customer_id, "status": "all"}).data] == [
        subscription.id
    ]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(subscription.id, {"items": [{"id": "si_x", "price": price["id"]}]})


def test_test_helpers_set_the_status_and_deliver(client, stripe_standin, receiver):
    price = stripe_standin.add_price(unit_amount=4900)
    customer_id, subscription = _subscribed(client, stripe_standin, price["id"])
    assert stripe_standin.subscription_for(customer_id)["id"] == subscription.id
    receiver.received.clear()

    unpaid = stripe_standin.set_subscription_status(subscription.id, "unpaid")
    assert unpaid["status"] == "unpaid" and receiver.types() == ["customer.subscription.updated"]
    assert receiver.received[0].data.previous_attributes.status == "active"
    stripe_standin.set_subscription_status(subscription.id, "active", deliver=False)
    assert len(receiver.received) == 1 and stripe_standin.events[-1]["type"] == "customer.subscription.updated"
    stripe_standin.set_subscription_status(subscription.id, "canceled")
    assert receiver.types()[-1] == "customer.subscription.deleted"
    assert stripe_standin.subscription_for(customer_id)["status"] == "canceled"
    assert stripe_standin.subscription_for("cus_nobody") is None


def test_webhooks_are_signed_as_stripe_signs_them_and_failed_deliveries_are_kept(stripe_standin):
    event = stripe_standin.make_event("customer.subscription.updated", {"id": "sub_1", "object": "subscription"})
    assert event["id"].startswith("evt_") and event["object"] == "event" and event in stripe_standin.events
    assert stripe_standin.deliver(event) is None and stripe_standin.deliveries == []  # no webhook URL

    with WebhookReceiver("whsec_someone-else") as stranger:
        stripe_standin.webhook_url = stranger.base_url + "/hooks/stripe/"
        assert stripe_standin.deliver(event) == 400 and stranger.received == []
        body, header = stranger.requests[0].body, stranger.requests[0].header("stripe-signature")
    assert header.startswith("t=") and ",v1=" in header
    assert stripe.Webhook.construct_event(body, header, stripe_standin.webhook_secret).id == event["id"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.replace(b"sub_1", b"sub_2"), header, stripe_standin.webhook_secret)

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    stripe_standin.webhook_url = f"http://127.0.0.1:{port}/hooks/stripe/"
    outcome = stripe_standin.deliver(event)  # never raises: the failure is kept
    assert isinstance(outcome, str) and "refused" in outcome.lower()
    assert stripe_standin.deliveries == [(event["id"], 400), (event["id"], outcome)]


def test_an_expired_checkout_cannot_be_paid_and_bad_sessions_are_refused(client, stripe_standin):
    price = stripe_standin.add_price(unit_amount=4900)
    session = client.v1.checkout.sessions.create({
        "mode": "subscription", "customer_email": "new@acme.test", "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL, "line_items": [{"price": price["id"], "quantity": 1}],
    })  # fmt: skip
    url = session.url
    expired = client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired"
    assert "has expired" in requests.get(url, timeout=5).text
    assert requests.post(url + "/pay", allow_redirects=False, timeout=5).status_code == 400
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)

    line = {"price": price["id"], "quantity": 1}
    refused = {
        "line_items[0][price]": {"line_items": [{"price": "price_nope", "quantity": 1}]},
        "line_items[0][quantity]": {"line_items": [{"price": price["id"]}]},
        "customer": {"customer": "cus_nope", "line_items": [line]},
        "success_url": {"line_items": [line], "success_url": None},
    }
    for param, params in refused.items():
        with pytest.raises(stripe.InvalidRequestError) as error:
            client.v1.checkout.sessions.create({"mode": "subscription", "success_url": SUCCESS_URL, **params})
        assert error.value.param == param

    # Without a customer, completing the checkout makes one from customer_email.
    fresh = client.v1.checkout.sessions.create({"mode": "subscription", "customer_email": "new@acme.test",
                                                "success_url": SUCCESS_URL, "line_items": [line]})  # fmt: skip
    completed = stripe_standin.complete_checkout(fresh.id)
    assert client.v1.customers.retrieve(completed["customer"]).email == "new@acme.test"


def test_simulated_mode_runs_the_stripe_stand_in_with_the_simulated_credentials(settings):
    from jagcall.kernel.providers import SIMULATED_CREDENTIALS
    from jagcall.kernel.standins.simulated import start_all

    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000/"
    providers = start_all()
    try:
        standin = providers.standins["stripe"]
        assert providers["stripe"] == standin.base_url
        assert standin.api_key == SIMULATED_CREDENTIALS["stripe"] == "sk_test_simulated-stripe-key"
        assert standin.webhook_secret == SIMULATED_CREDENTIALS["stripe_webhook"]
        assert len(base64.b64decode(standin.webhook_secret.removeprefix("whsec_"))) == 32
        assert standin.webhook_url == "http://127.0.0.1:8000/hooks/stripe/"
        simulated = stripe.StripeClient(SIMULATED_CREDENTIALS["stripe"], base_addresses={"api": standin.base_url})
        assert simulated.v1.customers.list().data == []
    finally:
        providers.stop()
