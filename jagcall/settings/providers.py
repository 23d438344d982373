"""Outside providers: credentials, base-URL overrides, timeouts, the public
origin their webhooks reach, and simulated mode (jagcall/kernel/providers/,
docs/security/providers.md)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.env import env, is_set
from jagcall.settings.core import DEBUG, EMBEDDED_SERVICES_ALLOWED, SITE_URL

# --- credentials (the platform's own accounts) ------------------------------------
# An organization may bring its own (integrations/); these are the platform's.
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", default="")
TWILIO_API_KEY_SID = env("TWILIO_API_KEY_SID", default="")
TWILIO_API_KEY_SECRET = env("TWILIO_API_KEY_SECRET", default="")
TWILIO_TWIML_APP_SID = env("TWILIO_TWIML_APP_SID", default="")
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
ANTHROPIC_API_KEY = env("ANTHROPIC_API_KEY", default="")
DEEPGRAM_API_KEY = env("DEEPGRAM_API_KEY", default="")
ELEVENLABS_API_KEY = env("ELEVENLABS_API_KEY", default="")
# Stripe: the secret key (sk_live_... or a restricted rk_live_...) and the signing secret of the
# webhook endpoint registered for PUBLIC_BASE_URL/hooks/stripe/ (whsec_...).
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
PROVIDER_SECRET_SETTINGS = (
    "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SECRET", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
    "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
)

# --- where the SDKs connect -----------------------------------------------------------
# "twilio=http://127.0.0.1:9001,openai=http://127.0.0.1:9002": each named SDK talks to
# that base URL instead of the provider (the stand-ins of jagcall/kernel/standins/ in
# development and tests). Empty in production.
PROVIDER_NAMES = ("twilio", "openai", "anthropic", "deepgram", "elevenlabs", "stripe")


def _origin(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ImproperlyConfigured(f"{name} must be an http(s) URL such as https://app.example.com, got {value!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ImproperlyConfigured(f"{name} must hold no credentials, query or fragment, got {value!r}")
    return value.rstrip("/")


def _provider_base_urls(raw: list[str]) -> dict[str, str]:
    urls: dict[str, str] = {}
    for item in raw:
        provider, sep, url = item.partition("=")
        provider = provider.strip().lower()
        if not sep or provider not in PROVIDER_NAMES:
            raise ImproperlyConfigured(
                f"PROVIDER_BASE_URLS takes name=url pairs, comma-separated, with names among "
                f"{', '.join(PROVIDER_NAMES)}; got {item!r}"
            )
        if provider in urls:
            raise ImproperlyConfigured(f"PROVIDER_BASE_URLS names {provider} twice")
        urls[provider] = _origin(f"PROVIDER_BASE_URLS[{provider}]", url.strip())
    return urls


PROVIDER_BASE_URLS = _provider_base_urls(env("PROVIDER_BASE_URLS", default=[], cast=list))
# [!!] In production a base URL may only move an SDK to another https endpoint of the
# provider (a data-residency host, say): a plain-http one would send the credentials
# in the clear to whatever answers there.
if not EMBEDDED_SERVICES_ALLOWED:
    _plain = sorted(name for name, url in PROVIDER_BASE_URLS.items() if not url.startswith("https://"))
    if _plain:
        raise ImproperlyConfigured(
            f"PROVIDER_BASE_URLS for {', '.join(_plain)} is plain http; with DEBUG off only https base URLs "
            f"are accepted (leave PROVIDER_BASE_URLS empty to reach the providers themselves)."
        )

# Seconds an SDK waits for a provider's answer, and how many times the SDKs that can
# retry do so (connection failures, 429 and 5xx answers).
PROVIDER_TIMEOUT_SECONDS = env("PROVIDER_TIMEOUT_SECONDS", default=10, cast=int)
PROVIDER_MAX_RETRIES = env("PROVIDER_MAX_RETRIES", default=2, cast=int)
if PROVIDER_TIMEOUT_SECONDS < 1:
    raise ImproperlyConfigured(f"PROVIDER_TIMEOUT_SECONDS must be at least 1, got {PROVIDER_TIMEOUT_SECONDS}")
if PROVIDER_MAX_RETRIES < 0:
    raise ImproperlyConfigured(f"PROVIDER_MAX_RETRIES must be 0 or more, got {PROVIDER_MAX_RETRIES}")

# --- the public origin providers call back -----------------------------------------
# Webhook signatures (Twilio's) are checked against PUBLIC_BASE_URL + the request's
# path and query, and media-stream URLs (wss://) are derived from it. Defaults to
# SITE_URL. [!!] With DEBUG off it must be https: Twilio signs the URL it was given,
# and call audio and callbacks must never travel in the clear.
PUBLIC_BASE_URL = _origin("PUBLIC_BASE_URL", env("PUBLIC_BASE_URL", default=SITE_URL))
if urlsplit(PUBLIC_BASE_URL).path not in {"", "/"}:
    raise ImproperlyConfigured(f"PUBLIC_BASE_URL must be an origin (scheme and host only), got {PUBLIC_BASE_URL!r}")
if not EMBEDDED_SERVICES_ALLOWED and not PUBLIC_BASE_URL.startswith("https://"):
    raise ImproperlyConfigured(
        f"PUBLIC_BASE_URL must be https when DEBUG is off, got {PUBLIC_BASE_URL!r}"
        + ("" if is_set("PUBLIC_BASE_URL") else " (taken from SITE_URL)")
        + ". Set PUBLIC_BASE_URL to the public https origin, e.g. https://app.example.com."
    )

# --- simulated mode ----------------------------------------------------------------
# With DEBUG on and no provider key set, the stand-ins answer for every provider
# (`make run`), and every page says so. [!!] Refused with DEBUG off.
_any_provider_key = any(
    is_set(name)
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
                 "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY", "STRIPE_SECRET_KEY")
)
SIMULATED_PROVIDERS = env("SIMULATED_PROVIDERS", default=DEBUG and not _any_provider_key, cast=bool)
if SIMULATED_PROVIDERS and not EMBEDDED_SERVICES_ALLOWED:
    raise ImproperlyConfigured(
        "SIMULATED_PROVIDERS is for development only and is refused when DEBUG is off; "
        "unset it and set the providers' credentials (see README.md, Configuration)."
    )
