"""Rate limits on the sensitive pages: one table, per client IP, with django-ratelimit.

Contract:
- Every route in SENSITIVE_ROUTES is limited per client IP (the same IP the
  security events record, which honours the trusted proxy), per route, in
  the Redis cache. Above the limit the answer is 429 with Retry-After and a
  page that says how long to wait (JSON error shape for the API's token
  endpoint); the view does not run, so nothing is written.
- These are coarse guards against scripted guessing (invitation tokens,
  reset keys, second-factor codes) and form floods; the finer per-account
  limits on failed sign-ins and resets are allauth's (ACCOUNT_RATE_LIMITS).
- Rates are settings (SENSITIVE_RATE_LIMITS); RATELIMIT_ENABLE turns the
  table off for a deployment that limits at its proxy instead.
- If the cache cannot be reached the request is refused (django-ratelimit
  fails closed), which is also what happens to sessions then.
"""

from __future__ import annotations

import time

from django.conf import settings
from django_ratelimit.core import get_usage

from accounts.security_events import client_ip, emit

# URL name -> the methods that count. A GET counts where the URL itself holds a
# secret that could be guessed (invitation tokens, email and reset keys).
SENSITIVE_ROUTES: dict[str, tuple[str, ...]] = {
    "account_login": ("POST",),
    "account_signup": ("POST",),
    "account_reset_password": ("POST",),
    "account_reset_password_from_key": ("GET", "POST"),
    "account_confirm_email": ("GET", "POST"),
    "mfa_authenticate": ("POST",),
    "mfa_reauthenticate": ("POST",),
    "mfa_activate_totp": ("POST",),
    "account_reauthenticate": ("POST",),
    "accounts:invitation-accept": ("GET", "POST"),
    "api:token-obtain": ("POST",),
    "api:token-refresh": ("POST",),
}


def _ip_key(group: str, request) -> str:
    return client_ip(request) or "unknown"


def _route_name(request) -> str | None:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match else None


class SensitiveRateLimitMiddleware:
    """Applies SENSITIVE_ROUTES before the view runs (process_view: the route is known)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        name = _route_name(request)
        methods = SENSITIVE_ROUTES.get(name)
        if not methods or request.method not in methods:
            return None
        rate = settings.SENSITIVE_RATE_LIMITS.get(name, settings.SENSITIVE_RATE_LIMITS["default"])
        usage = get_usage(
            request, group=f"sensitive:{name}", key=_ip_key, rate=rate, method=list(methods), increment=True
        )
        if usage is None or not usage["should_limit"]:
            return None
        # Whole seconds until the window turns; in its last second that rounds to 0, so say 1.
        retry_after = max(1, int(usage["time_left"]))
        emit("rate_limit.exceeded", request=request, route=name, rate=rate, at=int(time.time()))
        from jagcall.kernel.views import too_many_requests

        return too_many_requests(request, retry_after=retry_after)
