"""A stand-in for ElevenLabs: voices (GET /v1/voices, /v2/voices as ``voices.search`` calls it,
/v1/voices/{id}) and text-to-speech (POST /v1/text-to-speech/{voice_id} and ``.../stream``),
in the JSON the elevenlabs SDK parses. Audio is silent MP3 (real MPEG frames, audio.py), about
0.35 s a word, streamed in chunks. Auth: ``xi-api-key``; errors as ``{"detail": {"status", "message"}}``.

Streaming text-to-speech (``/v1/text-to-speech/{voice_id}/multi-stream-input`` upgraded to a
websocket on the same host and port, as Pipecat's ElevenLabsTTSService opens it with
``xi-api-key``; a bad key is refused with 401, an unknown voice with 404, before the upgrade)
speaks with real speech: espeak-ng through sox (speech.py, cached), or a tone where espeak-ng is
missing, so a person listening to a simulated call hears the agent. The client's messages:

- ``{"text": " ", "context_id", "voice_settings"?}`` opens a context; ``{"text": "...", "context_id"}``
  adds text to it (with ``auto_mode=true`` each text is spoken at once, otherwise text gathers
  until BUFFER_CHARS or a flush); ``{"text": "", ...}`` is a keepalive;
- ``{"context_id", "flush": true}`` speaks what the context holds;
- ``{"context_id", "close_context": true}`` drops text not yet flushed and, after the audio
  already on its way, answers ``{"isFinal": true, "contextId"}``;
- ``{"close_socket": true}`` sends the audio on its way, then closes (1000).

The answers: ``{"audio": base64, "alignment": {"chars", "charStartTimesMs", "charDurationsMs"},
"normalizedAlignment": (the same), "contextId"}`` in chunks of about CHUNK_MS of audio, each cut
at a character boundary, alignment times counted from the chunk's start (they add up to the
audio's length), in ``output_format``: ulaw_8000, pcm_8000 / 16000 / 22050 / 24000 / 44100 /
48000 (16-bit little-endian), or mp3_* (silent MPEG frames of the speech's length). ``tts_latency``
seconds pass before the first audio of each text spoken (benchmarks), without holding up the
reading of messages. ``tts_sessions`` keeps a TtsSession per connection: its query, voice, and the
texts received and spoken per context.
"""

from __future__ import annotations

import base64
import json
import math
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from jagcall.kernel.standins import speech
from jagcall.kernel.standins.audio import MP3_FRAME, MP3_FRAME_SECONDS, silent_mp3
from jagcall.kernel.standins.base import RecordedRequest, Reply, StandIn, json_reply

CHUNK_MS = 150  # audio in each streamed message, about
BUFFER_CHARS = 120  # without auto_mode, text gathers until this much (ElevenLabs' first chunk_length_schedule step)
PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
TONE_SECONDS_PER_WORD = 0.3

VOICES = [
    ("21m00Tcm4TlvDq8ikWAM", "Rachel", "premade", {"accent": "american", "gender": "female", "age": "young",
                                                   "description": "calm", "use_case": "narration"}),
    ("pNInz6obpgDQGcFmaJgB", "Adam", "premade", {"accent": "american", "gender": "male", "age": "middle aged",
                                                 "description": "deep", "use_case": "narration"}),
    ("EXAVITQu4vr4xnSDxMaL", "Sarah", "premade", {"accent": "american", "gender": "female", "age": "young",
                                                  "description": "soft", "use_case": "conversational"}),
    ("JBFqnCBsd6RMkjVDRZzb", "George", "premade", {"accent": "british", "gender": "male", "age": "middle aged",
                                                   "description": "warm", "use_case": "conversational"}),
]  # fmt: skip


def _voice(voice_id: str, name: str, category: str, labels: dict) -> dict:
    return {
        "voice_id": voice_id,
        "name": name,
        "category": category,
        "labels": labels,
        "description": f"{labels['description'].capitalize()} {labels['gender']} voice.",
        "preview_url": f"https://storage.googleapis.com/eleven-public-prod/premade/voices/{voice_id}/preview.mp3",
        "available_for_tiers": [],
        "settings": None,
        "high_quality_base_model_ids": ["eleven_turbo_v2_5", "eleven_flash_v2_5", "eleven_multilingual_v2"],
        "is_owner": False,
        "is_legacy": False,
    }


@dataclass
class TtsSession:
    """One multi-stream-input connection as the stand-in saw it (``ElevenLabsStandIn.tts_sessions``)."""

    query: dict[str, str]
    voice_id: str
    received: dict[str | None, list[str]] = field(default_factory=dict)  # context id -> texts, as sent
    spoken: list[tuple[str | None, str]] = field(default_factory=list)  # (context id, text) in the order spoken
    closed_contexts: list[str | None] = field(default_factory=list)
    closed: bool = False

    def texts(self, context_id: str | None) -> str:
        """What a context was sent, joined (the opening " " aside)."""
        return "".join(self.received.get(context_id, [])).strip()


