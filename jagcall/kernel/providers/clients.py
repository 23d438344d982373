"""The official SDK clients, built one way (docs/security/providers.md).

Each builder takes the platform's credentials from settings unless it is
given an organization's own, points the SDK at ``PROVIDER_BASE_URLS[name]``
when one is set (a stand-in in development and tests), and sets the timeout
(``PROVIDER_TIMEOUT_SECONDS``) and, where the SDK can retry, the retries
(``PROVIDER_MAX_RETRIES``). Every value is passed explicitly: no SDK reads its
own environment variables (OPENAI_BASE_URL, TWILIO_REGION...), so settings are
the one source. Credentials given to a builder are registered for redaction.

Without a credential a builder raises ``ProviderError`` naming the setting to
set, except in simulated mode (DEBUG only), where ``SIMULATED_CREDENTIALS``
stand in (the stand-ins accept them).

The SDKs are imported inside the builders: importing this module is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings

from jagcall.kernel.providers.errors import ProviderError
from jagcall.kernel.providers.redaction import register_secret

if TYPE_CHECKING:
    import anthropic
    import openai
    import stripe
    import twilio.rest
    from deepgram import DeepgramClient
    from elevenlabs.client import ElevenLabs

# Used in simulated mode when no credential is configured (never with DEBUG off).
SIMULATED_CREDENTIALS = {
    "twilio": ("AC" + "0" * 32, "simulated-twilio-auth-token"),
    "openai": "sk-simulated-openai-key",
    "anthropic": "sk-ant-simulated-anthropic-key",
    "deepgram": "simulated-deepgram-key",
    "elevenlabs": "simulated-elevenlabs-key",
    "stripe": "sk_test_simulated-stripe-key",
    "stripe_webhook": "whsec_amFnY2FsbC1zaW11bGF0ZWQtc3RyaXBlLXdlYmhvb2s=",  # base64: jagcall-simulated-stripe-webhook
}


def simulated_mode() -> bool:
    """True when the stand-ins answer for every provider (development only, announced on every page)."""
    return bool(getattr(settings, "SIMULATED_PROVIDERS", False))


def base_url(provider: str) -> str | None:
    """The base URL this provider's SDK is pointed at, or None for the provider itself."""
    return (getattr(settings, "PROVIDER_BASE_URLS", None) or {}).get(provider) or None


def _timeout() -> float:
    return float(settings.PROVIDER_TIMEOUT_SECONDS)


def _key(provider: str, given: str | None, setting: str) -> str:
    key = given if given is not None else getattr(settings, setting, "")
    if key:
        register_secret(key)
        return key
    if simulated_mode():
        return SIMULATED_CREDENTIALS[provider]
    raise ProviderError(
        provider, "connect", f"no credentials are configured: set {setting} (see README.md, Configuration)"
    )


# --- Twilio ------------------------------------------------------------------------------


def twilio_client(
    account_sid: str | None = None, auth_token: str | None = None, *, subaccount_sid: str | None = None
) -> twilio.rest.Client:
    """A Twilio REST client: the platform account's unless ``account_sid``/``auth_token`` are given.

    ``subaccount_sid`` acts on that subaccount with the given (parent) credentials.
    Requests time out after PROVIDER_TIMEOUT_SECONDS; connection failures are retried
    PROVIDER_MAX_RETRIES times (before a request is sent, so never twice). Twilio's SDK
    does not retry 429 or 5xx answers: the caller (a Celery task) does, on a retryable
    ProviderError. [!!] Region and edge are never set: they rewrite the host.
    """
    from twilio.rest import Client

    from jagcall.kernel.providers.twilio_http import BaseUrlTwilioHttpClient

    if (account_sid is None) != (auth_token is None):
        raise ValueError("give both account_sid and auth_token, or neither for the platform account")
    if account_sid is None:
        account_sid, auth_token = settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN
    if not (account_sid and auth_token):
        if not simulated_mode():
            raise ProviderError(
                "twilio", "connect",
                "no credentials are configured: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
                "(see README.md, Configuration)",
            )
        account_sid, auth_token = SIMULATED_CREDENTIALS["twilio"]
    register_secret(auth_token)
    http_client = BaseUrlTwilioHttpClient(
        base_url=base_url("twilio"), timeout=_timeout(), max_retries=settings.PROVIDER_MAX_RETRIES
    )
    return Client(
        username=account_sid,
        password=auth_token,
        account_sid=subaccount_sid or account_sid,
        http_client=http_client,
        environment={},  # not os.environ: TWILIO_REGION / TWILIO_EDGE would move the host
    )


# --- OpenAI, Anthropic --------------------------------------------------------------------------


