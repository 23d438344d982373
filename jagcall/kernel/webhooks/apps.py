from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "jagcall.kernel.webhooks"
    label = "webhooks"
    verbose_name = "Signed inbound webhooks"
    default_auto_field = "django.db.models.BigAutoField"