def _encode_mulaw(samples: np.ndarray) -> bytes:
    """16-bit samples to G.711 mu-law bytes."""
    values = samples.astype(np.int32)
    sign = np.where(values < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(values), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def _tone(text: str, sample_rate: int, encoding: str) -> bytes:
    """A tone as long as the text would take to say: the voice where espeak-ng is missing."""
    seconds = max(0.3, len(text.split()) * TONE_SECONDS_PER_WORD)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) * 20)
    samples = (6000 * envelope * np.sin(2 * math.pi * 440 * t)).astype(np.int16)
    return _encode_mulaw(samples) if encoding == "mulaw" else samples.astype("<i2").tobytes()


def _audio_format(output_format: str) -> tuple[str, int] | None:
    """(kind, sample rate) of an ``output_format``: ("mulaw" | "pcm16" | "mp3", Hz), None if unknown."""
    kind, _, rest = output_format.partition("_")
    rate = rest.split("_", 1)[0]
    if kind == "ulaw" and rate == "8000":
        return "mulaw", 8000
    if kind == "pcm" and rate.isdigit() and int(rate) in PCM_RATES:
        return "pcm16", int(rate)
    if kind == "mp3" and rate.isdigit():
        return "mp3", int(rate)
    return None


def _spoken(text: str, kind: str, sample_rate: int) -> tuple[bytes, int, float]:
    """``text`` as audio: (bytes, bytes a second, seconds)."""
    if kind == "mp3":
        seconds = len(_spoken(text, "mulaw", 8000)[0]) / 8000
        audio = silent_mp3(seconds)
        return audio, round(len(MP3_FRAME) / MP3_FRAME_SECONDS), seconds
    try:
        audio = speech.render(text, sample_rate=sample_rate, encoding=kind)
    except speech.SpeechUnavailable:
        audio = _tone(text, sample_rate, kind)
    per_second = sample_rate * (1 if kind == "mulaw" else 2)
    return audio, per_second, len(audio) / per_second


def _chunks(text: str, audio: bytes, per_second: int, seconds: float, kind: str):
    """(audio, alignment) pieces of about CHUNK_MS, each cut where a character starts."""
    chars = list(text)
    total_ms = seconds * 1000
    bounds = [round(i * total_ms / len(chars)) for i in range(len(chars) + 1)]
    per_chunk = max(1, round(CHUNK_MS / (total_ms / len(chars))))
    sample_bytes = 1 if kind in ("mulaw", "mp3") else 2

    def offset(ms: int) -> int:
        at = min(len(audio), int(ms * per_second / 1000))
        return at - at % sample_bytes

    for first in range(0, len(chars), per_chunk):
        last = min(len(chars), first + per_chunk)
        end = len(audio) if last == len(chars) else offset(bounds[last])
        alignment = {
            "chars": chars[first:last],
            "charStartTimesMs": [bounds[i] - bounds[first] for i in range(first, last)],
            "charDurationsMs": [bounds[i + 1] - bounds[i] for i in range(first, last)],
        }
        yield audio[offset(bounds[first]) : end], alignment


class _Speaker:
    """The state of one multi-stream-input connection: texts in, audio messages out (a worker thread)."""

    def __init__(self, standin: ElevenLabsStandIn, connection: ServerConnection, session: TtsSession) -> None:
        self.standin, self.connection, self.session = standin, connection, session
        self.kind, self.sample_rate = _audio_format(session.query.get("output_format") or "mp3_44100_128")
        self.auto_mode = session.query.get("auto_mode", "false").lower() == "true"
        self.buffers: dict[str | None, str] = {}
        self.jobs: queue.Queue[tuple[str, str | None, str] | None] = queue.Queue()
        self.worker = threading.Thread(target=self.work, daemon=True, name="elevenlabs-speaker")
        self.worker.start()

    def message(self, message: dict) -> bool:
        """A client message; False when the client closes the socket."""
        if message.get("close_socket"):
            return False
        context = message.get("context_id")
        text = message.get("text")
        if isinstance(text, str) and text:
            received = self.session.received.setdefault(context, [])
            opening = not received and text == " "
            received.append(text)
            if not opening:
                self.buffers[context] = self.buffers.get(context, "") + text
                buffered = self.buffers[context]
                if self.auto_mode or (len(buffered) >= BUFFER_CHARS and buffered[-1].isspace()):
                    self.speak(context)
        if message.get("flush"):
            self.speak(context)
        if message.get("close_context"):
            self.buffers.pop(context, None)  # what was never flushed is not spoken
            self.jobs.put(("final", context, ""))
        return True

    def speak(self, context: str | None) -> None:
        text = self.buffers.pop(context, "")
        if text.strip():
            self.jobs.put(("speak", context, text))

    def work(self) -> None:
        while (job := self.jobs.get()) is not None:
            action, context, text = job
            try:
                if action == "final":
                    self.session.closed_contexts.append(context)
                    self.connection.send(json.dumps({"isFinal": True, "contextId": context}))
                    continue
                audio, per_second, seconds = _spoken(text.strip(), self.kind, self.sample_rate)
                if self.standin.tts_latency > 0:
                    time.sleep(self.standin.tts_latency)
                self.session.spoken.append((context, text))
                for piece, alignment in _chunks(text, audio, per_second, seconds, self.kind):
                    message = {"audio": base64.b64encode(piece).decode(), "alignment": alignment,
                               "normalizedAlignment": alignment, "contextId": context}  # fmt: skip
                    self.connection.send(json.dumps(message))
            except ConnectionClosed:
                return

    def finish(self) -> None:
        self.jobs.put(None)
        self.worker.join()


