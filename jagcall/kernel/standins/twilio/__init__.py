"""A stand-in for Twilio's REST API 2010 (the JSON twilio 9.x parses) and the webhooks Twilio sends.

    standin = TwilioStandIn().start()          # or TwilioStandIn(account_sid, auth_token)
    client = twilio.rest.Client(standin.account_sid, standin.auth_token, http_client=<host rewriter>)

Resources (under /2010-04-01/Accounts): Accounts (subaccounts with their own auth token; fetch,
list, update FriendlyName/Status), AvailablePhoneNumbers/{US,CA,GB}/Local (AreaCode, Contains,
SmsEnabled, VoiceEnabled), IncomingPhoneNumbers (buy by PhoneNumber or AreaCode, list with
PhoneNumber filter, fetch, update incl. moving to another of the caller's accounts, delete),
Calls (create, list, fetch, update Status/Url/Twiml), Keys and Applications (browser calling; see
browser.py), Recordings (list, fetch, delete; media at
``Recordings/{RE}`` / ``.wav`` / ``.mp3``, which needs the account's credentials unless
``media_requires_auth`` is False), Messages (send, list with To/From filters, fetch; see messaging.py).
Messaging v1 (messaging.twilio.com, on the path ``/v1/...``): Services (create, list, fetch, update),
their PhoneNumbers (add one of the account's numbers, list, fetch) and Compliance/Usa2p (the
service's US A2P 10DLC campaign: create, list, fetch); ``register_a2p()`` sets one up at once.

Requests authenticate with HTTP Basic: an account's SID and auth token (the parent's also open its
subaccounts), or an API key from ``add_api_key()``; anything else gets Twilio's 401 (code 20003).
Calls are played out by ``advance`` / ``complete_call`` / ``inbound_call`` or, with
``autopilot = True``, by themselves (see driving.py); ``callbacks`` keeps what was posted.
Callbacks set off by a request (a call canceled or hung up through the API, the autopilot) are
posted from a background thread, after the answer, as Twilio does: ``settle()`` waits for them.
``route_callbacks_to(django_test_client)`` delivers callbacks without a listening server.
A message sent is played out (queued, sent, delivered, or ``message_outcomes[to]``) with signed
status callbacks the same way; ``messages`` keeps what was sent, ``inbound_message`` texts a number.
A voice webhook answered with ``<Connect><Stream>`` is spoken to by a simulated caller (media.py)
when ``media_caller_script`` is set, or the call was rung with a script of its own;
``media_callers[call_sid]`` holds it (see driving.py). Under ``/stand-in/`` (never Twilio's API) a
simulated caller can be rung over HTTP with one of ``caller_scripts`` (see control.py), for a process
that does not hold the stand-in (the web server in simulated mode).
For failure tests (all stand-ins): ``fail_next(status, message, path_prefix=..., times=...)``
and ``delay_seconds``.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable

from jagcall.kernel.standins.base import RecordedRequest, Reply, StandIn, json_reply
from jagcall.kernel.standins.twilio import numbers as available
from jagcall.kernel.standins.twilio.browser import BROWSER_ROUTES, BrowserCalling
from jagcall.kernel.standins.twilio.control import CONTROL_ROUTES, StandInControl
from jagcall.kernel.standins.twilio.driving import Callback, CallDriving, TwiMLResponse
from jagcall.kernel.standins.twilio.media import BargeIn, Dtmf, Hangup, MediaStreamCaller, Pause, Say
from jagcall.kernel.standins.twilio.messaging import MESSAGING_ROUTES, Messaging, MessagingTwiML
from jagcall.kernel.standins.audio import mp3_bytes, wav_bytes
from jagcall.kernel.standins.twilio.records import (
    API, FINAL_STATUSES, NUMBER_SETTINGS, Account, Call, IncomingNumber, Recording,
    new_sid, not_found, now, page, twilio_error,
)  # fmt: skip

__all__ = [
    "BargeIn", "Callback", "Dtmf", "Hangup", "MediaStreamCaller", "MessagingTwiML", "Pause", "Say", "TwilioStandIn",
    "TwiMLResponse",
]  # fmt: skip

MAX_RECORDING_SECONDS = 60
ACCOUNT = rf"{API}/Accounts/(?P<account>AC[0-9a-f]{{32}})"
ROUTES = [
    (re.compile(rf"{API}/Accounts\.json"), "accounts"),
    (re.compile(rf"{ACCOUNT}\.json"), "account"),
    (re.compile(rf"{ACCOUNT}/AvailablePhoneNumbers/(?P<country>[A-Za-z]{{2}})/Local\.json"), "available"),
    (re.compile(rf"{ACCOUNT}/IncomingPhoneNumbers\.json"), "numbers"),
    (re.compile(rf"{ACCOUNT}/IncomingPhoneNumbers/(?P<sid>PN[0-9a-f]{{32}})\.json"), "number"),
    (re.compile(rf"{ACCOUNT}/Calls\.json"), "calls"),
    (re.compile(rf"{ACCOUNT}/Calls/(?P<sid>CA[0-9a-f]{{32}})\.json"), "call"),
    (re.compile(rf"{ACCOUNT}/(?:Calls/(?P<call>CA[0-9a-f]{{32}})/)?Recordings\.json"), "recordings"),
    (re.compile(rf"{ACCOUNT}/Recordings/(?P<sid>RE[0-9a-f]{{32}})(?P<ext>\.json|\.wav|\.mp3)?"), "recording"),
    *BROWSER_ROUTES,
    *MESSAGING_ROUTES,
    *CONTROL_ROUTES,
]


class TwilioStandIn(CallDriving, BrowserCalling, Messaging, StandInControl, StandIn):
    name = "twilio"
    media_requires_auth = True

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        super().__init__()
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.accounts: dict[str, Account] = {
            self.account_sid: Account(self.account_sid, self.auth_token, "JagCall platform", self.account_sid)
        }
        self.api_keys: dict[str, tuple[str, str]] = {}  # SK sid -> (secret, account sid)
        self.verified_caller_ids: set[str] = set()  # numbers a call may come From besides owned ones
        self.numbers: dict[str, IncomingNumber] = {}
        self.calls: dict[str, Call] = {}
        self.recordings: dict[str, Recording] = {}
        self.callbacks: list[Callback] = []
        self.media_callers: dict[str, MediaStreamCaller] = {}  # call sid -> its simulated Media Stream
        self.call_twiml: dict[str, list[str]] = {}  # call sid -> every TwiML the call followed, in order
        self.call_scripts: dict[str, list] = {}  # call sid -> the steps its simulated caller speaks
        self.caller_scripts: dict[str, Callable[[], list]] = {}  # name -> steps, for /stand-in/ rings

    def stop(self) -> None:
        self.stop_media_streams()
        super().stop()

    def add_api_key(self, account_sid: str | None = None) -> tuple[str, str]:
        sid, secret = new_sid("SK"), secrets.token_urlsafe(24)
        self.api_keys[sid] = (secret, account_sid or self.account_sid)
        return sid, secret

    def error_reply(self, status: int, message: str) -> Reply:
        return twilio_error(status, 20003 if status == 401 else 20000 + status, message)  # 20429, 20503...

    def callbacks_for(self, call_sid: str, kind: str | None = None) -> list[Callback]:
        with self._lock:
            return [c for c in self.callbacks if c.call_sid == call_sid and (kind is None or c.kind == kind)]

    # -- auth ----------------------------------------------------------------------------
    def _principal(self, request: RecordedRequest) -> Account | None:
        scheme, _, encoded = request.header("authorization").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if user in self.api_keys:
            secret, owner = self.api_keys[user]
            account = self.accounts.get(owner) if secrets.compare_digest(secret, password) else None
        else:
            account = self.accounts.get(user)
            if account and not secrets.compare_digest(account.auth_token, password):
                account = None
        return account if account and account.status != "closed" else None

    def _opens(self, principal: Account, account_sid: str) -> bool:
        account = self.accounts.get(account_sid)
        return account is not None and principal.sid in (account.sid, account.owner_account_sid)

    def handle(self, request: RecordedRequest) -> Reply:
        for pattern, name in ROUTES:
            match = pattern.fullmatch(request.path)
            if match:
                break
        else:
            return not_found(request.path)
        args = match.groupdict()
        is_media = name == "recording" and args["ext"] in (None, ".wav", ".mp3")
        principal = self._principal(request)
        if principal is None and not (is_media and not self.media_requires_auth):
            return twilio_error(401, 20003, "Authenticate")
        if principal is not None and "account" in args and not self._opens(principal, args["account"]):
            return twilio_error(401, 20003, "Authenticate")
        handler = getattr(self, f"_{name}_{request.method.lower()}", None)
        if handler is None:
            return twilio_error(405, 20004, f"Method {request.method} not allowed on {request.path}")
        with self._lock:  # callbacks never run under it: they go to background threads
            return handler(request, principal, **args)

    # -- Accounts ------------------------------------------------------------------------
    def _accounts_get(self, request, principal):
        items = [a for a in self.accounts.values() if principal.sid in (a.sid, a.owner_account_sid)]
        for field, attribute in (("FriendlyName", "friendly_name"), ("Status", "status")):
            if field in request.query:
                items = [a for a in items if getattr(a, attribute) == request.query[field]]
        return page(request, [a.to_json() for a in items], "accounts", f"{API}/Accounts.json")

    def _accounts_post(self, request, principal):
        if principal.owner_account_sid != principal.sid:
            return twilio_error(403, 20403, "Subaccounts cannot create subaccounts")
        account = Account(new_sid("AC"), secrets.token_hex(16), request.form.get("FriendlyName") or "", principal.sid)
        account.friendly_name = account.friendly_name or f"SubAccount Created at {now():%Y-%m-%d %H:%M %p}"
        self.accounts[account.sid] = account
        return json_reply(account.to_json(), status=201)

    def _account_get(self, request, principal, account):
        return json_reply(self.accounts[account].to_json())

    def _account_post(self, request, principal, account):
        target = self.accounts[account]
        status = request.form.get("Status")
        if status is not None and status not in ("active", "suspended", "closed"):
            return twilio_error(400, 20001, f"Status must be active, suspended or closed, not {status!r}")
        if target.status == "closed":
            return twilio_error(400, 20001, "A closed account cannot be changed")
        if status == "closed":  # closing releases the account's numbers, as Twilio does
            for sid in [s for s, n in self.numbers.items() if n.account_sid == account]:
                del self.numbers[sid]
        target.status = status or target.status
        target.friendly_name = request.form.get("FriendlyName", target.friendly_name)
        target.updated = now()
        return json_reply(target.to_json())

    # -- AvailablePhoneNumbers -----------------------------------------------------------
    def _available_get(self, request, principal, account, country):
        country = country.upper()
        if not available.known_country(country):
            return not_found(request.path)
        q = request.query
        if q.get("Contains") and available.contains_regex(q["Contains"]) is None:
            return twilio_error(400, 21411, f"Contains pattern {q['Contains']!r} is invalid")

        def flag(name: str) -> bool | None:
            return None if name not in q else q[name].lower() == "true"

        items = available.available_numbers(
            country, area_code=q.get("AreaCode"), contains=q.get("Contains"), sms_enabled=flag("SmsEnabled"),
            voice_enabled=flag("VoiceEnabled"), exclude={n.phone_number for n in self.numbers.values()},
            count=min(int(q["PageSize"]) if q.get("PageSize", "").isdigit() else 20, 50),
        )  # fmt: skip
        path = f"{API}/Accounts/{account}/AvailablePhoneNumbers/{country}/Local.json"
        return page(request, items, "available_phone_numbers", path)

    # -- IncomingPhoneNumbers ------------------------------------------------------------
    def _owned_number(self, account: str, sid: str) -> IncomingNumber | None:
        number = self.numbers.get(sid)
        return number if number and number.account_sid == account else None

    def _numbers_get(self, request, principal, account):
        items = [n for n in self.numbers.values() if n.account_sid == account]
        if request.query.get("PhoneNumber"):
            wanted = re.sub(r"[^\d]", "", request.query["PhoneNumber"])
            items = [n for n in items if wanted in n.phone_number]
        if request.query.get("FriendlyName"):
            items = [n for n in items if n.to_json()["friendly_name"] == request.query["FriendlyName"]]
        path = f"{API}/Accounts/{account}/IncomingPhoneNumbers.json"
        return page(request, [n.to_json() for n in items], "incoming_phone_numbers", path)

    def _numbers_post(self, request, principal, account):
        form = request.form
        owned = {n.phone_number for n in self.numbers.values()}
        if form.get("PhoneNumber"):
            phone_number = form["PhoneNumber"].strip()
            country = available.country_of(phone_number)
            if not available.is_valid(phone_number) or not available.known_country(country or ""):
                return twilio_error(400, 21421, f"PhoneNumber {phone_number!r} is invalid")
            if phone_number in owned:
                return twilio_error(400, 21422, f"PhoneNumber {phone_number} is not available")
        elif form.get("AreaCode"):
            offers = [
                offer
                for country in ("US", "CA")
                for offer in available.available_numbers(country, area_code=form["AreaCode"], exclude=owned, count=1)
            ]
            if not offers:
                return twilio_error(400, 21452, f"No phone numbers found in area code {form['AreaCode']}")
            phone_number, country = offers[0]["phone_number"], offers[0]["iso_country"]
        else:
            return twilio_error(400, 21421, "A PhoneNumber or an AreaCode is required")
        number = IncomingNumber(
            new_sid("PN"), account, phone_number, dict(NUMBER_SETTINGS), sms=available.SMS_CAPABLE[country]
        )
        number.apply(form)
        self.numbers[number.sid] = number
        return json_reply(number.to_json(), status=201)

    def _number_get(self, request, principal, account, sid):
        number = self._owned_number(account, sid)
        return json_reply(number.to_json()) if number else not_found(request.path)

    def _number_post(self, request, principal, account, sid):
        number = self._owned_number(account, sid)
        if number is None:
            return not_found(request.path)
        target = request.form.get("AccountSid")
        if target and not self._opens(principal, target):
            return twilio_error(400, 21406, f"AccountSid {target} is not an account you may move this number to")
        number.apply(request.form)
        number.account_sid = target or number.account_sid
        return json_reply(number.to_json())

    def _number_delete(self, request, principal, account, sid):
        if self._owned_number(account, sid) is None:
            return not_found(request.path)
        del self.numbers[sid]
        return Reply(status=204, content_type="text/plain")

    # -- Calls ---------------------------------------------------------------------------
    def _calls_get(self, request, principal, account):
        items = [c for c in self.calls.values() if c.account_sid == account]
        for field, attribute in (("To", "to"), ("From", "from_"), ("Status", "status")):
            if request.query.get(field):
                items = [c for c in items if getattr(c, attribute) == request.query[field]]
        items.sort(key=lambda c: c.created, reverse=True)
        return page(request, [c.to_json() for c in items], "calls", f"{API}/Accounts/{account}/Calls.json")

    def _calls_post(self, request, principal, account):
        form = request.form
        to, from_ = form.get("To", "").strip(), form.get("From", "").strip()
        if not to:
            return twilio_error(400, 21201, "No 'To' number is specified")
        if not (to.startswith(("client:", "sip:")) or available.is_valid(to)):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_:
            return twilio_error(400, 21213, "No 'From' number is specified")
        owned = [n for n in self.numbers.values() if n.account_sid == account and n.phone_number == from_]
        if not owned and from_ not in self.verified_caller_ids:
            message = f"The source phone number provided, {from_}, is not yet verified for your account."
            return twilio_error(400, 21210, message)
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return twilio_error(400, 21205, "Either a Url, an ApplicationSid or Twiml is required")
        for field in ("Url", "StatusCallback", "RecordingStatusCallback"):
            if form.get(field) and not re.match(r"https?://[^/\s]+", form[field]):
                return twilio_error(400, 21205, f"{field} is not a valid URL: {form[field]}")
        events = {
            event
            for value in request.form_lists.get("StatusCallbackEvent", [])
            for event in value.replace(",", " ").split()
        }
        events_of_rec = " ".join(request.form_lists.get("RecordingStatusCallbackEvent", []))
        params = dict(form, RecordingStatusCallbackEvent=events_of_rec) if events_of_rec else dict(form)
        call = Call(
            sid=new_sid("CA"), account_sid=account, to=to, from_=from_, direction="outbound-api", params=params,
            status_callback_events=events or {"completed"}, phone_number_sid=owned[0].sid if owned else None,
        )  # fmt: skip
        if form.get("MachineDetection"):
            call.answered_by = "human"
        self.calls[call.sid] = call
        if self.autopilot:
            self._autopilot(call.sid)
        return json_reply(call.to_json(), status=201)

    def _call_get(self, request, principal, account, sid):
        call = self.calls.get(sid)
        return json_reply(call.to_json()) if call and call.account_sid == account else not_found(request.path)

    def _call_post(self, request, principal, account, sid):
        call = self.calls.get(sid)
        if call is None or call.account_sid != account:
            return not_found(request.path)
        status = request.form.get("Status")
        if call.status in FINAL_STATUSES:
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if status not in (None, "canceled", "completed"):
            return twilio_error(400, 20001, f"Status must be canceled or completed, not {status!r}")
        for field in ("Url", "Method", "Twiml", "StatusCallback", "StatusCallbackMethod"):
            if field in request.form:
                call.params[field] = request.form[field]
        if (status == "canceled" and call.status in ("queued", "initiated", "ringing")) or status == "completed":
            _, params = self._set_status(sid, status, {})
            self._in_background(self._notify_status, call, status, params, {})
        self._media_update(call, request.form)  # a live Media Stream stops, as Twilio stops it
        return json_reply(call.to_json())

    # -- Recordings ----------------------------------------------------------------------
    def _recordings_get(self, request, principal, account, call=None):
        call = call or request.query.get("CallSid")
        items = [r for r in self.recordings.values() if r.account_sid == account and (not call or r.call_sid == call)]
        path = f"{API}/Accounts/{account}/Recordings.json"
        return page(request, [r.to_json(self.base_url) for r in items], "recordings", path)

    def _recording_get(self, request, principal, account, sid, ext):
        recording = self.recordings.get(sid)
        if recording is None or recording.account_sid != account:
            return not_found(request.path)
        if ext == ".json":
            return json_reply(recording.to_json(self.base_url))
        # As long as the call reported (a minute at most): the player shows the call's own length.
        seconds = max(1, min(int(recording.duration or 0), MAX_RECORDING_SECONDS))
        if ext == ".mp3":
            return Reply(body=mp3_bytes(seconds), content_type="audio/mpeg")
        return Reply(body=wav_bytes(seconds), content_type="audio/x-wav")

    def _recording_delete(self, request, principal, account, sid, ext):
        recording = self.recordings.get(sid)
        if recording is None or recording.account_sid != account or ext not in (None, ".json"):
            return not_found(request.path)
        del self.recordings[sid]
        return Reply(status=204, content_type="text/plain")
