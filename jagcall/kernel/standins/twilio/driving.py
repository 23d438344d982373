"""Playing calls out, and the webhooks Twilio sends while it does: status callbacks, the voice
request when a call is answered (or rings in), recording callbacks. Each is signed like
Twilio's (X-Twilio-Signature by RequestValidator with the auth token of the account the call
belongs to, over the exact callback URL and form), carries I-Twilio-Idempotency-Token, and is
kept in ``callbacks`` with the status the receiver answered.

A voice webhook answered with ``<Connect><Stream url>`` opens a simulated caller on that Media Stream
(media.py) when the call has a script of its own (``inbound_call(..., script=[...])``, kept in
``call_scripts``) or ``media_caller_script`` is set (a list of steps, or a callable taking the call
and returning one): the call stays in progress while the stream lives and completes when it ends;
ending or redirecting the call through the REST API stops the stream first, as Twilio does.
``call_twiml[sid]`` keeps every TwiML a call followed (its voice webhook's answer, then updates).

Delivery is plain HTTP by default; ``route_callbacks_to(client)`` hands callbacks to a Django
test client instead (for tests whose webhook views are not served on a port).
"""

from __future__ import annotations

import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from xml.etree import ElementTree
from dataclasses import dataclass

from twilio.request_validator import RequestValidator

from jagcall.kernel.standins.twilio.media import MediaStreamCaller
from jagcall.kernel.standins.twilio.numbers import country_of
from jagcall.kernel.standins.twilio.records import (
    EVENT_OF_STATUS,
    FINAL_STATUSES,
    Call,
    Recording,
    new_sid,
    now,
    rfc2822,
)

# (method, url, form params, headers) -> (HTTP status or None if unreachable, response body)
Transport = Callable[[str, str, dict[str, str], dict[str, str]], tuple[int | None, str]]
SIP_CODE = {"completed": "200", "busy": "486", "no-answer": "487", "canceled": "487", "failed": "500"}


@dataclass
class Callback:
    kind: str  # "status" | "voice" | "recording" | "message" (a text received) | "message-status"
    call_sid: str  # the call's sid; the message's, for the "message" kinds (messaging.py)
    url: str  # the URL that was signed (for GET: with the form in its query)
    method: str
    params: dict[str, str]
    headers: dict[str, str]
    status: int | None  # what the receiver answered; None when it could not be reached
    response_body: str


class TwiMLResponse(str):
    """The receiver's answer to a voice webhook (its TwiML), with the call it belongs to."""

    call_sid: str
    status: int | None


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_transport(method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int | None, str]:
    data = urllib.parse.urlencode(params).encode() if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _NO_PROXY.open(request, timeout=15) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as error:
        return None, str(error)


def django_client_transport(client) -> Transport:
    """Deliver callbacks through a Django test client (path and query of the URL; headers as META)."""

    def send(method: str, url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int | None, str]:
        parts = urllib.parse.urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        meta = {
            "HTTP_" + name.upper().replace("-", "_"): value
            for name, value in headers.items()
            if name.lower() != "content-type"
        }
        if method == "GET":
            response = client.get(path, **meta)
        else:
            body = urllib.parse.urlencode(params)
            response = client.post(path, data=body, content_type="application/x-www-form-urlencoded", **meta)
        return response.status_code, response.content.decode("utf-8", "replace")

    return send


