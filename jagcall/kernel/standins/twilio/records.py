"""The Twilio stand-in's records (accounts, numbers, calls, recordings) and their REST 2010 JSON,
with the fields twilio 9.x reads (sid, account_sid, status, uri, RFC 2822 dates...), Twilio's error
JSON, and list pages."""

from __future__ import annotations

import re
import secrets
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

import phonenumbers

from jagcall.kernel.standins.base import Reply, RecordedRequest, json_reply

API = "/2010-04-01"


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def rfc2822(moment: datetime | None) -> str | None:
    return format_datetime(moment) if moment else None  # "Mon, 16 Aug 2010 03:45:01 +0000"


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def formatted(number: str) -> str:
    """How Twilio shows a number in friendly_name / to_formatted: national format."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


def twilio_error(status: int, code: int, message: str) -> Reply:
    return json_reply(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        status=status,
    )


def not_found(path: str) -> Reply:
    return twilio_error(404, 20404, f"The requested resource {path} was not found")


def page(request: RecordedRequest, items: list[dict], key: str, path: str) -> Reply:
    """One page of a list, with the meta keys twilio's Page reads (it follows next_page_uri)."""
    try:
        size = max(1, min(int(request.query.get("PageSize") or 50), 1000))
        number = max(0, int(request.query.get("Page") or 0))
    except ValueError:
        return twilio_error(400, 20001, "PageSize and Page must be integers")
    kept = {k: v for k, v in request.query.items() if k not in {"Page", "PageSize", "PageToken"}}

    def uri(n: int) -> str:
        return f"{path}?" + urllib.parse.urlencode({**kept, "PageSize": size, "Page": n})

    start = number * size
    chunk = items[start : start + size]
    more = start + size < len(items)
    return json_reply(
        {
            key: chunk,
            "end": start + len(chunk) - 1 if chunk else start,
            "first_page_uri": uri(0),
            "next_page_uri": uri(number + 1) + f"&PageToken=PA{secrets.token_hex(8)}" if more else None,
            "previous_page_uri": uri(number - 1) if number > 0 else None,
            "page": number,
            "page_size": size,
            "start": start,
            "uri": uri(number),
        }
    )


@dataclass
class Account:
    sid: str
    auth_token: str
    friendly_name: str
    owner_account_sid: str
    status: str = "active"  # active | suspended | closed
    type: str = "Full"
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)

    @property
    def uri(self) -> str:
        return f"{API}/Accounts/{self.sid}.json"

    def to_json(self) -> dict:
        base = f"{API}/Accounts/{self.sid}"
        return {
            "auth_token": self.auth_token,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.updated),
            "friendly_name": self.friendly_name,
            "owner_account_sid": self.owner_account_sid,
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                name: f"{base}/{name}.json"
                for name in ("AvailablePhoneNumbers", "Calls", "IncomingPhoneNumbers", "Messages", "Recordings")
            },
            "type": self.type,
            "uri": self.uri,
        }


# IncomingPhoneNumber settings a client may set, form name -> default.
NUMBER_SETTINGS = {
    "FriendlyName": None,
    "VoiceUrl": None,
    "VoiceMethod": "POST",
    "VoiceFallbackUrl": None,
    "VoiceFallbackMethod": "POST",
    "VoiceApplicationSid": None,
    "VoiceCallerIdLookup": False,
    "VoiceReceiveMode": "voice",
    "StatusCallback": None,
    "StatusCallbackMethod": "POST",
    "SmsUrl": None,
    "SmsMethod": "POST",
    "SmsFallbackUrl": None,
    "SmsFallbackMethod": "POST",
    "SmsApplicationSid": None,
    "TrunkSid": None,
    "IdentitySid": None,
    "AddressSid": None,
    "BundleSid": None,
    "EmergencyStatus": "Inactive",
    "EmergencyAddressSid": None,
}


