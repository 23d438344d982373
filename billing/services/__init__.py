"""Billing's writes, one module per concern:

- ``customers``: the organization's BillingAccount and its Stripe customer (created on first need);
- ``checkout``: Stripe Checkout for a new subscription, the Customer Portal, the return from either;
- ``subscriptions``: the subscription as fetched from Stripe -> the organization's plan and standing,
  plan changes with a proration preview, the grace period, complimentary plans and credits;
- ``usage``: the usage ledger (minutes, SMS segments), spend caps and their notices;
- ``metering``: usage to Stripe meter events in batches, and the daily reconciliation;
- ``events``: what a Stripe webhook event sets going.
"""
