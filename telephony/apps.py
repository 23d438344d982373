from django.apps import AppConfig


class TelephonyConfig(AppConfig):
    name = "telephony"
    verbose_name = "Telephony: agents, numbers and calls"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Connects its receiver: an own Twilio account holding numbers is not disconnected.
        from telephony.services import twilio_accounts  # noqa: F401
