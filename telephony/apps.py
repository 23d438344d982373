from django.apps import AppConfig


class TelephonyConfig(AppConfig):
    name = "telephony"
    verbose_name = "Telephony: agents, numbers and calls"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Connects its receiver: an own Twilio account holding numbers is not disconnected.
        from telephony.services import twilio_accounts  # noqa: F401

        # `seed_demo` gives Acme Dental a ready agent.
        from accounts.management.commands.seed_demo import demo_organization_ready
        from telephony.demo import demo_agent_create

        demo_organization_ready.connect(demo_agent_create, dispatch_uid="telephony-demo-agent")

        # The plan's ``phone_numbers``: telephony counts the organization's active numbers.
        from accounts.entitlements import register_usage_counter
        from telephony.services.numbers import numbers_in_use

        register_usage_counter("phone_numbers", numbers_in_use)
