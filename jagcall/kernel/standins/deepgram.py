"""A stand-in for Deepgram's pre-recorded transcription (POST /v1/listen), answering the JSON
that deepgram-sdk 7.x parses: ``metadata`` and ``results.channels[].alternatives[]`` (transcript,
confidence, words), plus ``results.utterances[]`` when asked for (``utterances=true``).

The transcript is scripted, not recognised: ``DeepgramStandIn(script=[(speaker, text), ...])``
(default: a caller booking a dental appointment with an agent). Word times follow word counts
(WORD_SECONDS a word, PAUSE_SECONDS between turns). ``diarize`` adds speakers, ``punctuate`` or
``smart_format`` keep punctuation and capitals (without them words come lower-case and bare, as
Deepgram's do). The audio must be non-empty (a binary body, or JSON ``{"url": ...}`` with an
http(s) URL); otherwise 400, like Deepgram. GET /v1/projects lists one project (a cheap call
that proves a key works). Auth: ``Authorization: Token <api_key>`` (or
``bearer <api_key>``); anything else 401 ``INVALID_AUTH``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime

from jagcall.kernel.standins.base import RecordedRequest, Reply, StandIn, json_reply

WORD_SECONDS = 0.35
PAUSE_SECONDS = 0.6
MODEL_ID = "1abfe86b-e047-4eed-858a-35e5625b41ee"

DEFAULT_SCRIPT: list[tuple[int, str]] = [
    (0, "Thank you for calling, this is the front desk. How can I help you today?"),
    (1, "Hi, I'd like to book a cleaning appointment, please. My name is Jordan Lee."),
    (0, "Of course, Jordan. We have openings next Tuesday at 10 AM or Thursday at 2 PM."),
    (1, "Thursday at 2 PM works for me."),
    (0, "Great, you're booked for Thursday at 2 PM. We'll send a confirmation text to this number."),
    (1, "Perfect, thank you so much. Goodbye."),
    (0, "You're welcome, Jordan. Have a nice day."),
]


def _truthy(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _bare(token: str) -> str:
    return re.sub(r"[^\w'%-]", "", token).lower()


class DeepgramStandIn(StandIn):
    name = "deepgram"

    def __init__(self, api_key: str | None = None, script: list[tuple[int, str]] | None = None) -> None:
        super().__init__()
        self.api_key = api_key or secrets.token_hex(20)
        self.project_id = str(uuid.uuid4())
        self.script = list(script if script is not None else DEFAULT_SCRIPT)

    def error_reply(self, status: int, message: str) -> Reply:
        code = {400: "Bad Request", 401: "INVALID_AUTH", 402: "ASR_PAYMENT_REQUIRED", 429: "TOO_MANY_REQUESTS"}
        err_code = code.get(status, "INTERNAL_SERVER_ERROR")
        return json_reply({"err_code": err_code, "err_msg": message, "request_id": str(uuid.uuid4())}, status=status)

    def handle(self, request: RecordedRequest) -> Reply:
        scheme, _, key = request.header("authorization").partition(" ")
        if scheme.lower() not in ("token", "bearer") or not secrets.compare_digest(key.strip(), self.api_key):
            return self.error_reply(401, "Invalid credentials.")
        if request.path == "/v1/projects" and request.method == "GET":
            # What a key can see: enough for a cheap check that the key works.
            return json_reply({"projects": [{"project_id": self.project_id, "name": "JagCall stand-in project"}]})
        if request.path != "/v1/listen":
            return self.error_reply(404, f"Unknown path {request.path}")
        if request.method != "POST":
            return self.error_reply(405, f"Method {request.method} not allowed")
        if request.header("content-type").startswith("application/json"):
            url = request.json.get("url") if isinstance(request.json, dict) else None
            if not isinstance(url, str) or not re.match(r"https?://[^/\s]+", url):
                return self.error_reply(400, "Bad Request: the url field must hold the audio's http(s) URL")
            audio = url.encode()
        else:
            audio = request.body
            if not audio:
                return self.error_reply(400, "Bad Request: failed to process audio: corrupt or unsupported data")
        return json_reply(self.transcribe(request.query, audio))

    def transcribe(self, options: dict[str, str], audio: bytes) -> dict:
        diarize = _truthy(options.get("diarize"))
        punctuated = _truthy(options.get("punctuate")) or _truthy(options.get("smart_format"))
        clock, words, utterances = 0.0, [], []
        for index, (speaker, text) in enumerate(self.script):
            turn = []
            for token in text.split():
                word = {
                    "word": _bare(token),
                    "start": round(clock, 3),
                    "end": round(clock + WORD_SECONDS, 3),
                    "confidence": 0.98,
                    "punctuated_word": token if punctuated else _bare(token),
                }
                if diarize:
                    word.update({"speaker": speaker, "speaker_confidence": 0.9})
                turn.append(word)
                clock += WORD_SECONDS
            clock += PAUSE_SECONDS
            words += turn
            if turn:
                utterances.append(
                    {
                        "start": turn[0]["start"],
                        "end": turn[-1]["end"],
                        "confidence": 0.97,
                        "channel": 0,
                        "transcript": " ".join(w["punctuated_word"] for w in turn),
                        "words": turn,
                        "speaker": speaker if diarize else 0,
                        "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{index}:{text}")),
                    }
                )
        model = options.get("model") or "nova-3"
        results: dict = {
            "channels": [
                {
                    "alternatives": [
                        {
                            "transcript": " ".join(w["punctuated_word"] for w in words),
                            "confidence": 0.97,
                            "words": words,
                        }
                    ],
                    "detected_language": options.get("language") or "en",
                }
            ]
        }
        if _truthy(options.get("utterances")):
            results["utterances"] = utterances
        return {
            "metadata": {
                "transaction_key": "deprecated",
                "request_id": str(uuid.uuid4()),
                "sha256": hashlib.sha256(audio).hexdigest(),
                "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "duration": round(clock, 3),
                "channels": 1,
                "models": [MODEL_ID],
                "model_info": {MODEL_ID: {"name": f"general-{model}", "version": "2024-01-01.0", "arch": model}},
            },
            "results": results,
        }
