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
