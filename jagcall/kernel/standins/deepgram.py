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

Live transcription (GET /v1/listen upgraded to a websocket on the same host and port, as
deepgram-sdk's ``listen.v1.connect()`` and Pipecat's DeepgramSTTService open it) is scripted too:
the stand-in cannot recognise speech, so it finds speech by the energy of the audio it receives
(10 ms frames, decoded per ``encoding`` linear16 / mulaw / alaw, ``sample_rate``, ``channels``)
and gives each speech segment the next text of ``live_script`` (every connection works through
its own copy, in order; after the last, segments come back with an empty transcript). It answers
as Deepgram does:

- ``Metadata`` when the connection opens and again, with the audio's duration, after ``CloseStream``;
- ``SpeechStarted`` at the start of each segment when ``vad_events=true``;
- interim ``Results`` (``is_final`` false) every INTERIM_SECONDS of speech with ``interim_results=true``,
  holding a growing prefix of the text;
- at the end of a segment (silence longer than ``endpointing`` ms; absent or ``false``: 300 ms; the
  pauses between words, up to WORD_GAP_MS, never end one) ``Results`` with ``is_final`` and
  ``speech_final`` true and the words with their start and end times;
- ``UtteranceEnd`` once ``utterance_end_ms`` of silence follow the last word, when that is set;
- ``Finalize`` is answered at once: the pending segment as ``is_final`` true with ``from_finalize``
  true (an empty transcript when nothing is pending); ``KeepAlive`` does nothing; ``CloseStream``
  finishes the pending segment, sends the closing Metadata and closes (1000).

Times (``start``, ``duration``, word times) follow the audio received, not the clock, so a test that
streams faster than real time gets the same answers. ``live_latency`` seconds are added before
each final result (benchmarks), without holding up the reading of audio. ``live_sessions`` keeps
a LiveSession per connection: its query parameters, the bytes of audio received, the final texts
sent and every message sent. Bad keys are refused with 401 before the upgrade, an unsupported
``encoding`` (or one without ``sample_rate``) with 400, as Deepgram refuses them.
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

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


# What a caller says on a live connection (one text a speech segment): a patient of a dental
# practice asks about the opening hours, then books a cleaning.
DEFAULT_LIVE_SCRIPT: list[str] = [
    "Hi, I was wondering what your opening hours are on Saturday?",
    "Okay, great.",
    "I'd like to book a cleaning for Saturday morning, if you have anything.",
    "Ten o'clock works for me.",
    "It's Jordan Lee.",
    "Yes, that's right. Thank you so much.",
    "No, that's all. Bye.",
]

LIVE_ENCODINGS = ("linear16", "mulaw", "alaw")
FRAME_MS = 10  # the energy detector's frame
SPEECH_RMS = 500  # a frame is voiced at this RMS (16-bit scale, about -36 dBFS) or above
ONSET_MS = 50  # voiced audio needed before a segment starts (clicks and pops are not speech)
WORD_GAP_MS = 200  # silence shorter than this is a pause between words, whatever ``endpointing`` says
DEFAULT_ENDPOINTING_MS = 300  # when ``endpointing`` is absent or false
INTERIM_SECONDS = 0.25  # speech between two interim results
SPEECH_SECONDS_PER_WORD = 0.3  # how fast interim results uncover the words
LIVE_MODEL = {"name": "2-general-nova", "version": "2024-01-18.26916", "arch": "nova-3"}


