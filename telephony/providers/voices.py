"""The ElevenLabs voices an organization's agents may speak with.

The list comes from the ElevenLabs SDK (``voices.get_all``) with the
organization's own ElevenLabs key when it brought one
(integrations.ProviderCredential), else the platform's. It is cached for ten
minutes per key owner (the platform, or one organization and the key it
holds now), so the agent editor and every agent save do not each ask
ElevenLabs.

A failure is remembered for a minute (``FAILURE_CACHE_SECONDS``), so that
while ElevenLabs is down the editor does not wait for its timeouts on every
page; ``voice_catalog`` turns it into a sentence the agent editor shows as is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.core.cache import cache

from integrations.models import Provider, ProviderCredential
from jagcall.kernel.providers import (
    ProviderError,
    base_url,
    elevenlabs_client,
    elevenlabs_request_options,
    provider_operation,
)

CACHE_SECONDS = 10 * 60
FAILURE_CACHE_SECONDS = 60
_CACHE_PREFIX = "telephony:voices:v1"


@dataclass(frozen=True)
class Voice:
    voice_id: str
    name: str
    category: str = ""
    description: str = ""
    labels: dict = field(default_factory=dict)
    preview_url: str = ""

    @property
    def label(self) -> str:
        """What a picker shows: the name and what the voice sounds like ("Rachel — american, female, calm")."""
        traits = [self.labels.get(key) for key in ("accent", "gender", "description") if self.labels.get(key)]
        return f"{self.name} — {', '.join(traits)}" if traits else self.name


@dataclass(frozen=True)
class VoiceCatalog:
    """The voices, or why they could not be listed (``error``, for the editor)."""

    voices: list[Voice]
    error: str | None = None

    @property
    def available(self) -> bool:
        return self.error is None

    def get(self, voice_id: str) -> Voice | None:
        return next((voice for voice in self.voices if voice.voice_id == voice_id), None)


def _own_key(organization) -> str | None:
    credential = ProviderCredential.objects.for_org(organization).filter(provider=Provider.ELEVENLABS).first()
    if credential is None:
        return None
    key = (credential.values or {}).get("api_key")
    return key or None


def _cache_key(organization, api_key: str | None) -> str:
    # [!!] The key owner is part of the key: one organization's own voices are never shown to
    # another. The digest of the key and base URL makes a replaced key fetch afresh.
    owner = f"org:{organization.id}" if api_key else "platform"
    digest = hashlib.sha256(f"{api_key or ''}|{base_url('elevenlabs') or ''}".encode()).hexdigest()[:16]
    return f"{_CACHE_PREFIX}:{owner}:{digest}"


def _from_sdk(voice) -> Voice:
    return Voice(
        voice_id=voice.voice_id,
        name=voice.name or voice.voice_id,
        category=str(voice.category or ""),
        description=voice.description or "",
        labels={str(k): str(v) for k, v in (voice.labels or {}).items()},
        preview_url=voice.preview_url or "",
    )


def voice_list(*, organization) -> list[Voice]:
    """Every voice the organization's ElevenLabs key (or the platform's) may use, by name.

    Raises ProviderError when ElevenLabs cannot be asked or refuses.
    """
    api_key = _own_key(organization)
    key = _cache_key(organization, api_key)
    cached = cache.get(key)
    if cached is not None:
        return [Voice(**item) for item in cached]
    failure = cache.get(f"{key}:failed")
    if failure is not None:
        raise ProviderError("elevenlabs", "list voices", failure["message"], status=failure["status"], retryable=True)
    try:
        with provider_operation("elevenlabs", "list voices"):
            response = elevenlabs_client(api_key).voices.get_all(request_options=elevenlabs_request_options())
    except ProviderError as error:
        cache.set(f"{key}:failed", {"message": error.message, "status": error.status}, FAILURE_CACHE_SECONDS)
        raise
    voices = sorted((_from_sdk(v) for v in response.voices or []), key=lambda v: (v.name.lower(), v.voice_id))
    cache.set(key, [voice.__dict__ for voice in voices], CACHE_SECONDS)
    return voices


def voice_catalog(*, organization) -> VoiceCatalog:
    """The voices, or an empty list with a message saying why they could not be listed."""
    try:
        return VoiceCatalog(voices=voice_list(organization=organization))
    except ProviderError as error:
        retry = " Try again in a moment." if error.retryable else ""
        return VoiceCatalog(
            voices=[], error=f"ElevenLabs voices could not be listed: {error.message.rstrip('.')}.{retry}"
        )