@dataclass
class IncomingNumber:
    sid: str
    account_sid: str
    phone_number: str
    settings: dict
    sms: bool = True
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)

    @property
    def uri(self) -> str:
        return f"{API}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{self.sid}.json"

    def apply(self, form: dict[str, str]) -> None:
        for name, value in form.items():
            if name in NUMBER_SETTINGS:
                if name == "VoiceCallerIdLookup":
                    value = value.lower() == "true"
                self.settings[name] = value
        self.updated = now()

    def to_json(self) -> dict:
        data = {snake(name): value for name, value in self.settings.items()}
        data["friendly_name"] = self.settings.get("FriendlyName") or formatted(self.phone_number)
        data.update(
            {
                "account_sid": self.account_sid,
                "address_requirements": "none",
                "api_version": "2010-04-01",
                "beta": False,
                "capabilities": {"voice": True, "sms": self.sms, "mms": self.sms, "fax": False},
                "date_created": rfc2822(self.created),
                "date_updated": rfc2822(self.updated),
                "emergency_address_status": "unregistered",
                "origin": "twilio",
                "phone_number": self.phone_number,
                "sid": self.sid,
                "status": "in-use",
                "subresource_uris": {"assigned_add_ons": self.uri.replace(".json", "/AssignedAddOns.json")},
                "type": "local",
                "uri": self.uri,
            }
        )
        return data


# Status callback events a call may subscribe to, by the call status that fires each.
EVENT_OF_STATUS = {
    "initiated": "initiated",
    "ringing": "ringing",
    "in-progress": "answered",
    "completed": "completed",
    "busy": "completed",
    "no-answer": "completed",
    "canceled": "completed",
    "failed": "completed",
}
FINAL_STATUSES = {"completed", "busy", "no-answer", "canceled", "failed"}


@dataclass
class Call:
    sid: str
    account_sid: str
    to: str
    from_: str
    direction: str  # outbound-api | inbound
    params: dict[str, str]  # the create form (Url, Twiml, StatusCallback, Record, ...)
    status_callback_events: set[str]
    phone_number_sid: str | None = None
    status: str = "queued"
    answered_by: str | None = None
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    sequence: int = 0
    recording_sids: list[str] = field(default_factory=list)
    started_recording: bool = False  # the voice webhook's TwiML said <Start><Recording>

    @property
    def uri(self) -> str:
        return f"{API}/Accounts/{self.account_sid}/Calls/{self.sid}.json"

    def to_json(self) -> dict:
        base = f"{API}/Accounts/{self.account_sid}/Calls/{self.sid}"
        return {
            "sid": self.sid,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.updated),
            "parent_call_sid": None,
            "account_sid": self.account_sid,
            "to": self.to,
            "to_formatted": formatted(self.to),
            "from": self.from_,
            "from_formatted": formatted(self.from_),
            "phone_number_sid": self.phone_number_sid,
            "status": self.status,
            "start_time": rfc2822(self.start_time),
            "end_time": rfc2822(self.end_time),
            "duration": None if self.duration is None else str(self.duration),
            "price": None if self.duration is None else "-0.01400",
            "price_unit": "USD",
            "direction": self.direction,
            "answered_by": self.answered_by,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": self.uri,
            "subresource_uris": {
                "recordings": f"{base}/Recordings.json",
                "notifications": f"{base}/Notifications.json",
                "events": f"{base}/Events.json",
            },
        }


@dataclass
class Recording:
    sid: str
    account_sid: str
    call_sid: str
    duration: int
    channels: int
    source: str  # OutboundAPI | RecordVerb | DialVerb | StartCallRecordingAPI
    start_time: datetime
    status: str = "completed"
    created: datetime = field(default_factory=now)

    @property
    def path(self) -> str:
        return f"{API}/Accounts/{self.account_sid}/Recordings/{self.sid}"

    def to_json(self, base_url: str) -> dict:
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "call_sid": self.call_sid,
            "conference_sid": None,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.created),
            "start_time": rfc2822(self.start_time),
            "duration": str(self.duration),
            "sid": self.sid,
            "price": "-0.00250",
            "price_unit": "USD",
            "status": self.status,
            "channels": self.channels,
            "source": self.source,
            "error_code": None,
            "uri": f"{self.path}.json",
            "encryption_details": None,
            "subresource_uris": {
                "add_on_results": f"{self.path}/AddOnResults.json",
                "transcriptions": f"{self.path}/Transcriptions.json",
            },
            "media_url": base_url + self.path,
        }
