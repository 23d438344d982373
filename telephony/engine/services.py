"""The provider services of a conversation: Pipecat's, configured from its ConversationSettings.

Each service is pointed at ``settings.base_urls[provider]`` when one is set (the stand-ins in
simulated mode and in tests, PROVIDER_BASE_URLS), else at the provider itself. Keys come from
the settings (the organization's own key, else the platform's) and are never logged.

- STT: Deepgram's live API (``/v1/listen``), 16-bit PCM at the call's rate (Pipecat decodes
  Twilio's mu-law before STT), interim results on, model improvement opted out.
- LLM: the agent's provider and model; OpenAI with ``store`` off, so no conversation is kept
  on the provider's side.
- TTS: ElevenLabs' multi-stream-input websocket (Flash v2.5), audio at the call's rate; Pipecat
  encodes it back to mu-law for Twilio.
"""

from __future__ import annotations

from anthropic import AsyncAnthropic
from pipecat.services.anthropic.llm import AnthropicLLMService
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transcriptions.language import Language

from jagcall.kernel.providers import register_secret
from telephony.services.conversations import ConversationSettings

ELEVENLABS_MODEL = "eleven_flash_v2_5"
DEEPGRAM_MODEL = "nova-3"


def _key(settings: ConversationSettings, provider: str) -> str:
    key = settings.keys.get(provider, "")
    register_secret(key)  # [!!] redacted from every log line from here on
    return key


def _language(code: str):
    try:
        return Language(code)
    except ValueError:
        return code or Language.EN


def stt_service(settings: ConversationSettings, *, sample_rate: int) -> DeepgramSTTService:
    base = settings.base_urls.get("deepgram", "")
    return DeepgramSTTService(
        api_key=_key(settings, "deepgram"),
        base_url=base,
        encoding="linear16",
        sample_rate=sample_rate,
        mip_opt_out=True,
        settings=DeepgramSTTService.Settings(
            model=settings.stt_model or DEEPGRAM_MODEL,
            language=_language(settings.stt_language),
            interim_results=True,
            punctuate=True,
            smart_format=True,
        ),
    )


def llm_service(settings: ConversationSettings):
    base = settings.base_urls.get(settings.llm_provider, "")
    if settings.llm_provider == "anthropic":
        key = _key(settings, "anthropic")
        client = AsyncAnthropic(api_key=key, base_url=base or None, max_retries=0)
        return AnthropicLLMService(
            api_key=key,
            client=client,
            settings=AnthropicLLMService.Settings(model=settings.llm_model, temperature=settings.temperature),
        )
    return OpenAILLMService(
        api_key=_key(settings, "openai"),
        base_url=f"{base}/v1" if base else None,
        settings=OpenAILLMService.Settings(
            model=settings.llm_model, temperature=settings.temperature, extra={"store": False}
        ),
    )


def tts_service(settings: ConversationSettings, *, sample_rate: int) -> ElevenLabsTTSService:
    base = settings.base_urls.get("elevenlabs", "")
    if base:
        url = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    else:
        url = "wss://api.elevenlabs.io"
    return ElevenLabsTTSService(
        api_key=_key(settings, "elevenlabs"),
        url=url,
        sample_rate=sample_rate,
        settings=ElevenLabsTTSService.Settings(voice=settings.voice_id, model=ELEVENLABS_MODEL),
    )
