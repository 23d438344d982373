"""Audio the stand-ins serve (Twilio's recordings, ElevenLabs' speech): real, small files.

WAV: 8 kHz mono 16-bit PCM (the format of Twilio's call recordings), a few seconds of tones
alternating between two pitches, like two voices taking turns. MP3: silent MPEG-1 Layer III
frames of the same length (no encoder is needed for silence: a frame whose side information is
all zero decodes to silence), so a client that checks the type or plays it gets a valid file.
"""

from __future__ import annotations

import functools
import io
import math
import struct
import wave

SAMPLE_RATE = 8000
SECONDS = 4


@functools.cache
def _two_turns() -> bytes:
    """Two seconds of samples, one "speaker" per second; whole seconds of each pitch repeat exactly."""
    frames = bytearray()
    for i in range(SAMPLE_RATE * 2):
        t = i / SAMPLE_RATE
        pitch = 440.0 if int(t) % 2 == 0 else 660.0
        envelope = min(1.0, (t % 1.0) * 20, (1.0 - t % 1.0) * 20)  # no clicks between turns
        frames += struct.pack("<h", int(8000 * envelope * math.sin(2 * math.pi * pitch * t)))
    return bytes(frames)


@functools.cache
def wav_bytes(seconds: int = SECONDS) -> bytes:
    turns = _two_turns()
    frames = (turns * (seconds // 2 + 1))[: SAMPLE_RATE * seconds * 2]
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(frames)
    return out.getvalue()


# MPEG-1 Layer III, no CRC, 128 kbit/s, 44.1 kHz, mono: 1152 samples (26 ms) in each 417-byte frame.
MP3_FRAME = bytes([0xFF, 0xFB, 0x90, 0xC4]) + bytes(144 * 128000 // 44100 - 4)
MP3_FRAME_SECONDS = 1152 / 44100


def silent_mp3(seconds: float) -> bytes:
    return MP3_FRAME * max(1, math.ceil(seconds / MP3_FRAME_SECONDS))


@functools.cache
def mp3_bytes(seconds: int = SECONDS) -> bytes:
    return silent_mp3(seconds)
