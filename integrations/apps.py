from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations: an organization's own provider credentials"
    default_auto_field = "django.db.models.BigAutoField"