class CallDriving:
    """Mixed into TwilioStandIn: needs ``accounts``, ``calls``, ``numbers``, ``recordings``, ``media_callers``
    (call sid -> MediaStreamCaller), ``call_scripts`` (call sid -> its simulated caller's steps),
    ``call_twiml`` (call sid -> TwiML followed) and ``_lock``."""

    autopilot = False  # every created call plays out by itself (simulated mode)
    autopilot_delay = 0.5  # seconds before, and between, the steps of an autopiloted call
    autopilot_duration = 8  # seconds of conversation an autopiloted call reports (and its recording lasts)
    autopilot_talk: float | None = None  # seconds an autopiloted call stays in progress (None: autopilot_delay)
    transport: Transport = staticmethod(http_transport)
    media_caller_script: list | Callable[[Call], list] | None = None  # see the module docstring
    media_stream_limit = 600.0  # seconds a simulated Media Stream may last before the stand-in hangs up

    def route_callbacks_to(self, client) -> None:
        self.transport = django_client_transport(client)

    # -- webhooks ------------------------------------------------------------------------
    def _deliver(self, kind: str, call: Call, url: str, method: str, params: dict[str, str]) -> Callback:
        method = (method or "POST").upper()
        token = self.accounts[call.account_sid].auth_token
        if method == "GET":
            url = url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
            signed_params: dict[str, str] = {}
        else:
            signed_params = params
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "User-Agent": "TwilioProxy/1.1",
            "X-Twilio-Signature": RequestValidator(token).compute_signature(url, signed_params),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        }
        status, body = self.transport(method, url, signed_params, headers)
        callback = Callback(kind, call.sid, url, method, dict(params), headers, status, body)
        with self._lock:
            self.callbacks.append(callback)
        return callback

    def _call_params(self, call: Call) -> dict[str, str]:
        to_country, from_country = country_of(call.to) or "", country_of(call.from_) or ""
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": call.status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": call.direction,
            "From": call.from_,
            "To": call.to,
        }
        sides = (("From", from_country), ("To", to_country), ("Caller", from_country), ("Called", to_country))
        for prefix, country in sides:
            params.update({f"{prefix}Country": country, f"{prefix}State": "", f"{prefix}City": "", f"{prefix}Zip": ""})
        if call.answered_by:
            params["AnsweredBy"] = call.answered_by
        return params

    # -- driving -------------------------------------------------------------------------
    def advance(self, call_sid: str, status: str, **extra: str) -> Callback | None:
        """Move a call to ``status`` and post the status callback if the call subscribed to its event.

        ``extra`` are Twilio form fields added to the callback as given (e.g. ``AnsweredBy="human"``,
        ``CallDuration="42"``, which also sets the call's duration). Reaching in-progress on an
        outbound call first requests its Url (the voice webhook), as Twilio does on answer.
        """
        call, params = self._set_status(call_sid, status, extra)
        return self._notify_status(call, status, params, extra)

    def _set_status(self, call_sid: str, status: str, extra: dict[str, str]) -> tuple[Call, dict[str, str]]:
        if status not in EVENT_OF_STATUS:
            raise ValueError(f"Unknown call status {status!r}; expected one of {sorted(EVENT_OF_STATUS)}")
        with self._lock:
            call = self.calls[call_sid]
            call.status = status
            call.updated = now()
            if "AnsweredBy" in extra:
                call.answered_by = extra["AnsweredBy"]
            if status == "in-progress" and call.start_time is None:
                call.start_time = now()
            if status in FINAL_STATUSES:
                call.end_time = now()
                if "CallDuration" in extra:
                    call.duration = int(extra["CallDuration"])
                elif call.duration is None:
                    call.duration = int((call.end_time - call.start_time).total_seconds()) if call.start_time else 0
            call.sequence += 1
            params = self._call_params(call)
            params["SequenceNumber"] = str(call.sequence - 1)
        return call, params

    def _notify_status(self, call: Call, status: str, params: dict[str, str], extra: dict[str, str]) -> Callback | None:
        sequence = params.pop("SequenceNumber")
        if status == "in-progress" and call.direction == "outbound-api" and call.params.get("Url"):
            answer = self._deliver("voice", call, call.params["Url"], call.params.get("Method", "POST"), params)
            self._follow_twiml(call, answer)
        url = call.params.get("StatusCallback")
        if not url or EVENT_OF_STATUS[status] not in call.status_callback_events:
            return None
        params.update(
            {"CallbackSource": "call-progress-events", "SequenceNumber": sequence, "Timestamp": rfc2822(now())}
        )
        if status in FINAL_STATUSES:
            params["SipResponseCode"] = SIP_CODE[status]
            params["CallDuration"] = str(call.duration or 0)
            params["Duration"] = str(math.ceil((call.duration or 0) / 60))
        params.update({name: str(value) for name, value in extra.items()})
        return self._deliver("status", call, url, call.params.get("StatusCallbackMethod", "POST"), params)

    def _in_background(self, target: Callable, *args, **kwargs) -> None:
        """Work that Twilio does after answering a request (callbacks), never inside the request."""
        thread = threading.Thread(
            target=target, args=args, kwargs=kwargs, name="twilio-stand-in-callbacks", daemon=True
        )
        with self._lock:
            self._background = [t for t in getattr(self, "_background", []) if t.is_alive()] + [thread]
        thread.start()

    def settle(self, timeout: float = 10.0) -> None:
        """Wait for the callbacks that requests and the autopilot set off (tests call this before asserting)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [t for t in getattr(self, "_background", []) if t.is_alive()]
            if not pending:
                return
            pending[0].join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(pending)} stand-in callback thread(s) still running after {timeout}s")

    def complete_call(
        self, call_sid: str, *, duration: int = 30, record: bool | None = True, step_delay: float = 0,
        talk_seconds: float | None = None,
    ) -> list[Callback]:
        """Play a call to its end: (initiated, ringing,) in-progress, completed; then, when
        ``record`` (None: as the call's Record asked), make a recording and post its callback.
        ``step_delay`` seconds pass before each step, ``talk_seconds`` (default: step_delay) while
        the call is in progress. Returns the callbacks posted. Stops early if the call was ended
        meanwhile (e.g. canceled)."""
        posted: list[Callback] = []
        call = self.calls[call_sid]
        steps = ["initiated", "ringing", "in-progress"] if call.direction != "inbound" else ["in-progress"]
        for step in steps:
            if call.status in FINAL_STATUSES:
                return posted
            if call.status == step:
                continue
            time.sleep(step_delay)
            posted.append(self.advance(call_sid, step))
        if call_sid in self.media_callers:
            return [c for c in posted if c]  # the Media Stream's end completes the call (_media_call)
        time.sleep(step_delay if talk_seconds is None else talk_seconds)
        if call.status in FINAL_STATUSES:
            return [c for c in posted if c]
        posted.append(self.advance(call_sid, "completed", CallDuration=str(duration)))
        if record is None:
            record = call.params.get("Record", "").lower() == "true" or call.started_recording
        if record:
            posted.append(self.record_call(call_sid, duration=duration))
        return [c for c in posted if c]

    def record_call(self, call_sid: str, *, duration: int = 30) -> Callback | None:
        """Add a finished recording to a call and post its RecordingStatusCallback (if any)."""
        call = self.calls[call_sid]
        channels = 2 if call.params.get("RecordingChannels", "mono").lower() == "dual" else 1
        source = "OutboundAPI" if call.params.get("Record", "").lower() == "true" else "StartCallRecordingAPI"
        source = "StartCallRecordingTwiML" if call.started_recording else source
        recording = Recording(
            sid=new_sid("RE"), account_sid=call.account_sid, call_sid=call.sid, duration=duration,
            channels=channels, source=source, start_time=call.start_time or now(),
        )  # fmt: skip
        with self._lock:
            self.recordings[recording.sid] = recording
            call.recording_sids.append(recording.sid)
        url = call.params.get("RecordingStatusCallback")
        events = set(call.params.get("RecordingStatusCallbackEvent", "completed").replace(",", " ").split())
        if not url or "completed" not in events:
            return None
        params = {
            "AccountSid": call.account_sid,
            "CallSid": call.sid,
            "RecordingSid": recording.sid,
            "RecordingUrl": self.base_url + recording.path,
            "RecordingStatus": "completed",
            "RecordingDuration": str(duration),
            "RecordingChannels": str(channels),
            "RecordingStartTime": rfc2822(recording.start_time),
            "RecordingSource": source,
            "RecordingTrack": call.params.get("RecordingTrack", "both"),
            "ErrorCode": "0",
        }
        return self._deliver("recording", call, url, call.params.get("RecordingStatusCallbackMethod", "POST"), params)

    def _follow_twiml(self, call: Call, callback: Callback) -> None:
        """What the stand-in does with a voice webhook's TwiML: ``<Start><Recording>`` starts the call's
        recording, whose callback (its attributes) is posted when the call ends; ``<Connect><Stream>``
        opens a simulated caller on the stream when ``media_caller_script`` is set."""
        if callback.status != 200 or not callback.response_body.strip():
            return
        self._remember_twiml(call, callback.response_body)
        try:
            root = ElementTree.fromstring(callback.response_body)
        except ElementTree.ParseError:
            return
        recording = root.find("./Start/Recording")
        if recording is not None:
            with self._lock:
                call.started_recording = True
                for attribute, param in (
                    ("recordingStatusCallback", "RecordingStatusCallback"),
                    ("recordingStatusCallbackEvent", "RecordingStatusCallbackEvent"),
                    ("recordingStatusCallbackMethod", "RecordingStatusCallbackMethod"),
                    ("channels", "RecordingChannels"),
                    ("track", "RecordingTrack"),
                ):
                    if recording.get(attribute):
                        call.params[param] = recording.get(attribute)
        stream = root.find("./Connect/Stream")
        scripted = call.sid in self.call_scripts or self.media_caller_script is not None
        if stream is not None and stream.get("url") and scripted:
            parameters = {p.get("name"): p.get("value", "") for p in stream.findall("./Parameter") if p.get("name")}
            self._open_media_stream(call, stream.get("url"), parameters)

    # -- Media Streams ---------------------------------------------------------------------
    def _remember_twiml(self, call: Call, twiml: str) -> None:
        with self._lock:
            self.call_twiml.setdefault(call.sid, []).append(twiml)

    def stop_media_streams(self, timeout: float = 15.0) -> None:
        """Hang up every live simulated Media Stream (their calls complete) and wait for them. A stream that
        was connecting, or whose server is slow to answer the websocket's close, can take seconds on a busy
        machine; a stopped one returns at once."""
        with self._lock:
            callers = [caller for caller in self.media_callers.values() if not caller.done]
        for caller in callers:
            caller.stop()
        for caller in callers:
            caller.wait(timeout)

    def _open_media_stream(self, call: Call, url: str, parameters: dict[str, str]) -> None:
        script = self.call_scripts.get(call.sid)
        if script is None:
            script = self.media_caller_script
        steps = list(script(call) if callable(script) else script)
        caller = MediaStreamCaller(
            url, script=steps, parameters=parameters, call_sid=call.sid, account_sid=call.account_sid
        )  # fmt: skip
        with self._lock:
            self.media_callers[call.sid] = caller
        thread = threading.Thread(target=self._media_call, args=(call, caller), name="twilio-media-stream", daemon=True)
        thread.start()

    def _media_call(self, call: Call, caller: MediaStreamCaller) -> None:
        """The call lives as long as its stream; then it completes as the autopilot completes calls."""
        if call.status not in ("in-progress", *FINAL_STATUSES):
            self.advance(call.sid, "in-progress")
        began = time.monotonic()
        caller.start()
        try:
            caller.wait(self.media_stream_limit)
        except TimeoutError:
            caller.stop()
            caller.wait(10)
        # As a background step, so that settle() waits for the callbacks of a call seen completed.
        self._in_background(self._media_call_end, call, max(1, round(time.monotonic() - began)))

    def _media_call_end(self, call: Call, duration: int) -> None:
        if call.status not in FINAL_STATUSES:
            self.advance(call.sid, "completed", CallDuration=str(duration))
        if call.params.get("Record", "").lower() == "true" or call.started_recording:
            self.record_call(call.sid, duration=duration)

    def _media_update(self, call: Call, form: dict[str, str]) -> None:
        """A call update through the REST API (under ``_lock``): a new status, Twiml or Url ends the
        call's Media Stream (Twilio sends ``stop`` and closes it); the new TwiML is kept on the call."""
        caller = self.media_callers.get(call.sid)
        if caller is None or caller.done:
            return
        if not (form.get("Status") or form.get("Twiml") or form.get("Url")):
            return
        if form.get("Twiml"):
            self.call_twiml.setdefault(call.sid, []).append(form["Twiml"])
        elif form.get("Url") and not form.get("Status"):
            self._in_background(self._fetch_redirect, call, form["Url"], form.get("Method", "POST"))
        caller.stop()

    def _fetch_redirect(self, call: Call, url: str, method: str) -> None:
        answer = self._deliver("voice", call, url, method, self._call_params(call))
        if answer.status == 200 and answer.response_body.strip():
            self._remember_twiml(call, answer.response_body)

    def inbound_call(self, to: str, from_: str, *, script: list | None = None, **extra: str) -> TwiMLResponse:
        """A caller rings one of the stand-in's numbers: post the signed voice webhook to the
        number's VoiceUrl and return the receiver's TwiML (``.call_sid``, ``.status`` on it).
        ``script``: the steps this caller speaks if the answer connects a Media Stream (media.py)."""
        call, voice = self.ring(to, from_, script=script)
        return self.answer_inbound(call, voice, **extra)

    def ring(self, to: str, from_: str, *, script: list | None = None, account_sid: str | None = None):
        """The first half of ``inbound_call``: the call exists (ringing), its webhook is not posted yet.

        Returns (call, the number's voice webhook as (url, method)). LookupError when ``to`` is not one
        of the stand-in's numbers (of ``account_sid``, when given) or has no VoiceUrl.
        """
        with self._lock:
            number = next(
                (n for n in self.numbers.values()
                 if n.phone_number == to and (account_sid is None or n.account_sid == account_sid)),
                None,
            )  # fmt: skip
            if number is None:
                raise LookupError(f"{to} is not an IncomingPhoneNumber of this stand-in")
            voice_url = number.settings.get("VoiceUrl")
            if not voice_url:
                raise LookupError(f"{to} has no VoiceUrl")
            callback_url = number.settings.get("StatusCallback")
            call = Call(
                sid=new_sid("CA"), account_sid=number.account_sid, to=to, from_=from_, direction="inbound",
                params={"StatusCallback": callback_url or "",
                        "StatusCallbackMethod": number.settings.get("StatusCallbackMethod") or "POST"},
                status_callback_events={"completed"}, phone_number_sid=number.sid, status="ringing",
            )  # fmt: skip
            self.calls[call.sid] = call
            if script is not None:
                self.call_scripts[call.sid] = list(script)
        return call, (voice_url, number.settings.get("VoiceMethod") or "POST")

    def answer_inbound(self, call: Call, voice: tuple[str, str], **extra: str) -> TwiMLResponse:
        """The second half of ``inbound_call``: post the voice webhook, follow its TwiML (and the autopilot)."""
        with self._lock:
            params = self._call_params(call)
        params.update({"CallToken": uuid.uuid4().hex, "StirVerstat": "TN-Validation-Passed-A"})
        params.update({name: str(value) for name, value in extra.items()})
        callback = self._deliver("voice", call, voice[0], voice[1], params)
        self._follow_twiml(call, callback)
        answer = TwiMLResponse(callback.response_body)
        answer.call_sid, answer.status = call.sid, callback.status
        if self.autopilot:
            self._autopilot(call.sid)
        return answer

    def _autopilot(self, call_sid: str) -> None:
        self._in_background(
            self.complete_call, call_sid, duration=self.autopilot_duration, record=None,
            step_delay=self.autopilot_delay, talk_seconds=self.autopilot_talk,
        )  # fmt: skip
