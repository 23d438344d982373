"""A stand-in for ElevenLabs: voices (GET /v1/voices, /v2/voices as ``voices.search`` calls it,
/v1/voices/{id}) and text-to-speech (POST /v1/text-to-speech/{voice_id} and ``.../stream``),
in the JSON the elevenlabs SDK parses. Audio is silent MP3 (real MPEG frames, audio.py), about
0.35 s a word, streamed in chunks. Auth: ``xi-api-key``; errors as ``{"detail": {"status", "message"}}``.
"""

from __future__ import annotations

import re
import secrets

from jagcall.kernel.standins.audio import silent_mp3
from jagcall.kernel.standins.base import RecordedRequest, Reply, StandIn, json_reply

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


class ElevenLabsStandIn(StandIn):
    name = "elevenlabs"

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key or "sk_" + secrets.token_hex(24)
        self.voices = [_voice(*v) for v in VOICES]
        self.speech: list[dict] = []  # text-to-speech request bodies, with their voice_id

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
