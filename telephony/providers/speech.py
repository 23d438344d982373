"""Deepgram's pre-recorded transcription through deepgram-sdk, built by jagcall.kernel.providers.

The audio is streamed to Deepgram from the decrypting reader (never held whole
in memory or written to disk in clear). Because a stream cannot be sent twice,
the SDK's own retries are off for this request: the Celery task retries the
whole step with backoff instead (telephony/tasks.py).

``mip_opt_out=True`` opts the request out of Deepgram's Model Improvement
Program, so the call's audio is not used to train Deepgram's models.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from jagcall.kernel.providers import ProviderError, deepgram_client, provider_operation
from telephony.providers.llm import organization_api_key


@dataclass(frozen=True)
class TranscriptResult:
    utterances: list[dict]  # [{"speaker": 0, "start": 0.0, "end": 1.2, "text": "..."}]
    text: str
    language: str
    model: str


def transcribe_recording(*, organization, audio: Iterator[bytes], model: str, language: str) -> TranscriptResult:
    """Transcribe ``audio`` (chunks of a WAV/MP3 file) with speakers, punctuation and utterances."""
    client = deepgram_client(organization_api_key(organization, "deepgram"))
    with provider_operation("deepgram", "transcribe"):
        response = client.listen.v1.media.transcribe_file(
            request=audio,
            model=model or "nova-3",
            language=language or None,
            diarize=True,
            punctuate=True,
            utterances=True,
            smart_format=True,
            mip_opt_out=True,
            request_options={"max_retries": 0},
        )
    results = getattr(response, "results", None)
    if results is None:
        raise ProviderError("deepgram", "transcribe", "Deepgram accepted the audio but returned no transcript")
    utterances = [
        {
            "speaker": int(item.speaker or 0),
            "start": round(float(item.start or 0.0), 3),
            "end": round(float(item.end or 0.0), 3),
            "text": (item.transcript or "").strip(),
        }
        for item in (results.utterances or [])
        if (item.transcript or "").strip()
    ]
    text = ""
    channels = results.channels or []
    if channels and channels[0].alternatives:
        text = (channels[0].alternatives[0].transcript or "").strip()
    if not text:
        text = " ".join(u["text"] for u in utterances)
    return TranscriptResult(utterances=utterances, text=text, language=language or "", model=model or "nova-3")
