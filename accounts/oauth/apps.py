from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "accounts.oauth"
    label = "oauth"
    verbose_name = "OAuth applications and tokens"
    default_auto_field = "django.db.models.BigAutoField"