class ElevenLabsStandIn(StandIn):
    name = "elevenlabs"
    websocket_paths = (r"/v1/text-to-speech/[^/]+/multi-stream-input",)

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key or "sk_" + secrets.token_hex(24)
        self.voices = [_voice(*v) for v in VOICES]
        self.speech: list[dict] = []  # text-to-speech request bodies, with their voice_id
        self.tts_latency = 0.0  # seconds before the first audio of each text a websocket speaks
        self.tts_sessions: list[TtsSession] = []

    @staticmethod
    def _voice_of(request: RecordedRequest) -> str:
        return request.path.split("/")[3]

    def websocket_refusal(self, request: RecordedRequest) -> Reply | None:
        if not secrets.compare_digest(request.header("xi-api-key"), self.api_key):  # [!!] as on REST
            return self.error_reply(401, "Invalid API key")
        voice_id = self._voice_of(request)
        if self._find(voice_id) is None:
            return self.error_reply(404, f"A voice with voice_id {voice_id} was not found.")
        output_format = request.query.get("output_format")
        if output_format and _audio_format(output_format) is None:
            return self.error_reply(422, f"output_format {output_format!r} is not supported")
        return None

    def websocket(self, request: RecordedRequest, connection: ServerConnection) -> None:
        session = TtsSession(query=dict(request.query), voice_id=self._voice_of(request))
        with self._lock:
            self.tts_sessions.append(session)
        speaker = _Speaker(self, connection, session)
        try:
            for raw in connection:
                try:
                    message = json.loads(raw)
                except ValueError:
                    message = None
                if not isinstance(message, dict):
                    connection.close(1008, "Invalid message: expected a JSON object")
                    break
                if not speaker.message(message):
                    break
        except ConnectionClosed:
            pass
        finally:
            speaker.finish()
            session.closed = True

    def error_reply(self, status: int, message: str) -> Reply:
        status_name = {401: "invalid_api_key", 404: "voice_not_found", 422: "invalid_request"}.get(status, "error")
        return json_reply({"detail": {"status": status_name, "message": message}}, status=status)

    def handle(self, request: RecordedRequest) -> Reply:
        if not secrets.compare_digest(request.header("xi-api-key"), self.api_key):
            return self.error_reply(401, "Invalid API key")
        path, method = request.path.rstrip("/"), request.method
        if method == "GET" and path == "/v1/voices":
            return json_reply({"voices": self.voices})
        if method == "GET" and path == "/v2/voices":
            return self._search(request)
        match = re.fullmatch(r"/v1/voices/([^/]+)", path)
        if method == "GET" and match:
            voice = self._find(match.group(1))
            if voice is None:
                return self.error_reply(404, f"A voice with voice_id {match.group(1)} was not found.")
            return json_reply(voice)
        match = re.fullmatch(r"/v1/text-to-speech/([^/]+)(/stream)?", path)
        if method == "POST" and match:
            return self._speak(request, match.group(1))
        return self.error_reply(404, f"Not found: {method} {path}")

    def _find(self, voice_id: str) -> dict | None:
        return next((v for v in self.voices if v["voice_id"] == voice_id), None)

    def _search(self, request: RecordedRequest) -> Reply:
        voices = self.voices
        search = request.query.get("search", "").lower()
        if search:
            voices = [v for v in voices if search in v["name"].lower() or search in " ".join(v["labels"].values())]
        if request.query.get("category"):
            voices = [v for v in voices if v["category"] == request.query["category"]]
        size = int(request.query.get("page_size") or 10)
        start = int(request.query.get("next_page_token") or 0)
        page = voices[start : start + size]
        more = start + size < len(voices)
        return json_reply({"voices": page, "has_more": more, "total_count": len(voices),
                           "next_page_token": str(start + size) if more else None})  # fmt: skip

    def _speak(self, request: RecordedRequest, voice_id: str) -> Reply:
        if self._find(voice_id) is None:
            return self.error_reply(404, f"A voice with voice_id {voice_id} was not found.")
        body = request.json if isinstance(request.json, dict) else {}
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return json_reply({"detail": [{"loc": ["body", "text"], "msg": "Field required", "type": "missing"}]}, 422)
        with self._lock:
            self.speech.append({**body, "voice_id": voice_id})
        audio = silent_mp3(len(text.split()) * 0.35)  # about 0.35 s a word
        return Reply(body=(audio[i : i + 4096] for i in range(0, len(audio), 4096)), content_type="audio/mpeg")
