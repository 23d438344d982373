"""Rate limits on every unauthenticated endpoint: one table, per client network and per target.

Contract:
- Every route in SENSITIVE_ROUTES is limited before its view runs, in the
  Redis cache (django-ratelimit's counters, fixed windows), twice:
  - per client network and route: the client IP as the security events
    record it (honouring the trusted proxy); IPv4 per address, IPv6 per /64,
    because whoever has one IPv6 address usually has the whole /64
    (``client_network``). Rates: SENSITIVE_RATE_LIMITS.
  - per target, where the route names one: the account (normalized email,
    or the user) for sign-in, reset and the second factor; the organization
    for single sign-on and invitations; the OAuth client for its token
    endpoints. Routes that guard the same thing share one budget (the
    sign-in page and the API's token endpoint both guess one account's
    password), so a flood from many addresses still stops at the target's
    budget. Rates: SENSITIVE_TARGET_RATE_LIMITS. A request already refused
    for its client is not counted against the target, so one noisy address
    cannot spend a person's budget on its own.
- Above a limit the answer is 429 with Retry-After and a page that says how
  long to wait (the API's JSON error shape under /api/, OAuth's error shape
  on the OAuth endpoints); the view does not run, so nothing is written.
  Each refusal is a ``rate_limit.exceeded`` security event; the audit log
  bounds how many of those it keeps per window (compliance/services/sources.py).
- [!!] If Redis cannot be reached, the request is refused with 503 ("briefly
  unavailable, try again shortly", Retry-After): these endpoints are where
  guessing happens, so they fail closed. The failure is logged, not sent as
  a security event (that would write one audit row per refused request).
  The authenticated API's limiter fails open instead (docs/api.md).
- Other apps add their own unauthenticated routes with ``register_route``
  from their AppConfig.ready, or wrap a view with ``rate_limited``; both use
  the same check and the same settings.
- Signed inbound webhooks (``/hooks/<provider>/``, views deriving from
  jagcall.kernel.webhooks.SignedWebhookView) need no row: every such route
  is limited by its view class, so mounting one cannot skip it. There the
  refusals are counted, not the deliveries (``webhook_check``).
- RATELIMIT_ENABLE=false turns the table off for a deployment that limits at
  its proxy instead.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_plus

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_ratelimit.core import get_usage

from accounts.security_events import client_ip, emit

logger = logging.getLogger(__name__)

# Seconds a client is asked to wait when the limiter itself is unreachable.
UNAVAILABLE_RETRY_AFTER = 30
_UNAVAILABLE_MESSAGE = "This endpoint is briefly unavailable on our side. Try again in a minute."
# What the cache raises when Redis is down or times out (Django's RedisCache passes redis-py's errors on).
_REDIS_DOWN = (redis.RedisError, ConnectionError, TimeoutError, OSError)

Target = Callable[[HttpRequest, dict], "str | None"]


@dataclass(frozen=True)
class Limit:
    """How one route is limited.

    ``methods``: the methods that count (a GET counts where the URL itself
    holds a secret that could be guessed). ``budget``: the name of the
    per-target budget (a key of SENSITIVE_TARGET_RATE_LIMITS), with
    ``target`` saying what the request aims at (None: nothing known, only
    the client limit applies). ``answer``: how a refusal reads, ``page``
    (HTML; the API's JSON error shape under /api/), ``oauth`` (RFC 6749's
    ``{"error", "error_description"}``, which OAuth clients parse) or
    ``plain`` (a line of text, for providers' webhooks).
    """

    methods: tuple[str, ...]
    budget: str | None = None
    target: Target | None = None
    answer: str = "page"


# --- what a request aims at -------------------------------------------------------------


def _normalized_email(value) -> str | None:
    email = str(value or "").strip().lower()
    return f"email:{email[:254]}" if email else None


def _posted(field: str) -> Target:
    def target(request, kwargs):
        return _normalized_email(request.POST.get(field))

    target.__name__ = f"posted_{field}"
    return target


def _json_email(request, kwargs) -> str | None:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None  # the view answers 400; the client limit still counted it
    return _normalized_email(body.get("email")) if isinstance(body, dict) and isinstance(body.get("email"), str) else None


def _signed_in_user(request, kwargs) -> str | None:
    from allauth.account.utils import user_pk_to_url_str

    user = getattr(request, "user", None)
    return f"user:{user_pk_to_url_str(user)}" if user is not None and user.is_authenticated else None


def _signed_in_email(request, kwargs) -> str | None:
    # Re-authentication guesses the same password as the sign-in page: the same key, by email.
    user = getattr(request, "user", None)
    return _normalized_email(user.email) if user is not None and user.is_authenticated else None


def _pending_sign_in(request, kwargs) -> str | None:
    """The person a sign-in in progress waits on (allauth keeps it in the session until the second factor)."""
    from allauth.account.internal.stagekit import LOGIN_SESSION_KEY

    pending = request.session.get(LOGIN_SESSION_KEY)
    user_pk = pending.get("user_pk") if isinstance(pending, dict) else None
    return f"user:{user_pk}" if user_pk else _signed_in_user(request, kwargs)


def _reset_key_user(request, kwargs) -> str | None:
    # The same encoding of the user's id as in _pending_sign_in (allauth's user_pk_to_url_str).
    uid = str(kwargs.get("uidb36") or "").lower()[:64]
    return f"user:{uid}" if uid else None


def _sso_organization(request, kwargs) -> str | None:
    # The SSO slug names one organization's configuration; an unknown one is refused by the view.
    slug = str(kwargs.get("sso_slug") or "").lower()[:100]
    return f"sso:{slug}" if slug else None


def _invitation_organization(request, kwargs) -> str:
    """The organization an invitation link belongs to; every unknown token shares one budget.

    Guessing tokens from many addresses therefore stops at that one budget,
    and never at a real organization's.
    """
    from accounts.services import invitation_find
    from jagcall.kernel.errors import ApplicationError

    try:
        invitation = invitation_find(token=str(kwargs.get("token") or "")[:200])
    except ApplicationError:
        return "invitation:unknown"
    return f"organization:{invitation.organization_id}"


def _oauth_client(request, kwargs) -> str | None:
    """The client id, from the form (public clients) or HTTP Basic (confidential ones, RFC 6749 2.3.1)."""
    client_id = request.POST.get("client_id") or ""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not client_id and header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        client_id = unquote_plus(decoded.split(":", 1)[0])
    client_id = client_id.strip()[:100]
    return f"oauth-client:{client_id}" if client_id else None


# URL name -> how it is limited. Budgets shared by several routes: "sign_in" (an account's
# password, whether guessed on the page, by the API's token endpoint or at re-authentication),
# "second_factor" (an account's codes).
SENSITIVE_ROUTES: dict[str, Limit] = {
    "account_login": Limit(("POST",), "sign_in", _posted("login")),
    "account_reauthenticate": Limit(("POST",), "sign_in", _signed_in_email),
    "api:token-obtain": Limit(("POST",), "sign_in", _json_email),
    "api:token-refresh": Limit(("POST",)),
    "api:token-revoke": Limit(("POST",)),
    "account_signup": Limit(("POST",), "registration", _posted("email")),
    "account_reset_password": Limit(("POST",), "password_reset", _posted("email")),
    "account_reset_password_from_key": Limit(("GET", "POST"), "password_reset_key", _reset_key_user),
    "account_confirm_email": Limit(("GET", "POST")),
    "mfa_authenticate": Limit(("POST",), "second_factor", _pending_sign_in),
    "mfa_reauthenticate": Limit(("POST",), "second_factor", _signed_in_user),
    "mfa_reauthenticate_webauthn": Limit(("POST",), "second_factor", _signed_in_user),
    "account_confirm_login_code": Limit(("POST",), "second_factor", _pending_sign_in),
    "mfa_activate_totp": Limit(("POST",)),
    "accounts:invitation-accept": Limit(("GET", "POST"), "invitation", _invitation_organization),
    "sso:login": Limit(("GET", "HEAD"), "single_sign_on", _sso_organization),
    "sso:acs": Limit(("POST",), "single_sign_on", _sso_organization),
    "oauth:token": Limit(("POST",), "oauth_client", _oauth_client, answer="oauth"),
    "oauth:revoke-token": Limit(("POST",), "oauth_client", _oauth_client, answer="oauth"),
}


def register_route(name: str, limit: Limit) -> None:
    """Limit another app's unauthenticated route (e.g. ``/hooks/<provider>/``) by its URL name.

    Call it from the app's ``AppConfig.ready``. Its rates are the settings'
    (``SENSITIVE_RATE_LIMITS[name]`` or the default, and
    ``SENSITIVE_TARGET_RATE_LIMITS[limit.budget]``).
    """
    existing = SENSITIVE_ROUTES.get(name)
    if existing is not None and existing != limit:
        raise ValueError(f"{name} is already rate limited differently; change its row in accounts/ratelimits.py.")
    if limit.budget is not None and limit.target is None:
        raise ValueError(f"{name}: a budget needs a target (what the request aims at).")
    SENSITIVE_ROUTES[name] = limit


# --- the check ----------------------------------------------------------------------------


def client_network(request) -> str:
    """The client as the limits count it: an IPv4 address, or an IPv6 address's /64."""
    ip = client_ip(request) or ""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return "unknown"
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _client_rate(name: str) -> str:
    rates = settings.SENSITIVE_RATE_LIMITS
    return rates.get(name, rates["default"])


def _target_rate(budget: str) -> str | None:
    return settings.SENSITIVE_TARGET_RATE_LIMITS.get(budget)


def _count(request, *, group: str, value: str, rate: str) -> int | None:
    """Count one request; the seconds to wait if it is over the limit, else None."""
    usage = get_usage(request, group=group, key=lambda _group, _request: value, rate=rate, increment=True)
    if usage is None or not usage["should_limit"]:
        return None
    # Whole seconds until the window turns; in its last second that rounds to 0, so say 1.
    return max(1, int(usage["time_left"]))


def check(request, *, name: str, limit: Limit, view_kwargs: dict | None = None) -> HttpResponse | None:
    """None when ``request`` may go on to ``name``'s view; else the refusal to send (429 or 503)."""
    if request.method not in limit.methods:
        return None
    view_kwargs = view_kwargs or {}
    client = client_network(request)
    try:
        rate, limited_by, target = _client_rate(name), "client", None
        retry_after = _count(request, group=f"sensitive:{name}", value=client, rate=rate)
        if retry_after is None and limit.budget is not None:
            target = limit.target(request, view_kwargs)
            target_rate = _target_rate(limit.budget)
            if target and target_rate:
                rate, limited_by = target_rate, limit.budget
                retry_after = _count(request, group=f"target:{limit.budget}", value=target, rate=rate)
    except _REDIS_DOWN:
        logger.error("rate limiter unreachable: refusing %s with 503", name, exc_info=True)
        return unavailable(request, limit)
    if retry_after is None:
        return None
    emit(
        "rate_limit.exceeded",
        request=request,
        route=name,
        rate=rate,
        limited_by=limited_by,
        client=client,
        target=target if limited_by != "client" else None,
        at=int(time.time()),
    )
    return too_many(request, limit, retry_after=retry_after)


def too_many(request, limit: Limit, *, retry_after: int) -> HttpResponse:
    if limit.answer == "plain":
        response = HttpResponse(
            f"Too many requests. Wait {retry_after} seconds and try again.\n", status=429, content_type="text/plain"
        )
        response["Retry-After"] = str(retry_after)
        return response
    if limit.answer == "oauth":
        response = JsonResponse(
            {"error": "slow_down", "error_description": f"Too many requests. Wait {retry_after} seconds and try again."},
            status=429,
        )
        response["Retry-After"] = str(retry_after)
        return response
    from jagcall.kernel.views import too_many_requests

    return too_many_requests(request, retry_after=retry_after)


def unavailable(request, limit: Limit) -> HttpResponse:
    if limit.answer == "plain":
        response = HttpResponse(_UNAVAILABLE_MESSAGE + "\n", status=503, content_type="text/plain")
        response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
        return response
    if limit.answer == "oauth":
        response = JsonResponse(
            {"error": "temporarily_unavailable", "error_description": _UNAVAILABLE_MESSAGE}, status=503
        )
        response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
        return response
    from jagcall.kernel.views import service_unavailable

    return service_unavailable(request, retry_after=UNAVAILABLE_RETRY_AFTER)


# --- signed inbound webhooks (jagcall.kernel.webhooks) --------------------------------------
#
# A provider delivers from shared addresses, in bursts that follow its customers' traffic (every
# call of a busy account), and each delivery carries its own credential: the signature, checked
# before anything reads the database. So deliveries are not counted; refusals are. Each request
# refused for its signature (the webhook_refused signal) counts against its client network, and a
# client past SENSITIVE_RATE_LIMITS[view.rate_limit_route] ("hooks") in a window gets 429 on
# every webhook route of that budget, before its signature is checked, until the window turns.
# A refusal answered 429 is a ``rate_limit.exceeded`` security event (bounded by the audit log).
# [!!] Redis down: 503, like the table above (the audit log's flood bounds live there too).

WEBHOOK_LIMIT = Limit(("POST",), answer="plain")


def _webhook_view_class(view_func) -> type | None:
    from jagcall.kernel.webhooks.views import SignedWebhookView

    view_class = getattr(view_func, "view_class", None)
    return view_class if isinstance(view_class, type) and issubclass(view_class, SignedWebhookView) else None


def _webhook_refusals(request, route: str, *, increment: bool) -> dict | None:
    client = client_network(request)
    group, rate = f"webhook-refusals:{route}", _client_rate(route)
    if not increment:
        return _refusals_read(group, client, rate)
    return get_usage(request, group=group, key=lambda _group, _request: client, rate=rate, increment=True)


def _refusals_read(group: str, client: str, rate: str) -> dict | None:
    """What ``get_usage(..., increment=False)`` answers for the counter ``get_usage(..., increment=True)`` keeps.

    [!!] Every webhook delivery asks before its signature is checked. ``get_usage`` reads with an ADD of a zero
    (a write) and then a GET, two round trips to Redis and most of a millisecond; one GET of the same key, as
    the library makes it (django-ratelimit is pinned), answers the same. A key that is not there is a count of
    0. Redis unreachable raises, and the caller answers 503.
    """
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    from django.core.cache import caches
    from django_ratelimit import core

    limit, period = core._split_rate(rate)
    window = core._get_window(client, period)
    key = core._make_cache_key(group, window, rate, client, core.ALL)
    count = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")].get(key, 0)
    return {"count": count, "limit": limit, "should_limit": count > limit, "time_left": window - int(core.time.time())}


def webhook_check(request, view_class) -> HttpResponse | None:
    """None when ``request`` may reach the webhook view; else 429 (too many refusals) or 503."""
    if request.method not in WEBHOOK_LIMIT.methods:
        return None
    route = view_class.rate_limit_route
    try:
        usage = _webhook_refusals(request, route, increment=False)
    except _REDIS_DOWN:
        usage = {"limit": 0, "time_left": -1}
    if usage is None:  # RATELIMIT_ENABLE=false
        return None
    if usage["limit"] == 0 and usage["time_left"] == -1:  # the counter could not be read
        logger.error("rate limiter unreachable: refusing webhook %s with 503", request.path[:300])
        return unavailable(request, WEBHOOK_LIMIT)
    if usage["count"] < usage["limit"]:
        return None
    retry_after = max(1, int(usage["time_left"]))
    emit(
        "rate_limit.exceeded",
        request=request,
        route=route,
        rate=_client_rate(route),
        limited_by="webhook_refusals",
        client=client_network(request),
        target=None,
        at=int(time.time()),
    )
    return too_many(request, WEBHOOK_LIMIT, retry_after=retry_after)


def count_webhook_refusal(sender, *, request=None, **kwargs) -> None:
    """Receiver of jagcall.kernel.webhooks' ``webhook_refused``: one more refusal for this client."""
    if request is None:
        return
    try:
        _webhook_refusals(request, getattr(sender, "rate_limit_route", "hooks"), increment=True)
    except _REDIS_DOWN:
        logger.error("rate limiter unreachable: webhook refusal not counted", exc_info=True)


def _route_name(request) -> str | None:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match else None


class SensitiveRateLimitMiddleware:
    """Applies SENSITIVE_ROUTES, and the webhook refusals' budget, before the view runs (process_view:
    the route, its view and its arguments are known)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        name = _route_name(request)
        limit = SENSITIVE_ROUTES.get(name)
        if limit is None:
            view_class = _webhook_view_class(view_func)
            return webhook_check(request, view_class) if view_class is not None else None
        return check(request, name=name, limit=limit, view_kwargs=view_kwargs)


def rate_limited(name: str, limit: Limit):
    """Decorator for a view that is not in the table by URL name (same check, same settings).

    ``name`` is the rate's key in SENSITIVE_RATE_LIMITS and the group its
    counts are kept under; use the view's URL name where it has one.
    """

    def decorator(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            refused = check(request, name=name, limit=limit, view_kwargs=kwargs)
            return refused if refused is not None else view(request, *args, **kwargs)

        return wrapped

    return decorator
