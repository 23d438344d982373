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

        # Password and second-factor changes end the person's other sign-ins; a factor set up
        # in a session counts as passed in it.
        from accounts import access, revocation

        revocation.connect_signals()
        access.connect_signals()

        # Webhooks refused for their signature count against the client's budget (accounts/ratelimits.py).
        from accounts import ratelimits
        from jagcall.kernel.webhooks.signals import webhook_refused

        webhook_refused.connect(ratelimits.count_webhook_refusal, weak=False, dispatch_uid="ratelimits-webhook-refusal")

        # The encryption kernel imports no app: it learns the tenants from here, and
        # destroys an organization's keys when its row is deleted (crypto-shredding).
        from jagcall.kernel.crypto.registry import register_tenant_model

        register_tenant_model(self.get_model("Organization"), handle_field="slug")

        # The API schema's kernel imports no app: accounts tells it which views are
        # organization-bound and how its credentials are described.
        from accounts.api import schema

        schema.register()