def openai_client(api_key: str | None = None) -> openai.OpenAI:
    """An OpenAI client (platform key unless ``api_key``); the SDK retries 408/409/429/5xx and connection errors."""
    import openai

    base = base_url("openai")
    return openai.OpenAI(
        api_key=_key("openai", api_key, "OPENAI_API_KEY"),
        base_url=f"{base}/v1" if base else "https://api.openai.com/v1",
        timeout=_timeout(),
        max_retries=settings.PROVIDER_MAX_RETRIES,
    )


def anthropic_client(api_key: str | None = None) -> anthropic.Anthropic:
    """An Anthropic client (platform key unless ``api_key``); the SDK retries 408/409/429/5xx and connection errors."""
    import anthropic

    return anthropic.Anthropic(
        api_key=_key("anthropic", api_key, "ANTHROPIC_API_KEY"),
        base_url=base_url("anthropic") or "https://api.anthropic.com",
        timeout=_timeout(),
        max_retries=settings.PROVIDER_MAX_RETRIES,
    )


# --- Deepgram, ElevenLabs --------------------------------------------------------------------------


def _websocket_url(http_url: str) -> str:
    parts = urlsplit(http_url)
    return parts._replace(scheme="wss" if parts.scheme == "https" else "ws").geturl()


def deepgram_client(api_key: str | None = None) -> DeepgramClient:
    """A Deepgram client (platform key unless ``api_key``); REST and websocket hosts follow the base URL.

    The SDK retries connection errors, 408/409/429 and 5xx PROVIDER_MAX_RETRIES times.
    """
    from deepgram import DeepgramClient, DeepgramClientEnvironment

    key = _key("deepgram", api_key, "DEEPGRAM_API_KEY")
    base = base_url("deepgram")
    environment = DeepgramClientEnvironment.PRODUCTION
    if base:
        # All four: REST, the listen/speak websockets, the agent websocket and the agent's REST.
        environment = DeepgramClientEnvironment(
            base=base, production=_websocket_url(base), agent=_websocket_url(base), agent_rest=base
        )
    return DeepgramClient(
        api_key=key, environment=environment, timeout=_timeout(), max_retries=settings.PROVIDER_MAX_RETRIES
    )


def elevenlabs_client(api_key: str | None = None) -> ElevenLabs:
    """An ElevenLabs client (platform key unless ``api_key``).

    The SDK retries 408/409/429 and 5xx answers twice by itself and has no client-wide
    setting for it: every call passes ``request_options=elevenlabs_request_options()``,
    which retries PROVIDER_MAX_RETRIES times instead.
    """
    from elevenlabs.client import ElevenLabs

    return ElevenLabs(
        api_key=_key("elevenlabs", api_key, "ELEVENLABS_API_KEY"),
        base_url=base_url("elevenlabs") or "https://api.elevenlabs.io",
        timeout=_timeout(),
    )


def elevenlabs_request_options() -> dict:
    """What every ElevenLabs SDK call passes as ``request_options``: the configured retries and timeout."""
    return {"max_retries": int(settings.PROVIDER_MAX_RETRIES), "timeout_in_seconds": _timeout()}


# --- Stripe --------------------------------------------------------------------------------------


def stripe_client() -> stripe.StripeClient:
    """A Stripe client with the platform's secret key, pinned to STRIPE_API_VERSION.

    The SDK retries connection errors, 409, 429 and 5xx answers PROVIDER_MAX_RETRIES times, with an
    idempotency key of its own on every POST, so a retried write is never applied twice. Meter events
    reach the same base URL as the API when one is set (a stand-in).
    """
    import requests
    import stripe

    base = base_url("stripe")
    addresses = {"api": base, "meter_events": base} if base else None
    # The proxy settings of the environment (HTTPS_PROXY, NO_PROXY) are read once here, not on every request:
    # requests would walk the whole environment for each call, a millisecond each in a metering batch.
    session = requests.Session()
    session.trust_env = False
    found = requests.utils.get_environ_proxies(base or "https://api.stripe.com")  # honours NO_PROXY
    proxies = {scheme: found[scheme] for scheme in ("http", "https") if found.get(scheme)}
    http_client = stripe.RequestsClient(timeout=_timeout(), session=session, proxy=proxies or None)
    return stripe.StripeClient(
        _key("stripe", None, "STRIPE_SECRET_KEY"),
        stripe_version=settings.STRIPE_API_VERSION,
        base_addresses=addresses,
        max_network_retries=settings.PROVIDER_MAX_RETRIES,
        http_client=http_client,
    )


def stripe_webhook_secret() -> str:
    """The signing secret of our Stripe webhook endpoint (the simulated one in simulated mode)."""
    secret = getattr(settings, "STRIPE_WEBHOOK_SECRET", "")
    if secret:
        register_secret(secret)
        return secret
    if simulated_mode():
        return SIMULATED_CREDENTIALS["stripe_webhook"]
    return ""
