"""Recording media for the Twilio stand-in: a real, small audio file, made once and cached.

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
def wav_bytes(seconds: int = SECONDS) -> bytes:
    frames = bytearray()
    for i in range(SAMPLE_RATE * seconds):
        t = i / SAMPLE_RATE
        pitch = 440.0 if int(t) % 2 == 0 else 660.0  # one "speaker" per second
        envelope = min(1.0, (t % 1.0) * 20, (1.0 - t % 1.0) * 20)  # no clicks between turns
        frames += struct.pack("<h", int(8000 * envelope * math.sin(2 * math.pi * pitch * t)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(bytes(frames))
    return out.getvalue()


@functools.cache
def mp3_bytes(seconds: int = SECONDS) -> bytes:
    # MPEG-1 Layer III, no CRC, 128 kbit/s, 44.1 kHz, mono: 1152 samples in each 417-byte frame.
    header = bytes([0xFF, 0xFB, 0x90, 0xC4])
    frame_length = 144 * 128000 // 44100  # 417 bytes, no padding
    frame = header + bytes(frame_length - len(header))
    frames = math.ceil(seconds * 44100 / 1152)
    return frame * frames
