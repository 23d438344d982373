"""An organization's own provider credentials ("bring your own account").

The secret is encrypted with the organization's keys; after saving it is
only ever shown as its last four characters. ``values`` holds what the
provider needs (Twilio: account SID and auth token; the others: an API
key), so one model covers every provider.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.tenancy import OrganizationOwned
from jagcall.kernel.crypto.fields import EncryptedJSONField


class Provider(models.TextChoices):
    TWILIO = "twilio", "Twilio"
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    DEEPGRAM = "deepgram", "Deepgram"
    ELEVENLABS = "elevenlabs", "ElevenLabs"


class ProviderCredential(OrganizationOwned):
    provider = models.CharField(max_length=20, choices=Provider.choices)
    # {"api_key": ...} or, for Twilio, {"account_sid": ..., "auth_token": ...}
    values = EncryptedJSONField()
    # Not secret: what the portal shows ("…4f2a") and, for Twilio, the account SID.
    last4 = models.CharField(max_length=4)
    account_sid = models.CharField(max_length=34, blank=True, db_index=True)
    verified_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "provider"], name="integrations_one_credential_per_provider"),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} …{self.last4}"
