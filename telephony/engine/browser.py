"""The browser's side of a voice test: Pipecat frames to and from the test page's JSON messages.

The agent's page talks to its test socket (telephony/agent_test.py) in JSON only:

- in:  ``{"type": "audio", "pcm": <base64 16-bit little-endian mono PCM at 16 kHz>}`` (the microphone);
- out: ``{"type": "audio", "pcm": ...}`` in the same format (the agent's voice) and
  ``{"type": "clear"}`` when the tester interrupts the agent (stop playing what is buffered).

The consumer has already checked each message (valid JSON, its size, whole 16-bit samples) before
feeding it to the link, so ``deserialize`` only turns it into a frame; anything else is dropped.
"""

from __future__ import annotations

import base64
import binascii
import json

from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import Frame, InputAudioRawFrame, InterruptionFrame, OutputAudioRawFrame
from pipecat.serializers.base_serializer import FrameSerializer

BROWSER_SAMPLE_RATE = 16000


def pcm_from_message(message: dict) -> bytes | None:
    """The PCM bytes of an ``audio`` message, or None when its ``pcm`` is not base64 of whole 16-bit samples."""
    encoded = message.get("pcm")
    if not isinstance(encoded, str):
        return None
    try:
        pcm = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(pcm) % 2:
        return None
    return pcm


class BrowserFrameSerializer(FrameSerializer):
    """16 kHz PCM16 in base64 JSON, both ways; an interruption becomes ``clear``."""

    def __init__(self, params: FrameSerializer.InputParams | None = None, **kwargs) -> None:
        super().__init__(params, **kwargs)
        self._output_resampler = create_stream_resampler()

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, InterruptionFrame):
            return json.dumps({"type": "clear"})
        if isinstance(frame, OutputAudioRawFrame):
            audio = frame.audio
            if frame.sample_rate != BROWSER_SAMPLE_RATE:
                audio = await self._output_resampler.resample(audio, frame.sample_rate, BROWSER_SAMPLE_RATE)
            if not audio:
                return None
            return json.dumps({"type": "audio", "pcm": base64.b64encode(audio).decode("ascii")})
        return None  # nothing else reaches the page through the audio link

    async def deserialize(self, data: str | bytes) -> Frame | None:
        try:
            message = json.loads(data)
        except (TypeError, ValueError):
            return None
        if not isinstance(message, dict) or message.get("type") != "audio":
            return None
        pcm = pcm_from_message(message)
        if not pcm:
            return None
        return InputAudioRawFrame(audio=pcm, sample_rate=BROWSER_SAMPLE_RATE, num_channels=1)
