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

        # The plan's limits: what accounts counts (seats), and the API budgets of an organization's callers
        # (the kernel's throttle asks for them without knowing plans).
        from accounts.entitlements import register_usage_counter
        from accounts.services import seats_in_use
        from jagcall.kernel.api.throttling import register_limits_resolver

        register_usage_counter("seats", seats_in_use)
        register_limits_resolver(api_limits_of_plan)


def api_limits_of_plan(request) -> tuple[int, int] | None:
    """(reads, writes) per window for a caller of ``request.organization``: its plan's budgets.

    The plans give budgets a minute; API_RATE_LIMIT_READS / API_RATE_LIMIT_WRITES are the budgets per
    window of the default plan (Starter's 200 and 30 a minute), and every plan's budget keeps its ratio to
    Starter's. So with the standard settings a Pro organization's key gets 600 reads a minute, and an
    operator (or a test, or a benchmark) who lowers or raises the settings scales every plan alike.
    None without an organization: the settings apply as they are.
    """
    from django.conf import settings

    from accounts.entitlements import DEFAULT_PLAN, PLANS, plan_limit

    organization = getattr(request, "organization", None)
    if organization is None:
        return None
    baseline = PLANS[DEFAULT_PLAN].limits
    budgets = []
    for name, configured in (
        ("api_reads_per_minute", settings.API_RATE_LIMIT_READS),
        ("api_writes_per_minute", settings.API_RATE_LIMIT_WRITES),
    ):
        budgets.append(max(1, round(configured * plan_limit(organization, name) / baseline[name])))
    return budgets[0], budgets[1]
