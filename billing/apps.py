from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing: plans, Stripe subscriptions, usage and spend caps"
    default_auto_field = "django.db.models.BigAutoField"
