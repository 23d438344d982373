"""Provider clients: the one way the code reaches Twilio, OpenAI, Anthropic, Deepgram
ElevenLabs and Stripe (docs/security/providers.md). The kernel: imports no app.

    from jagcall.kernel.providers import (ProviderError, provider_operation, redact,
        twilio_client, openai_client, anthropic_client, deepgram_client, elevenlabs_client, elevenlabs_request_options,
        stripe_client, stripe_webhook_secret,
        simulated_mode)

Builders (clients.py) return the official SDK clients with credentials, base-URL
overrides (PROVIDER_BASE_URLS), timeouts and retries set; ``provider_operation``
(errors.py) turns any SDK or transport failure into one ``ProviderError`` with a
message a person can act on; ``redact`` (redaction.py) keeps secrets out of
messages and, through ``SecretRedactionFilter``, out of the logs. No SDK is
imported until a client is built or an error classified.
"""

from jagcall.kernel.providers.clients import (
    SIMULATED_CREDENTIALS,
    anthropic_client,
    base_url,
    deepgram_client,
    elevenlabs_client,
    elevenlabs_request_options,
    openai_client,
    simulated_mode,
    stripe_client,
    stripe_webhook_secret,
    twilio_client,
)
from jagcall.kernel.providers.errors import ProviderError, provider_error_from, provider_operation
from jagcall.kernel.providers.redaction import SecretRedactionFilter, redact, register_secret

__all__ = [
    "SIMULATED_CREDENTIALS",
    "ProviderError",
    "SecretRedactionFilter",
    "anthropic_client",
    "base_url",
    "deepgram_client",
    "elevenlabs_client",
    "elevenlabs_request_options",
    "openai_client",
    "provider_error_from",
    "provider_operation",
    "redact",
    "register_secret",
    "simulated_mode",
    "stripe_client",
    "stripe_webhook_secret",
    "twilio_client",
]
