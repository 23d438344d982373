"""Programmable Messaging and A2P 10DLC registration of the Twilio stand-in.

REST 2010, under ``/2010-04-01/Accounts/{AC}``:

    POST Messages.json            To, From or MessagingServiceSid, Body, MediaUrl (repeated), StatusCallback
    GET  Messages.json            To, From filters; newest first
    GET  Messages/{SM|MM}.json

Messaging v1 (messaging.twilio.com, reached on the path ``/v1/...``), for the authenticated account:

    GET/POST /v1/Services                                FriendlyName, InboundRequestUrl, StatusCallback...
    GET/POST /v1/Services/{MG}                           (POST updates its settings)
    GET/POST /v1/Services/{MG}/PhoneNumbers              PhoneNumberSid: one of the account's numbers
    GET      /v1/Services/{MG}/PhoneNumbers/{PN}
    GET/POST /v1/Services/{MG}/Compliance/Usa2p          the service's A2P campaign
    GET      /v1/Services/{MG}/Compliance/Usa2p/{QE}

A message is validated as Twilio validates it (21604, 21603, 21602, 21211, 21705, 21606, 21266, 21617,
21610, 21704...) and answered 201 "queued" ("accepted" when a Messaging Service picks the sender).
Then, from a background thread (``settle()`` waits for it) unless ``message_autodeliver`` is False
(``deliver_messages()`` then plays the pending ones), its status moves queued -> sent -> delivered, each
change posted to its StatusCallback (or its service's) signed as Twilio signs. ``message_outcomes[to]``
= ("undelivered", 30003) or ("failed", 30006) ends it otherwise; with ``a2p_enforced``, a US text from a
US number that no VERIFIED campaign covers ends undelivered with 30034, as carriers do.

Opt-outs: ``unsubscribe(sender, recipient)`` / ``resubscribe(...)``, where the sender is a number or a
Messaging Service sid; ``inbound_message`` applies Twilio's default keywords (STOP... / START...) the
same way. ``inbound_message`` posts the signed webhook Twilio sends for a text received, and sends
the ``<Message>`` replies of the TwiML it gets back. ``register_a2p`` sets a number up for A2P at once.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from xml.etree import ElementTree

from jagcall.kernel.standins.base import json_reply
from jagcall.kernel.standins.twilio import numbers as available
from jagcall.kernel.standins.twilio.driving import Callback
from jagcall.kernel.standins.twilio.messaging_records import (
    CAMPAIGN_FIELDS, CAMPAIGN_STATUSES, FINAL_MESSAGE_STATUSES, MAX_BODY_CHARS, SERVICE_SETTINGS, V1, Campaign,
    Message, MessagingService, iso8601, v1_page, v1_url,
)  # fmt: skip
from jagcall.kernel.standins.twilio.records import (
    API, NUMBER_SETTINGS, IncomingNumber, new_sid, not_found, now, page, twilio_error,
)  # fmt: skip

_ACCOUNT = rf"{API}/Accounts/(?P<account>AC[0-9a-f]{{32}})"
_SERVICE = rf"{V1}/Services/(?P<service>MG[0-9a-f]{{32}})"
MESSAGING_ROUTES = [
    (re.compile(rf"{_ACCOUNT}/Messages\.json"), "messages"),
    (re.compile(rf"{_ACCOUNT}/Messages/(?P<sid>(?:SM|MM)[0-9a-f]{{32}})\.json"), "message"),
    (re.compile(rf"{V1}/Services"), "services"),
    (re.compile(_SERVICE), "service"),
    (re.compile(rf"{_SERVICE}/PhoneNumbers"), "service_numbers"),
    (re.compile(rf"{_SERVICE}/PhoneNumbers/(?P<sid>PN[0-9a-f]{{32}})"), "service_number"),
    (re.compile(rf"{_SERVICE}/Compliance/Usa2p"), "campaigns"),
    (re.compile(rf"{_SERVICE}/Compliance/Usa2p/(?P<sid>QE[0-9a-f]{{32}})"), "campaign"),
]

# Twilio's default opt-out handling: a whole text of one of these words opts out of, or back into, a sender.
OPT_OUT_KEYWORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
OPT_IN_KEYWORDS = {"START", "YES", "UNSTOP"}
PRICE_PER_SEGMENT = 0.0079


class MessagingTwiML(str):
    """The receiver's answer to an incoming-message webhook (its TwiML): ``message_sid`` (the text
    received), ``status`` (what the receiver answered), ``replies`` (the Messages its TwiML sent)."""

    message_sid: str
    status: int | None
    replies: list[Message]


@dataclass
class _Step:
    status: str
    error_code: int | None = None


class Messaging:
    """Mixed into TwilioStandIn: needs ``accounts``, ``numbers``, ``applications``, ``callbacks``,
    ``_lock``, ``_opens``, ``_deliver`` and ``_in_background`` (driving.py)."""

    message_autodeliver = True  # play each message's statuses out by itself, after the answer
    message_step_delay = 0.0  # seconds before each status change of a message played out
    a2p_enforced = False  # US texts from US numbers no VERIFIED campaign covers end undelivered (30034)

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Message] = []  # sent: through the API, or as a TwiML reply
        self.inbound_messages: list[Message] = []  # received, by inbound_message()
        self.message_outcomes: dict[str, tuple[str, int]] = {}  # recipient -> (final status, error code)
        self.unsubscribed: set[tuple[str, str]] = set()  # (sender number or MG sid, recipient)
        self.messaging_services: dict[str, MessagingService] = {}
        self.campaigns: dict[str, Campaign] = {}
        self._undelivered: list[str] = []  # sids of messages waiting for deliver_messages()

    # -- test helpers ----------------------------------------------------------------------
    def unsubscribe(self, sender: str, recipient: str) -> None:
        """``recipient`` texted STOP to ``sender`` (a number, or a Messaging Service sid): Twilio refuses
        to text them from it (21610) until they text START."""
        with self._lock:
            self.unsubscribed.add((sender, recipient))

    def resubscribe(self, sender: str, recipient: str) -> None:
        with self._lock:
            self.unsubscribed.discard((sender, recipient))

    def deliver_messages(self, *sids: str) -> list[Callback]:
        """Play out the messages kept back while ``message_autodeliver`` was False (only ``sids``, if given),
        here and now; returns the status callbacks posted."""
        with self._lock:
            chosen = [sid for sid in self._undelivered if not sids or sid in sids]
            self._undelivered = [sid for sid in self._undelivered if sid not in chosen]
        posted: list[Callback] = []
        for sid in chosen:
            posted.extend(self._play_message(sid))
        return posted

    def message(self, sid: str) -> Message:
        with self._lock:
            found = self._find_message(sid)
        if found is None:
            raise LookupError(f"{sid} is not a message of this stand-in")
        return found

    def register_a2p(self, account_sid: str, number_e164: str, status: str = "VERIFIED") -> Campaign:
        """Make ``number_e164`` (bought for ``account_sid`` if the stand-in has no such number) a sender of
        a Messaging Service whose A2P campaign is in ``status``; returns the campaign."""
        if status not in CAMPAIGN_STATUSES:
            raise ValueError(f"Unknown campaign status {status!r}; expected one of {CAMPAIGN_STATUSES}")
        with self._lock:
            number = next((n for n in self.numbers.values() if n.phone_number == number_e164), None)
            if number is None:
                number = IncomingNumber(new_sid("PN"), account_sid, number_e164, dict(NUMBER_SETTINGS))
                self.numbers[number.sid] = number
            if number.account_sid != account_sid:
                raise ValueError(f"{number_e164} belongs to {number.account_sid}, not {account_sid}")
            service = self._service_of_number(number.sid)
            if service is None:
                service = MessagingService(new_sid("MG"), account_sid, dict(SERVICE_SETTINGS))
                service.settings["FriendlyName"] = f"A2P {number_e164}"
                service.number_sids[number.sid] = now()
                self.messaging_services[service.sid] = service
            campaign = self._campaign_of(service.sid)
            if campaign is None:
                fields = {name: default for name, (default, _) in CAMPAIGN_FIELDS.items()}
                fields.update(
                    BrandRegistrationSid=new_sid("BN"), UsAppToPersonUsecase="CUSTOMER_CARE",
                    Description="Appointment reminders and replies to patients who contacted the practice.",
                    MessageFlow="Patients give their number when booking and agree to receive texts.",
                    MessageSamples=["Your appointment is tomorrow at 10am. Reply STOP to opt out.",
                                    "Thanks for calling, we will text you when the results are in."],
                )  # fmt: skip
                campaign = Campaign(new_sid("QE"), account_sid, service.sid, fields)
                self.campaigns[campaign.sid] = campaign
            self.set_campaign_status(campaign.sid, status)
            return campaign

    def set_campaign_status(self, campaign_sid: str, status: str, errors: list[dict] | None = None) -> Campaign:
        """What the TCR and carriers decide for a campaign; ``errors`` as Twilio lists them when FAILED."""
        if status not in CAMPAIGN_STATUSES:
            raise ValueError(f"Unknown campaign status {status!r}; expected one of {CAMPAIGN_STATUSES}")
        with self._lock:
            campaign = self.campaigns[campaign_sid]
            campaign.campaign_status = status
            campaign.errors = list(errors or [])
            if status != "PENDING" and campaign.campaign_id is None:
                campaign.campaign_id = "C" + "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(6))
            campaign.updated = now()
            return campaign

    # -- lookups (under _lock) -------------------------------------------------------------
    def _find_message(self, sid: str) -> Message | None:
        return next((m for m in [*self.messages, *self.inbound_messages] if m.sid == sid), None)

    def _service_of_number(self, number_sid: str) -> MessagingService | None:
        return next((s for s in self.messaging_services.values() if number_sid in s.number_sids), None)

    def _campaign_of(self, service_sid: str) -> Campaign | None:
        return next((c for c in self.campaigns.values() if c.messaging_service_sid == service_sid), None)

    def _sender_numbers(self, service: MessagingService) -> list[IncomingNumber]:
        return [self.numbers[sid] for sid in service.number_sids if sid in self.numbers]

    def _opted_out(self, sender: str | None, service_sid: str | None, recipient: str) -> bool:
        number = next((n for n in self.numbers.values() if n.phone_number == sender), None)
        owning = self._service_of_number(number.sid) if number else None
        senders = {sender, service_sid, owning.sid if owning else None} - {None}
        return any((s, recipient) in self.unsubscribed for s in senders)

    # -- Messages --------------------------------------------------------------------------
    def _messages_post(self, request, principal, account):
        form = request.form
        to, from_ = form.get("To", "").strip(), form.get("From", "").strip()
        service_sid = form.get("MessagingServiceSid", "").strip()
        body, media = form.get("Body", ""), request.form_lists.get("MediaUrl", [])
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service_sid:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body and not media:
            return twilio_error(400, 21602, "Message body is required.")
        if not available.is_valid(to):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        service = self.messaging_services.get(service_sid) if service_sid else None
        if service_sid and (service is None or service.account_sid != account):
            return twilio_error(400, 21705, f"The Messaging Service Sid {service_sid} is invalid.")
        if from_:
            owned = next((n for n in self.numbers.values() if n.phone_number == from_), None)
            if owned is None or owned.account_sid != account or not owned.sms:
                message = f"The From phone number {from_} is not a valid message-capable Twilio phone number"
                return twilio_error(400, 21606, f"{message} for this account.")
        if to == from_:
            return twilio_error(400, 21266, "'To' and 'From' number cannot be the same")
        if len(body) > MAX_BODY_CHARS:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if any(not re.match(r"https?://[^/\s]+", url) for url in media):
            return twilio_error(400, 21620, "Invalid media URL(s)")
        callback = form.get("StatusCallback")
        if callback and not re.match(r"https?://[^/\s]+", callback):
            return twilio_error(400, 21609, f"Invalid StatusCallback url: {callback}")
        if self._opted_out(from_ or None, service_sid or None, to):
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        if service and not from_ and not [n for n in self._sender_numbers(service) if n.sms]:
            return twilio_error(400, 21704, f"The Messaging Service {service_sid} contains no phone numbers")
        message = Message(
            sid=new_sid("MM" if media else "SM"), account_sid=account, to=to, from_=from_ or None, body=body,
            direction="outbound-api", status="queued" if from_ else "accepted", media_urls=list(media),
            messaging_service_sid=service_sid or None, status_callback=callback or None,
        )  # fmt: skip
        self.messages.append(message)
        answer = json_reply(message.to_json(), status=201)  # the state as created, before any delivery
        self._dispatch_message(message)
        return answer

    def _messages_get(self, request, principal, account):
        items = [m for m in [*self.messages, *self.inbound_messages] if m.account_sid == account]
        for field, attribute in (("To", "to"), ("From", "from_")):
            if request.query.get(field):
                items = [m for m in items if getattr(m, attribute) == request.query[field]]
        items.reverse()  # newest first, also among those of the same second (the sort keeps their order)
        items.sort(key=lambda m: m.created, reverse=True)
        path = f"{API}/Accounts/{account}/Messages.json"
        return page(request, [m.to_json() for m in items], "messages", path)

    def _message_get(self, request, principal, account, sid):
        message = self._find_message(sid)
        if message is None or message.account_sid != account:
            return not_found(request.path)
        return json_reply(message.to_json())

    # -- delivery --------------------------------------------------------------------------
    def _dispatch_message(self, message: Message) -> None:
        """A message just sent (under ``_lock``): played out after the answer, or kept for deliver_messages()."""
        if message.status in FINAL_MESSAGE_STATUSES:
            return
        if self.message_autodeliver:
            self._in_background(self._play_message, message.sid)
        else:
            self._undelivered.append(message.sid)

    def _outcome(self, message: Message) -> _Step:
        if message.to in self.message_outcomes:
            status, code = self.message_outcomes[message.to]
            if status not in ("delivered", "undelivered", "failed"):
                raise ValueError(f"message_outcomes[{message.to!r}]: {status!r} is not delivered/undelivered/failed")
            return _Step(status, code)
        if self.a2p_enforced and not self._a2p_covers(message):
            return _Step("undelivered", 30034)
        return _Step("delivered")

    def _a2p_covers(self, message: Message) -> bool:
        if available.country_of(message.to) != "US" or available.country_of(message.from_ or "") != "US":
            return True  # 10DLC rules are for US long codes texting US handsets
        number = next((n for n in self.numbers.values() if n.phone_number == message.from_), None)
        service = self._service_of_number(number.sid) if number else None
        campaign = self._campaign_of(service.sid) if service else None
        return campaign is not None and campaign.campaign_status == "VERIFIED"

    def _play_message(self, sid: str) -> list[Callback]:
        """queued -> sent -> delivered (or the outcome chosen for the recipient), each posted if asked for."""
        with self._lock:
            message = self._find_message(sid)
            if message.from_ is None:  # the Messaging Service picks a sender from its pool
                service = self.messaging_services[message.messaging_service_sid]
                pool = [n.phone_number for n in self._sender_numbers(service) if n.sms]
                message.from_ = pool[0] if pool else None
            outcome = self._outcome(message) if message.from_ else _Step("failed", 21704)
        steps = [_Step("queued")] if outcome.status == "failed" else [_Step("queued"), _Step("sent")]
        posted: list[Callback] = []
        for step in [*steps, outcome]:
            time.sleep(self.message_step_delay)
            callback = self._message_status(message, step)
            if callback is not None:
                posted.append(callback)
        return posted

    def _message_status(self, message: Message, step: _Step) -> Callback | None:
        with self._lock:
            message.status, message.updated = step.status, now()
            if step.status == "sent":
                message.sent = now()
                message.price = f"-{PRICE_PER_SEGMENT * message.num_segments:.5f}"
            if step.error_code is not None:
                message.error_code = step.error_code
            service = self.messaging_services.get(message.messaging_service_sid or "")
            url = message.status_callback or (service.settings.get("StatusCallback") if service else None)
            params = {
                "AccountSid": message.account_sid,
                "ApiVersion": "2010-04-01",
                "From": message.from_ or "",
                "MessageSid": message.sid,
                "MessageStatus": step.status,
                "SmsSid": message.sid,
                "SmsStatus": step.status,
                "To": message.to,
            }
            if message.messaging_service_sid:
                params["MessagingServiceSid"] = message.messaging_service_sid
            if step.error_code is not None:
                params["ErrorCode"] = str(step.error_code)
            if step.status in ("delivered", "undelivered"):
                params["RawDlrDoneDate"] = now().strftime("%y%m%d%H%M")
        if not url:
            return None
        return self._deliver("message-status", message, url, "POST", params)

    # -- a text received -------------------------------------------------------------------
    def inbound_message(
        self, to_number: str, from_number: str, body: str, *, media_urls: list[str] | tuple = (), **extra: str
    ) -> MessagingTwiML:
        """Someone texts one of the stand-in's numbers: post the signed webhook Twilio sends (to the
        number's SmsUrl, its SmsApplicationSid's, or its Messaging Service's InboundRequestUrl) and return
        the receiver's TwiML; its ``<Message>`` replies are sent as Twilio sends them. ``extra`` are
        Twilio form fields added as given (e.g. ``OptOutType="STOP"`` under Advanced Opt-Out).
        LookupError when ``to_number`` is not a number of the stand-in or has nowhere to post."""
        with self._lock:
            number = next((n for n in self.numbers.values() if n.phone_number == to_number), None)
            if number is None:
                raise LookupError(f"{to_number} is not an IncomingPhoneNumber of this stand-in")
            service = self._service_of_number(number.sid)
            url, method = self._sms_webhook(number, service)
            if not url:
                raise LookupError(f"{to_number} has no SmsUrl (nor a Messaging Service InboundRequestUrl)")
            message = Message(
                sid=new_sid("MM" if media_urls else "SM"), account_sid=number.account_sid, to=to_number,
                from_=from_number, body=body, direction="inbound", status="received",
                media_urls=list(media_urls), messaging_service_sid=service.sid if service else None,
            )  # fmt: skip
            self.inbound_messages.append(message)
            keyword, sender = body.strip().upper(), service.sid if service else to_number
            if keyword in OPT_OUT_KEYWORDS:
                self.unsubscribed.add((sender, from_number))
            elif keyword in OPT_IN_KEYWORDS:
                self.unsubscribed.discard((sender, from_number))
        params = self._inbound_params(message)
        params.update({name: str(value) for name, value in extra.items()})
        callback = self._deliver("message", message, url, method, params)
        answer = MessagingTwiML(callback.response_body)
        answer.message_sid, answer.status = message.sid, callback.status
        answer.replies = self._follow_messaging_twiml(message, callback)
        return answer

    def _sms_webhook(self, number: IncomingNumber, service: MessagingService | None) -> tuple[str | None, str]:
        if service and not service.settings["UseInboundWebhookOnNumber"] and service.settings["InboundRequestUrl"]:
            return service.settings["InboundRequestUrl"], service.settings["InboundMethod"] or "POST"
        application = self.applications.get(number.settings.get("SmsApplicationSid") or "")
        settings = application.settings if application else number.settings
        return settings.get("SmsUrl"), settings.get("SmsMethod") or "POST"

    def _inbound_params(self, message: Message) -> dict[str, str]:
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": "2010-04-01",
            "Body": message.body,
            "From": message.from_,
            "MessageSid": message.sid,
            "NumMedia": str(len(message.media_urls)),
            "NumSegments": str(message.num_segments),
            "SmsMessageSid": message.sid,
            "SmsSid": message.sid,
            "SmsStatus": "received",
            "To": message.to,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        for prefix, number in (("From", message.from_), ("To", message.to)):
            country = available.country_of(number) or ""
            params.update({f"{prefix}Country": country, f"{prefix}State": "", f"{prefix}City": "", f"{prefix}Zip": ""})
        for index, url in enumerate(message.media_urls):
            params[f"MediaUrl{index}"], params[f"MediaContentType{index}"] = url, "image/jpeg"
        return params

    def _follow_messaging_twiml(self, received: Message, callback: Callback) -> list[Message]:
        """Send the ``<Message>`` replies of a webhook's TwiML (to the sender, from the number texted,
        unless ``to`` / ``from`` say otherwise); one to an unsubscribed recipient fails with 21610."""
        if callback.status != 200 or not callback.response_body.strip():
            return []
        try:
            root = ElementTree.fromstring(callback.response_body)
        except ElementTree.ParseError:
            return []
        replies: list[Message] = []
        with self._lock:
            for element in root.findall("./Message"):
                body_element = element.find("./Body")
                body = body_element.text if body_element is not None else element.text
                media = [m.text.strip() for m in element.findall("./Media") if m.text and m.text.strip()]
                to, from_ = element.get("to") or received.from_, element.get("from") or received.to
                reply = Message(
                    sid=new_sid("MM" if media else "SM"), account_sid=received.account_sid, to=to, from_=from_,
                    body=(body or "").strip(), direction="outbound-reply", status="queued", media_urls=media,
                    messaging_service_sid=received.messaging_service_sid,
                    status_callback=element.get("statusCallback") or element.get("action"),
                )  # fmt: skip
                if self._opted_out(from_, received.messaging_service_sid, to):
                    reply.status, reply.error_code = "failed", 21610
                self.messages.append(reply)
                replies.append(reply)
                self._dispatch_message(reply)
        return replies

    # -- Messaging Services (v1) -----------------------------------------------------------
    def _own_service(self, principal, sid: str) -> MessagingService | None:
        service = self.messaging_services.get(sid)
        return service if service and self._opens(principal, service.account_sid) else None

    def _service_json(self, service: MessagingService) -> dict:
        campaign = self._campaign_of(service.sid)
        return service.to_json(registered=campaign is not None and campaign.campaign_status == "VERIFIED")

    def _services_get(self, request, principal):
        items = [s for s in self.messaging_services.values() if s.account_sid == principal.sid]
        return v1_page(request, [self._service_json(s) for s in items], "services", f"{V1}/Services")

    def _services_post(self, request, principal):
        if not request.form.get("FriendlyName"):
            return twilio_error(400, 20001, "Missing required parameter FriendlyName in the post body")
        service = MessagingService(new_sid("MG"), principal.sid, dict(SERVICE_SETTINGS))
        service.apply(request.form)
        self.messaging_services[service.sid] = service
        return json_reply(self._service_json(service), status=201)

    def _service_get(self, request, principal, service):
        found = self._own_service(principal, service)
        return json_reply(self._service_json(found)) if found else not_found(request.path)

    def _service_post(self, request, principal, service):
        found = self._own_service(principal, service)
        if found is None:
            return not_found(request.path)
        found.apply(request.form)
        return json_reply(self._service_json(found))

    def _service_number_json(self, service: MessagingService, number: IncomingNumber) -> dict:
        capabilities = ["Voice"] + (["SMS", "MMS"] if number.sms else [])
        return {
            "sid": number.sid,
            "account_sid": service.account_sid,
            "service_sid": service.sid,
            "date_created": iso8601(service.number_sids[number.sid]),
            "date_updated": iso8601(service.number_sids[number.sid]),
            "phone_number": number.phone_number,
            "country_code": available.country_of(number.phone_number) or "",
            "capabilities": capabilities,
            "url": v1_url(f"{service.path}/PhoneNumbers/{number.sid}"),
        }

    def _service_numbers_get(self, request, principal, service):
        found = self._own_service(principal, service)
        if found is None:
            return not_found(request.path)
        items = [self._service_number_json(found, n) for n in self._sender_numbers(found)]
        return v1_page(request, items, "phone_numbers", f"{found.path}/PhoneNumbers")

    def _service_numbers_post(self, request, principal, service):
        found = self._own_service(principal, service)
        if found is None:
            return not_found(request.path)
        sid = request.form.get("PhoneNumberSid", "")
        number = self.numbers.get(sid)
        if number is None or number.account_sid != found.account_sid:
            return twilio_error(400, 21421, f"PhoneNumberSid {sid or '(none)'} is not a phone number of this account")
        if not number.sms:
            message = "Phone Number Does Not Have Correct Messaging Service Capabilities"
            return twilio_error(400, 21715, message)
        holder = self._service_of_number(sid)
        if holder is not None and holder.sid != found.sid:
            return twilio_error(409, 21712, "Phone Number or Short Code is associated with another Messaging Service.")
        found.number_sids.setdefault(sid, now())
        return json_reply(self._service_number_json(found, number), status=201)

    def _service_number_get(self, request, principal, service, sid):
        found = self._own_service(principal, service)
        if found is None or sid not in found.number_sids or sid not in self.numbers:
            return not_found(request.path)
        return json_reply(self._service_number_json(found, self.numbers[sid]))

    # -- US A2P campaigns (v1) -------------------------------------------------------------
    def _campaigns_get(self, request, principal, service):
        found = self._own_service(principal, service)
        if found is None:
            return not_found(request.path)
        items = [c.to_json() for c in self.campaigns.values() if c.messaging_service_sid == found.sid]
        return v1_page(request, items, "compliance", f"{found.path}/Compliance/Usa2p")

    def _campaigns_post(self, request, principal, service):
        found = self._own_service(principal, service)
        if found is None:
            return not_found(request.path)
        form, lists = request.form, request.form_lists
        for name in ("BrandRegistrationSid", "Description", "MessageFlow", "MessageSamples",
                     "UsAppToPersonUsecase", "HasEmbeddedLinks", "HasEmbeddedPhone"):  # fmt: skip
            if not form.get(name):
                return twilio_error(400, 20001, f"Missing required parameter {name} in the post body")
        if not re.fullmatch(r"BN[0-9a-fA-F]{32}", form["BrandRegistrationSid"]):
            return twilio_error(400, 20001, f"BrandRegistrationSid {form['BrandRegistrationSid']} is invalid")
        if len(form["Description"]) < 40 or len(form["MessageFlow"]) < 40:
            return twilio_error(400, 20001, "Description and MessageFlow must be at least 40 characters long")
        samples = lists["MessageSamples"]
        if not 2 <= len(samples) <= 5 or any(not 20 <= len(s) <= 1024 for s in samples):
            return twilio_error(400, 20001, "MessageSamples takes 2 to 5 samples of 20 to 1024 characters each")
        if self._campaign_of(found.sid) is not None:
            return twilio_error(409, 20409, f"Messaging Service {found.sid} already has an A2P campaign")
        fields = {}
        for name, (default, kind) in CAMPAIGN_FIELDS.items():
            if name not in form:
                fields[name] = default
            elif kind == "list":
                fields[name] = list(lists[name])
            elif kind == "bool":
                fields[name] = form[name].lower() == "true"
            else:
                fields[name] = form[name]
        campaign = Campaign(new_sid("QE"), found.account_sid, found.sid, fields)
        self.campaigns[campaign.sid] = campaign
        return json_reply(campaign.to_json(), status=201)

    def _campaign_get(self, request, principal, service, sid):
        found = self._own_service(principal, service)
        campaign = self.campaigns.get(sid)
        if found is None or campaign is None or campaign.messaging_service_sid != found.sid:
            return not_found(request.path)
        return json_reply(campaign.to_json())
