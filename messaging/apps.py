from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging: contacts, SMS conversations and opt-outs"
    default_auto_field = "django.db.models.BigAutoField"
