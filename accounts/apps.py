from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and organizations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import mfa, security_events  # noqa: F401  (connects the signal receivers)

        mfa.install_totp_reuse_guard()
        mfa.register_sealed_source()
        mfa.connect_signals()

        # The API schema's kernel imports no app: accounts tells it which views are
        # organization-bound and how its credentials are described.
        from accounts.api import schema

        schema.register()
