"""What browser calling needs of the Twilio stand-in: API keys (Keys), TwiML applications
(Applications), and a call placed from a browser (``client_call``).

Keys made here authenticate REST requests like any key of ``add_api_key()`` and sign access tokens;
their secret is in the create answer only, as at Twilio. ``client_call`` is what Twilio does when a
Voice SDK device connects: it posts the signed voice webhook to the application's VoiceUrl with
``From=client:<identity>`` and the device's parameters, and returns the receiver's TwiML.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from jagcall.kernel.standins.base import Reply, json_reply
from jagcall.kernel.standins.twilio.driving import TwiMLResponse
from jagcall.kernel.standins.twilio.records import API, Call, new_sid, not_found, now, page, rfc2822, twilio_error

_ACCOUNT = rf"{API}/Accounts/(?P<account>AC[0-9a-f]{{32}})"
BROWSER_ROUTES = [
    (re.compile(rf"{_ACCOUNT}/Keys\.json"), "keys"),
    (re.compile(rf"{_ACCOUNT}/Keys/(?P<sid>SK[0-9a-f]{{32}})\.json"), "key"),
    (re.compile(rf"{_ACCOUNT}/Applications\.json"), "applications"),
    (re.compile(rf"{_ACCOUNT}/Applications/(?P<sid>AP[0-9a-f]{{32}})\.json"), "application"),
]

# Application settings a client may set, form name -> default.
APPLICATION_SETTINGS = {
    "FriendlyName": "",
    "VoiceUrl": None,
    "VoiceMethod": "POST",
    "VoiceFallbackUrl": None,
    "VoiceFallbackMethod": "POST",
    "VoiceCallerIdLookup": False,
    "StatusCallback": None,
    "StatusCallbackMethod": "POST",
    "SmsUrl": None,
    "SmsMethod": "POST",
    "SmsFallbackUrl": None,
    "SmsFallbackMethod": "POST",
    "SmsStatusCallback": None,
    "MessageStatusCallback": None,
    "PublicApplicationConnectEnabled": False,
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass
class ApiKeyRecord:
    sid: str
    account_sid: str
    friendly_name: str
    created: datetime = field(default_factory=now)

    def to_json(self, secret: str | None = None) -> dict:
        data = {
            "sid": self.sid,
            "friendly_name": self.friendly_name,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.created),
        }
        if secret is not None:
            data["secret"] = secret
        return data


@dataclass
class Application:
    sid: str
    account_sid: str
    settings: dict
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)

    @property
    def uri(self) -> str:
        return f"{API}/Accounts/{self.account_sid}/Applications/{self.sid}.json"

    def apply(self, form: dict[str, str]) -> None:
        for name, value in form.items():
            if name in APPLICATION_SETTINGS:
                if name in ("VoiceCallerIdLookup", "PublicApplicationConnectEnabled"):
                    value = value.lower() == "true"
                self.settings[name] = value
        self.updated = now()

    def to_json(self) -> dict:
        data = {_snake(name): value for name, value in self.settings.items()}
        data.update(
            {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "date_created": rfc2822(self.created),
                "date_updated": rfc2822(self.updated),
                "sid": self.sid,
                "uri": self.uri,
            }
        )
        return data


class BrowserCalling:
    """Mixed into TwilioStandIn: needs ``api_keys``, ``accounts``, ``calls``, ``_lock``, ``_deliver``."""

    def __init__(self) -> None:
        super().__init__()
        self.key_records: dict[str, ApiKeyRecord] = {}
        self.applications: dict[str, Application] = {}

    # -- Keys ----------------------------------------------------------------------------
    def _keys_post(self, request, principal, account):
        record = ApiKeyRecord(new_sid("SK"), account, request.form.get("FriendlyName") or "")
        secret = secrets.token_urlsafe(24)
        self.key_records[record.sid] = record
        self.api_keys[record.sid] = (secret, account)
        return json_reply(record.to_json(secret), status=201)

    def _keys_get(self, request, principal, account):
        items = [k.to_json() for k in self.key_records.values() if k.account_sid == account]
        return page(request, items, "keys", f"{API}/Accounts/{account}/Keys.json")

    def _key_get(self, request, principal, account, sid):
        record = self.key_records.get(sid)
        if record is None or record.account_sid != account:
            return not_found(request.path)
        return json_reply(record.to_json())

    def _key_delete(self, request, principal, account, sid):
        record = self.key_records.get(sid)
        if record is None or record.account_sid != account:
            return not_found(request.path)
        del self.key_records[sid]
        self.api_keys.pop(sid, None)
        return Reply(status=204, content_type="text/plain")

    # -- Applications --------------------------------------------------------------------
    def _owned_application(self, account: str, sid: str) -> Application | None:
        application = self.applications.get(sid)
        return application if application and application.account_sid == account else None

    def _applications_post(self, request, principal, account):
        for name in ("VoiceUrl", "StatusCallback", "SmsUrl"):
            if request.form.get(name) and not re.match(r"https?://[^/\s]+", request.form[name]):
                return twilio_error(400, 21502, f"{name} is not a valid URL: {request.form[name]}")
        application = Application(new_sid("AP"), account, dict(APPLICATION_SETTINGS))
        application.apply(request.form)
        self.applications[application.sid] = application
        return json_reply(application.to_json(), status=201)

    def _applications_get(self, request, principal, account):
        items = [a for a in self.applications.values() if a.account_sid == account]
        if request.query.get("FriendlyName"):
            items = [a for a in items if a.settings["FriendlyName"] == request.query["FriendlyName"]]
        path = f"{API}/Accounts/{account}/Applications.json"
        return page(request, [a.to_json() for a in items], "applications", path)

    def _application_get(self, request, principal, account, sid):
        application = self._owned_application(account, sid)
        return json_reply(application.to_json()) if application else not_found(request.path)

    def _application_post(self, request, principal, account, sid):
        application = self._owned_application(account, sid)
        if application is None:
            return not_found(request.path)
        application.apply(request.form)
        return json_reply(application.to_json())

    def _application_delete(self, request, principal, account, sid):
        if self._owned_application(account, sid) is None:
            return not_found(request.path)
        del self.applications[sid]
        return Reply(status=204, content_type="text/plain")

    # -- a call from a browser -----------------------------------------------------------
    def client_call(self, application_sid: str, identity: str, **params: str) -> TwiMLResponse:
        """A Voice SDK device of ``identity`` connects with ``params`` (e.g. ``To``): post the signed voice
        webhook to the application's VoiceUrl and return the receiver's TwiML (``.call_sid``, ``.status``)."""
        with self._lock:
            application = self.applications.get(application_sid)
            if application is None:
                raise LookupError(f"{application_sid} is not an Application of this stand-in")
            voice_url = application.settings.get("VoiceUrl")
            if not voice_url:
                raise LookupError(f"{application_sid} has no VoiceUrl")
            caller = f"client:{identity}"
            call = Call(
                sid=new_sid("CA"), account_sid=application.account_sid, to=params.get("To", ""), from_=caller,
                direction="inbound", params={}, status_callback_events=set(), status="ringing",
            )  # fmt: skip
            self.calls[call.sid] = call
        form = {
            "AccountSid": call.account_sid,
            "ApiVersion": "2010-04-01",
            "ApplicationSid": application_sid,
            "CallSid": call.sid,
            "CallStatus": "ringing",
            "Called": "",
            "Caller": caller,
            "Direction": "inbound",
            "From": caller,
            "To": "",
            "CallToken": uuid.uuid4().hex,
        }
        form.update({name: str(value) for name, value in params.items()})
        callback = self._deliver("voice", call, voice_url, application.settings.get("VoiceMethod") or "POST", form)
        answer = TwiMLResponse(callback.response_body)
        answer.call_sid, answer.status = call.sid, callback.status
        return answer
