"""Billing: the Stripe API version, the grace period of a failed payment, metering and spend caps."""

from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env

# The Stripe API version every request pins (the SDK's own, so its types match what Stripe answers).
STRIPE_API_VERSION = env("STRIPE_API_VERSION", default="2026-10-28.endive")
# Days a past-due organization keeps full service (with a banner) before it is restricted.
BILLING_GRACE_DAYS = env("BILLING_GRACE_DAYS", default=7, cast=int)
# Stripe meters (created by `manage.py billing_prices_sync`) that usage is reported to, by event name.
BILLING_METER_EVENT_NAMES = {
    "call_minutes": env("BILLING_METER_CALL_MINUTES", default="jagcall_call_minutes"),
    "sms_segments": env("BILLING_METER_SMS_SEGMENTS", default="jagcall_sms_segments"),
}
# How many usage events one metering task sends, and how many requests to Stripe it keeps in flight.
BILLING_METER_BATCH_SIZE = env("BILLING_METER_BATCH_SIZE", default=500, cast=int)
BILLING_METER_CONCURRENCY = env("BILLING_METER_CONCURRENCY", default=8, cast=int)
# Owners are told when the month's usage charges reach this share of their spend cap (and again at 100%).
BILLING_CAP_WARNING_PERCENT = env("BILLING_CAP_WARNING_PERCENT", default=80, cast=int)
# A usage record queues a check of its organization's spend cap, run this many seconds later: the usage
# recorded meanwhile (by this process) is covered by that same check. 0 queues one check per record, at once.
BILLING_CAP_CHECK_SECONDS = env("BILLING_CAP_CHECK_SECONDS", default=5, cast=float)
if BILLING_CAP_CHECK_SECONDS < 0:
    raise ImproperlyConfigured("BILLING_CAP_CHECK_SECONDS must be 0 (a check per usage record) or more.")