def _truthy(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _bare(token: str) -> str:
    return re.sub(r"[^\w'%-]", "", token).lower()


class DeepgramStandIn(StandIn):
    name = "deepgram"

    websocket_paths = (r"/v1/listen",)

    def __init__(
        self,
        api_key: str | None = None,
        script: list[tuple[int, str]] | None = None,
        *,
        live_script: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key or secrets.token_hex(20)
        self.project_id = str(uuid.uuid4())
        self.script = list(script if script is not None else DEFAULT_SCRIPT)
        self.live_script = list(live_script if live_script is not None else DEFAULT_LIVE_SCRIPT)
        self.live_latency = 0.0  # seconds before each final result of a live connection
        self.live_sessions: list[LiveSession] = []

    def error_reply(self, status: int, message: str) -> Reply:
        code = {400: "Bad Request", 401: "INVALID_AUTH", 402: "ASR_PAYMENT_REQUIRED", 429: "TOO_MANY_REQUESTS"}
        err_code = code.get(status, "INTERNAL_SERVER_ERROR")
        return json_reply({"err_code": err_code, "err_msg": message, "request_id": str(uuid.uuid4())}, status=status)

    def _authorized(self, request: RecordedRequest) -> bool:
        scheme, _, key = request.header("authorization").partition(" ")
        if not scheme:  # browsers cannot set headers on a websocket: Deepgram takes "token, <key>" as subprotocol
            scheme, _, key = request.header("sec-websocket-protocol").partition(",")
        return scheme.strip().lower() in ("token", "bearer") and secrets.compare_digest(key.strip(), self.api_key)

    def websocket_refusal(self, request: RecordedRequest) -> Reply | None:
        if not self._authorized(request):  # [!!] as on REST: no session without the key
            return self.error_reply(401, "Invalid credentials.")
        return _live_refusal(self, request)

    def websocket(self, request: RecordedRequest, connection: ServerConnection) -> None:
        session = LiveSession(query=dict(request.query))
        with self._lock:
            self.live_sessions.append(session)
            script = list(self.live_script)
        transcriber = _LiveTranscriber(self, session, script)
        sender = threading.Thread(target=_sender, args=(connection, transcriber), daemon=True, name="deepgram-live")
        sender.start()
        transcriber.send(transcriber.metadata())
        try:
            for message in connection:
                if isinstance(message, bytes):
                    transcriber.audio(message)
                    continue
                try:
                    control = json.loads(message)
                except ValueError:
                    control = None
                if not isinstance(control, dict):
                    transcriber.send({"type": "Error", "variant": "SchemaError", "description": "Invalid JSON",
                                      "message": message[:200]})  # fmt: skip
                    continue
                if not transcriber.control(control):
                    break
        except ConnectionClosed:
            pass
        finally:
            transcriber.outbox.put(None)
            sender.join()
            session.closed = True

    def handle(self, request: RecordedRequest) -> Reply:
        if not self._authorized(request):
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


def _g711_tables() -> dict[str, np.ndarray]:
    """16-bit samples of every mu-law and A-law byte (ITU-T G.711)."""
    mu = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((mu & 0x0F) << 3) + 0x84 << ((mu >> 4) & 7)) - 0x84
    mulaw = np.where(mu & 0x80, -magnitude, magnitude)
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    alaw = np.where(a & 0x80, magnitude, -magnitude)
    return {"mulaw": mulaw.astype(np.int16), "alaw": alaw.astype(np.int16)}


G711 = _g711_tables()


@dataclass
class LiveSession:
    """One live connection as the stand-in saw it (``DeepgramStandIn.live_sessions``)."""

    query: dict[str, str]
    audio_bytes: int = 0
    texts: list[str] = field(default_factory=list)  # the final transcripts sent, in order
    messages: list[dict] = field(default_factory=list)  # every message sent, in order
    closed: bool = False


@dataclass
class _Segment:
    text: str
    start: float  # audio time of its first voiced frame
    end: float  # audio time of the end of its last voiced frame
    interim_at: float  # audio time of the next interim result
    finalized: bool = False  # answered (Finalize) while speech went on: the rest of it adds nothing


class _LiveTranscriber:
    """The state of one live connection: audio in, Deepgram's messages out (through ``outbox``)."""

    def __init__(self, standin: DeepgramStandIn, session: LiveSession, script: list[str]) -> None:
        query = session.query
        self.standin, self.session, self.script = standin, session, script
        self.encoding = query.get("encoding") or "linear16"
        self.sample_rate = int(query.get("sample_rate") or 16000)
        self.channels = max(1, int(query.get("channels") or 1))
        self.sample_bytes = 2 if self.encoding == "linear16" else 1
        self.frame_bytes = self.sample_rate * FRAME_MS // 1000 * self.sample_bytes * self.channels
        endpointing = query.get("endpointing", "")
        ms = int(endpointing) if endpointing.isdigit() else DEFAULT_ENDPOINTING_MS
        self.endpointing = max(ms, WORD_GAP_MS) / 1000
        utterance_end = query.get("utterance_end_ms", "")
        self.utterance_end = int(utterance_end) / 1000 if utterance_end.isdigit() else None
        self.interim = _truthy(query.get("interim_results"))
        self.vad_events = _truthy(query.get("vad_events"))
        self.punctuated = _truthy(query.get("punctuate")) or _truthy(query.get("smart_format"))
        self.request_id = str(uuid.uuid4())
        self.sha256 = hashlib.sha256()
        self.pending = b""
        self.clock = 0.0  # seconds of audio received (whole frames)
        self.cursor = 0.0  # where the next result's window starts (the end of the last final one's)
        self.voiced_run = 0.0  # voiced audio in a row, before a segment starts
        self.run_start = 0.0
        self.segment: _Segment | None = None
        self.last_word_end: float | None = None  # awaiting UtteranceEnd
        self.outbox: queue.Queue[tuple[float, dict] | None] = queue.Queue()

    # -- what goes out ---------------------------------------------------------------------------
    def send(self, message: dict, *, final: bool = False) -> None:
        delay = self.standin.live_latency if final else 0.0
        self.outbox.put((time.monotonic() + delay, message))

    def metadata(self) -> dict:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": self.sha256.hexdigest(),
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "duration": round(self.clock, 3),
            "channels": self.channels,
            "models": [MODEL_ID],
            "model_info": {MODEL_ID: LIVE_MODEL},
        }

    def results(self, segment: _Segment | None, words: int | None, *, final: bool, **flags) -> dict:
        tokens = segment.text.split() if segment else []
        tokens = tokens if words is None else tokens[:words]
        items = []
        if tokens and segment:
            span = max(segment.end - segment.start, 0.05 * len(tokens))
            weights = [len(t) + 1 for t in tokens]
            total, at = sum(weights), segment.start
            for token, weight in zip(tokens, weights):
                length = span * weight / total
                item = {"word": _bare(token), "start": round(at, 3), "end": round(at + length * 0.9, 3),
                        "confidence": 0.97}  # fmt: skip
                if self.punctuated:
                    item["punctuated_word"] = token
                items.append(item)
                at += length
        transcript = " ".join(tokens) if self.punctuated else " ".join(_bare(t) for t in tokens)
        alternative = {"transcript": transcript, "confidence": 0.97 if tokens else 0.0, "words": items}
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(self.clock - self.cursor, 3),
            "start": round(self.cursor, 3),
            "is_final": final,
            "speech_final": flags.get("speech_final", False),
            "from_finalize": flags.get("from_finalize", False),
            "channel": {"alternatives": [alternative]},
            "metadata": {"request_id": self.request_id, "model_info": LIVE_MODEL, "model_uuid": MODEL_ID},
        }

    def final(self, *, speech_final: bool = False, from_finalize: bool = False) -> None:
        segment = self.segment
        message = self.results(segment, None, final=True, speech_final=speech_final, from_finalize=from_finalize)
        self.cursor = self.clock
        if segment is not None:
            segment.finalized = True
            self.last_word_end = segment.end
        self.session.texts.append(message["channel"]["alternatives"][0]["transcript"])
        self.send(message, final=True)

    # -- what comes in ---------------------------------------------------------------------------
    def audio(self, data: bytes) -> None:
        self.session.audio_bytes += len(data)
        self.sha256.update(data)
        self.pending += data
        whole = len(self.pending) // self.frame_bytes * self.frame_bytes
        if not whole:
            return
        frames, self.pending = self.pending[:whole], self.pending[whole:]
        if self.encoding == "linear16":
            samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
        else:
            samples = G711[self.encoding][np.frombuffer(frames, dtype=np.uint8)].astype(np.float64)
        rms = np.sqrt(np.mean(samples.reshape(-1, self.frame_bytes // self.sample_bytes) ** 2, axis=1))
        for level in rms:
            self.frame(bool(level >= SPEECH_RMS))

    def frame(self, voiced: bool) -> None:
        start, self.clock = self.clock, self.clock + FRAME_MS / 1000
        segment = self.segment
        if segment is None:
            if voiced:
                self.run_start = start if self.voiced_run == 0 else self.run_start
                self.voiced_run += FRAME_MS / 1000
                if self.voiced_run >= ONSET_MS / 1000:
                    self.begin(self.run_start)
            else:
                self.voiced_run = 0.0
                if self.last_word_end is not None and self.utterance_end is not None:
                    if self.clock - self.last_word_end >= self.utterance_end:
                        self.send({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": self.last_word_end})
                        self.last_word_end = None
            return
        if voiced:
            segment.end = self.clock
        if not segment.finalized and self.interim and voiced and self.clock >= segment.interim_at:
            segment.interim_at = self.clock + INTERIM_SECONDS
            spoken = max(1, int((segment.end - segment.start) / SPEECH_SECONDS_PER_WORD))
            if segment.text:
                self.send(self.results(segment, spoken, final=False))
        if self.clock - segment.end >= self.endpointing:
            if not segment.finalized:
                self.final(speech_final=True)
            self.last_word_end = segment.end  # speech may have gone on after a Finalize
            self.segment, self.voiced_run = None, 0.0

    def begin(self, start: float) -> None:
        text = self.script.pop(0) if self.script else ""
        self.segment = _Segment(text=text, start=start, end=self.clock, interim_at=start + INTERIM_SECONDS)
        self.last_word_end = None
        if self.vad_events:
            self.send({"type": "SpeechStarted", "channel": [0], "timestamp": round(start, 3)})

    def control(self, message: dict) -> bool:
        """A client message; False when the session ends (CloseStream)."""
        kind = message.get("type")
        if kind == "Finalize":
            if self.segment is not None and not self.segment.finalized:
                self.final(from_finalize=True)
            else:
                self.send(self.results(None, None, final=True, from_finalize=True), final=True)
                self.cursor = self.clock
            return True
        if kind == "CloseStream":
            if self.segment is not None and not self.segment.finalized:
                self.final(speech_final=True)
            self.send(self.metadata())
            return False
        return True  # KeepAlive, and anything else Deepgram ignores


def _sender(connection: ServerConnection, transcriber: _LiveTranscriber) -> None:
    """Sends the outbox in order, each message no sooner than it is due."""
    while (item := transcriber.outbox.get()) is not None:
        due, message = item
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        transcriber.session.messages.append(message)
        try:
            connection.send(json.dumps(message))
        except ConnectionClosed:
            return


def _live_refusal(standin: DeepgramStandIn, request: RecordedRequest) -> Reply | None:
    encoding = request.query.get("encoding")
    if encoding is not None and encoding not in LIVE_ENCODINGS:
        supported = ", ".join(LIVE_ENCODINGS)
        return standin.error_reply(400, f"Bad Request: encoding {encoding!r} is not supported here (use {supported})")
    if encoding is not None and not request.query.get("sample_rate", "").isdigit():
        return standin.error_reply(400, "Bad Request: sample_rate is required with encoding")
    if not request.query.get("channels", "1").isdigit():
        return standin.error_reply(400, "Bad Request: channels must be a number")
    return None
