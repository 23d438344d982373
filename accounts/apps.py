from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and organizations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import security_events  # noqa: F401  (connects the signal receivers)
