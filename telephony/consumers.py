"""Telephony's websockets: the media stream Twilio opens for a call (``/ws/telephony/stream/<call id>/``).

Twilio connects with no cookie and no Origin and speaks its Media Streams
protocol: JSON text messages ``connected``, ``start`` (with our
``customParameters``), ``media`` (base64 mu-law audio), ``mark``, ``dtmf``
and ``stop``. The token we put in the TwiML (telephony/services/inbound.py)
comes back in ``start.customParameters.token``; it is redeemed once
(telephony/services/streams.py) and opens only this call's stream.

Until the conversation engine lands, an opened stream records
``stream.started`` and ``stream.stopped`` on the call's timeline and closes
cleanly on ``stop``. The engine plugs in by overriding the hook methods of
``MediaStreamConsumer`` (``on_stream_start``, ``on_media``, ``on_mark``,
``on_dtmf``, ``on_stream_stop``) or by subclassing it on the same route.
"""

from __future__ import annotations

import json
import logging

from channels.db import database_sync_to_async

from accounts.consumers import ProviderStreamConsumer

logger = logging.getLogger("jagcall.telephony")

CLOSE_NORMAL = 1000


@database_sync_to_async
def _redeem(call_id, token):
    from telephony.services.streams import stream_token_redeem

    return stream_token_redeem(call_id, token)


@database_sync_to_async
def _record_event(call, kind: str, details: dict):
    from telephony.services.calls import call_event_record

    return call_event_record(call=call, kind=kind, source="stream", details=details)


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
        await self.on_stream_start(self.start_message)

    async def streaming(self, *, text_data=None, bytes_data=None):
        if not text_data:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        event = message.get("event") if isinstance(message, dict) else None
        if event == "media":
            await self.on_media(message.get("media") or {})
        elif event == "mark":
            await self.on_mark(message.get("mark") or {})
        elif event == "dtmf":
            await self.on_dtmf(message.get("dtmf") or {})
        elif event == "stop":
            await self.on_stream_stop(message.get("stop") or {})
            await self._stopped("stop")
            await self.close(code=CLOSE_NORMAL)

    async def ended(self, code):
        await self._stopped(f"closed:{code}")

    async def _stopped(self, how: str):
        if getattr(self, "_stop_recorded", False):
            return
        self._stop_recorded = True
        await _record_event(self.call, "stream.stopped", {"stream_sid": self.stream_sid, "how": how[:30]})

    # --- where the conversation engine plugs in -------------------------------------------------

    async def on_stream_start(self, start: dict):
        """The stream of ``self.call`` is open (``start``: Twilio's start message: tracks, mediaFormat...)."""

    async def on_media(self, media: dict):
        """A chunk of the caller's audio (``media["payload"]``: base64 mu-law 8 kHz)."""

    async def on_mark(self, mark: dict):
        """Twilio played up to a mark we sent."""

    async def on_dtmf(self, dtmf: dict):
        """The caller pressed a key (``dtmf["digit"]``)."""

    async def on_stream_stop(self, stop: dict):
        """Twilio ends the stream (the call hung up or moved on)."""

    async def send_to_twilio(self, message: dict):
        """Send a Media Streams message (media, mark, clear) on this call's stream."""
        await self.send(text_data=json.dumps({**message, "streamSid": self.stream_sid}))
