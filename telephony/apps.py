from django.apps import AppConfig


class TelephonyConfig(AppConfig):
    name = "telephony"
    verbose_name = "Telephony: agents, numbers and calls"
    default_auto_field = "django.db.models.BigAutoField"
