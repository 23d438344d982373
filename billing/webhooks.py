"""Stripe's webhooks (``/hooks/stripe/``), on the signed inbound base (jagcall/kernel/webhooks/).

- The signature first: ``Stripe-Signature`` checked by the SDK (``stripe.Webhook.construct_event``: HMAC-SHA256
  over "{t}.{body}" with our endpoint's secret, within 300 s), before anything reads the database.
- The event id (``evt_...``) is the dedupe key: a redelivered event changes nothing.
- Whose event: the customer it names (``BillingAccount.stripe_customer_id``). Events of customers that are not
  ours (other products on the same Stripe account) and types we do not handle are acknowledged with 200 and
  ignored, so Stripe does not retry them for three days.
- The work (fetching the subscription from Stripe and applying it) runs in Celery once the delivery is
  recorded: the webhook answers in milliseconds and out-of-order deliveries all end in Stripe's present state.
"""

from __future__ import annotations

import json

from django.db import transaction
from django.http import HttpResponse
from django.urls import path

from billing.selectors import organization_for_customer
from billing.services.events import HANDLED_EVENTS, customer_of
from jagcall.kernel.providers import stripe_webhook_secret
from jagcall.kernel.webhooks import SignedWebhookView

# Stripe's default tolerance: a signature older (or newer) than this is refused, so a captured delivery
# cannot be replayed later.
SIGNATURE_TOLERANCE_SECONDS = 300


class StripeWebhookView(SignedWebhookView):
    provider = "stripe"
    signature_header = "Stripe-Signature"
    organization_required = False

    def signature_valid(self, request) -> bool:
        import stripe

        secret = stripe_webhook_secret()
        if not secret:
            return False
        try:
            stripe.WebhookSignature.verify_header(
                request.body.decode("utf-8"), request.headers.get(self.signature_header, ""), secret,
                SIGNATURE_TOLERANCE_SECONDS,
            )
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            return False
        return True

    def _event(self, request) -> dict:
        cached = getattr(request, "_stripe_event", None)
        if cached is None:
            cached = json.loads(request.body)
            request._stripe_event = cached
        return cached

    def malformed(self, request) -> str | None:
        try:
            event = self._event(request)
        except ValueError:
            return "the body is not JSON."
        if not isinstance(event, dict) or not str(event.get("id", "")).startswith("evt_"):
            return "the event has no id (evt_...)."
        if not isinstance((event.get("data") or {}).get("object"), dict):
            return "the event has no data.object."
        return None

    def event_id(self, request) -> str | None:
        return self._event(request)["id"]

    def organization_for(self, request):
        event = self._event(request)
        return organization_for_customer(customer_of(event["data"]["object"]) or "")

    def handle(self, request, organization) -> HttpResponse:
        event = self._event(request)
        event_type = str(event.get("type", ""))
        if organization is None or event_type not in HANDLED_EVENTS:
            return HttpResponse("Ignored: not an event this endpoint acts on.", content_type="text/plain", status=200)
        from billing.tasks import stripe_event_apply_task

        organization_id = str(organization.id)
        # What the task needs to find the object at Stripe; the snapshot itself is not trusted.
        obj = {key: event["data"]["object"].get(key) for key in ("object", "id", "customer", "subscription", "parent", "amount_due")}
        transaction.on_commit(lambda: stripe_event_apply_task.delay(organization_id, event_type, obj))
        return HttpResponse("Received.", content_type="text/plain", status=200)


urlpatterns = [path("", StripeWebhookView.as_view(), name="stripe")]
