"""Telephony's websockets: the media stream Twilio opens for a call (``/ws/telephony/stream/<call id>/``).

Twilio connects with no cookie and no Origin and speaks its Media Streams
protocol: JSON text messages ``connected``, ``start`` (with our
``customParameters``), ``media`` (base64 mu-law audio), ``mark``, ``dtmf``
and ``stop``. The token we put in the TwiML (telephony/services/inbound.py)
comes back in ``start.customParameters.token``; it is redeemed once
(telephony/services/streams.py) and opens only this call's stream.

An opened stream records ``stream.started`` and ``stream.stopped`` on the
call's timeline (and marks a call still ringing as answered) and runs the call's conversation (telephony/engine/): the
pipeline is its own task, ``media`` and ``dtmf`` messages are only queued to
it (``receive`` never waits on the pipeline), ``mark`` tells it what the
caller has heard, and ``stop`` or a closed socket cancels it.
"""

from __future__ import annotations

import json
import logging

from channels.db import database_sync_to_async

from pipecat.serializers.twilio import TwilioFrameSerializer

from accounts.consumers import ProviderStreamConsumer
from telephony.engine.analyzers import warm_up
from telephony.engine.conversation import Conversation
from telephony.engine.transports import ConsumerLink

logger = logging.getLogger("jagcall.telephony")

CLOSE_NORMAL = 1000

# [!!] Pipecat and the two ONNX models load with this module (the web process's start), never inside
# a call: a second's import on the event loop would stall every socket the process serves.
warm_up()


@database_sync_to_async
def _redeem(call_id, token):
    from telephony.services.streams import stream_token_redeem

    return stream_token_redeem(call_id, token)


@database_sync_to_async
def _record_event(call, kind: str, details: dict):
    from telephony.services.calls import call_event_record

    return call_event_record(call=call, kind=kind, source="stream", details=details)


@database_sync_to_async
def _mark_answered(call):
    from telephony.services.calls import call_answered_by_stream

    return call_answered_by_stream(call=call)


@database_sync_to_async
def _conversation_settings(call, answered_by: str):
    from telephony.services.conversations import conversation_settings

    return conversation_settings(call, answered_by=answered_by)


@database_sync_to_async
def _hang_up(call, reason: str):
    from telephony.services.conversations import call_hang_up

    call_hang_up(call, reason=reason)


@database_sync_to_async
def _record_refusal(*, call_id, reason: str, client: str | None, call=None):
    from accounts.security_events import emit

    organization = call.organization if call is not None else None
    emit(
        "telephony.stream_refused",
        organization=organization,
        ip=client,
        reason=reason,
        call_id=str(call_id),
    )


class MediaStreamConsumer(ProviderStreamConsumer):
    """One call's media stream. ``self.call`` is the call the token opened; ``self.stream_sid`` Twilio's stream."""

    call = None
    stream_sid = ""
    refusal_reason = ""
    _refused_call = None

    @property
    def call_id(self):
        return self.scope["url_route"]["kwargs"]["call_id"]

    # --- authentication (ProviderStreamConsumer) ---------------------------------------------

    async def authenticate(self, *, text_data=None, bytes_data=None) -> bool | None:
        message = json.loads(text_data) if text_data else None
        if not isinstance(message, dict):
            self.refusal_reason = "unreadable"
            return False
        event = message.get("event")
        if event == "connected":
            return None
        if event != "start":
            self.refusal_reason = "missing"
            return False
        start = message.get("start") or {}
        parameters = start.get("customParameters") or {}
        from telephony.services.streams import StreamTokenRefused

        try:
            self.call = await _redeem(self.call_id, parameters.get("token"))
        except StreamTokenRefused as refusal:
            self.refusal_reason, self._refused_call = refusal.reason, refusal.call
            return False
        self.organization = self.call.organization
        self.stream_sid = str(message.get("streamSid") or start.get("streamSid") or "")[:64]
        self.start_message = start
        return True

    async def refused(self, reason: str):
        client = self.scope.get("client")
        logger.warning("media stream for call %s refused: %s", self.call_id, reason)
        # [!!] A call the token belongs to, not the one the URL names: the refusal is that organization's concern.
        call = self._refused_call
        await _record_refusal(call_id=self.call_id, reason=reason, client=client[0] if client else None, call=call)

    async def started(self):
        tracks = self.start_message.get("tracks") or []
        await _record_event(self.call, "stream.started", {"stream_sid": self.stream_sid, "tracks": list(tracks)[:4]})
        self.call = await _mark_answered(self.call)
        await self.on_stream_start(self.start_message)

    conversation = None

    async def streaming(self, *, text_data=None, bytes_data=None):
        if not text_data:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        event = message.get("event") if isinstance(message, dict) else None
        if event in ("media", "dtmf"):
            if self.conversation is not None:
                self.conversation.link.feed(text_data)  # only queued: the pipeline reads it in its own task
        elif event == "mark":
            await self.on_mark(message.get("mark") or {})
        elif event == "stop":
            await self.on_stream_stop(message.get("stop") or {})
            await self._stopped("stop")
            await self.close(code=CLOSE_NORMAL)

    async def ended(self, code):
        await self._stopped(f"closed:{code}")
        await self._end_conversation()

    async def _end_conversation(self):
        conversation, self.conversation = self.conversation, None
        if conversation is not None:
            await conversation.stop()

    async def _stopped(self, how: str):
        if getattr(self, "_stop_recorded", False):
            return
        self._stop_recorded = True
        await _record_event(self.call, "stream.stopped", {"stream_sid": self.stream_sid, "how": how[:30]})

    # --- the conversation -------------------------------------------------------------------

    async def on_stream_start(self, start: dict):
        """Start the call's conversation (its agent, disclosures, tools), or hang up if it cannot run."""
        parameters = start.get("customParameters") or {}
        settings = await _conversation_settings(self.call, str(parameters.get("answered_by") or "")[:40])
        problem = "no_agent" if settings is None else ("missing_keys" if settings.missing_keys() else "")
        if problem:
            details = {"reason": problem}
            if settings is not None:
                details["providers"] = settings.missing_keys()
            logger.warning("call %s: no conversation can run (%s)", self.call.pk, problem)
            await _record_event(self.call, "engine.unavailable", details)
            await _hang_up(self.call, problem)
            return
        serializer = TwilioFrameSerializer(
            self.stream_sid,
            call_sid=str(start.get("callSid") or "") or None,
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),  # the engine hangs up itself (call_end)
        )
        link = ConsumerLink(self._send_text, serializer=serializer, stream_sid=self.stream_sid, marks=True)
        self.conversation = Conversation(settings, link)
        self.conversation.start()

    async def _send_text(self, data):
        if isinstance(data, bytes):
            await self.send(bytes_data=data)
        else:
            await self.send(text_data=data)

    async def on_mark(self, mark: dict):
        """Twilio played our audio up to a mark: the caller has heard it."""
        if self.conversation is not None:
            self.conversation.on_mark(str(mark.get("name") or ""))

    async def on_stream_stop(self, stop: dict):
        """Twilio ends the stream (the call hung up or moved on)."""
        await self._end_conversation()
