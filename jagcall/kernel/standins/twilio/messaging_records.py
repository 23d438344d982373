"""The Twilio stand-in's messaging records: Messages (REST 2010, RFC 2822 dates) and, for A2P 10DLC,
Messaging Services with their phone numbers and US A2P campaigns (Messaging v1 on
messaging.twilio.com: ISO 8601 dates, absolute ``url``s and the ``meta`` list envelope), with the
fields twilio 9.x reads. Also how Twilio counts a text's segments (GSM-7 or UCS-2)."""

from __future__ import annotations

import secrets
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime

from jagcall.kernel.standins.base import RecordedRequest, Reply, json_reply
from jagcall.kernel.standins.twilio.records import API, now, rfc2822, snake, twilio_error

MESSAGING_HOST = "https://messaging.twilio.com"
V1 = "/v1"

# GSM 03.38: the default alphabet (one septet each) and its extension table (escape + one septet).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("\f^{}\\[~]|€")
MAX_BODY_CHARS = 1600

FINAL_MESSAGE_STATUSES = {"delivered", "undelivered", "failed", "received", "read", "canceled"}
# What Twilio puts in error_message for the codes a test is likely to pick.
MESSAGE_ERRORS = {
    21610: "Attempt to send to unsubscribed recipient",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30034: "Message from an unregistered number",
}


def encoding_and_segments(body: str) -> tuple[str, int]:
    """("GSM-7" or "UCS-2", how many SMS segments ``body`` takes), as carriers count them.

    GSM-7: 160 septets in a single message, 153 per segment once concatenated, an extension
    character taking two. Anything outside GSM-7 sends the whole text as UCS-2: 70 UTF-16 code
    units alone, 67 per segment. An escape pair or a surrogate pair is never split across segments.
    """
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in body):
        encoding, single, per_segment = "GSM-7", 160, 153
        units = [2 if c in GSM_EXTENDED else 1 for c in body]
    else:
        encoding, single, per_segment = "UCS-2", 70, 67
        units = [len(c.encode("utf-16-le")) // 2 for c in body]
    if sum(units) <= single:
        return encoding, 1
    segments, used = 1, 0
    for unit in units:
        if used + unit > per_segment:
            segments, used = segments + 1, 0
        used += unit
    return encoding, segments


def iso8601(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def v1_url(path: str) -> str:
    return MESSAGING_HOST + path


def v1_page(request: RecordedRequest, items: list[dict], key: str, path: str) -> Reply:
    """One page of a Messaging v1 list: the records under ``key`` and the ``meta`` twilio's Page reads
    (``meta.key`` names the records; it follows ``meta.next_page_url``, an absolute URL)."""
    try:
        size = max(1, min(int(request.query.get("PageSize") or 50), 1000))
        number = max(0, int(request.query.get("Page") or 0))
    except ValueError:
        return twilio_error(400, 20001, "PageSize and Page must be integers")
    kept = {k: v for k, v in request.query.items() if k not in {"Page", "PageSize", "PageToken"}}

    def url(n: int) -> str:
        return v1_url(path) + "?" + urllib.parse.urlencode({**kept, "PageSize": size, "Page": n})

    start = number * size
    more = start + size < len(items)
    return json_reply(
        {
            key: items[start : start + size],
            "meta": {
                "page": number,
                "page_size": size,
                "first_page_url": url(0),
                "previous_page_url": url(number - 1) if number > 0 else None,
                "url": url(number),
                "next_page_url": url(number + 1) + f"&PageToken=PA{secrets.token_hex(8)}" if more else None,
                "key": key,
            },
        }
    )


@dataclass
class Message:
    sid: str
    account_sid: str
    to: str
    from_: str | None  # None while a Messaging Service has yet to pick the sender (status "accepted")
    body: str
    direction: str  # outbound-api | outbound-reply | inbound
    status: str  # accepted | queued | sent | delivered | undelivered | failed | received
    media_urls: list[str] = field(default_factory=list)
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    error_code: int | None = None
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)
    sent: datetime | None = None
    price: str | None = None

    @property
    def uri(self) -> str:
        return f"{API}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    @property
    def encoding(self) -> str:
        return encoding_and_segments(self.body)[0]

    @property
    def num_segments(self) -> int:
        return encoding_and_segments(self.body)[1]

    def to_json(self) -> dict:
        base = self.uri.removesuffix(".json")
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": rfc2822(self.created),
            "date_sent": rfc2822(self.sent),
            "date_updated": rfc2822(self.updated),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": MESSAGE_ERRORS.get(self.error_code) if self.error_code else None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media_urls)),
            "num_segments": str(self.num_segments),
            "price": self.price,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{base}/Media.json", "feedback": f"{base}/Feedback.json"},
            "to": self.to,
            "uri": self.uri,
        }


# Messaging Service settings a client may set, form name -> default.
SERVICE_SETTINGS = {
    "FriendlyName": "",
    "InboundRequestUrl": None,
    "InboundMethod": "POST",
    "FallbackUrl": None,
    "FallbackMethod": "POST",
    "StatusCallback": None,
    "StickySender": True,
    "MmsConverter": True,
    "SmartEncoding": True,
    "ScanMessageContent": "inherit",
    "FallbackToLongCode": True,
    "AreaCodeGeomatch": True,
    "ValidityPeriod": 14400,
    "SynchronousValidation": False,
    "Usecase": "undeclared",
    "UseInboundWebhookOnNumber": False,
}
BOOLEAN_SETTINGS = {name for name, default in SERVICE_SETTINGS.items() if isinstance(default, bool)}


@dataclass
class MessagingService:
    sid: str
    account_sid: str
    settings: dict
    number_sids: dict[str, datetime] = field(default_factory=dict)  # PN sid -> when it joined the sender pool
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)

    @property
    def path(self) -> str:
        return f"{V1}/Services/{self.sid}"

    def apply(self, form: dict[str, str]) -> None:
        for name, value in form.items():
            if name in BOOLEAN_SETTINGS:
                value = value.lower() == "true"
            elif name == "ValidityPeriod":
                value = int(value)
            if name in SERVICE_SETTINGS:
                self.settings[name] = value
        self.updated = now()

    def to_json(self, *, registered: bool) -> dict:
        data = {snake(name): value for name, value in self.settings.items()}
        url = v1_url(self.path)
        data.update(
            {
                "account_sid": self.account_sid,
                "date_created": iso8601(self.created),
                "date_updated": iso8601(self.updated),
                "links": {
                    "phone_numbers": f"{url}/PhoneNumbers",
                    "short_codes": f"{url}/ShortCodes",
                    "alpha_senders": f"{url}/AlphaSenders",
                    "messages": f"{url}/Messages",
                    "us_app_to_person": f"{url}/Compliance/Usa2p",
                    "us_app_to_person_usecases": f"{url}/Compliance/Usa2p/Usecases",
                    "channel_senders": f"{url}/ChannelSenders",
                },
                "sid": self.sid,
                "url": url,
                "us_app_to_person_registered": registered,
            }
        )
        return data


CAMPAIGN_STATUSES = ("PENDING", "IN_PROGRESS", "VERIFIED", "FAILED")
# Campaign form fields: name -> (default, kind) where kind is "text", "list" or "bool".
CAMPAIGN_FIELDS = {
    "BrandRegistrationSid": (None, "text"),
    "Description": (None, "text"),
    "MessageFlow": (None, "text"),
    "MessageSamples": ([], "list"),
    "UsAppToPersonUsecase": (None, "text"),
    "HasEmbeddedLinks": (False, "bool"),
    "HasEmbeddedPhone": (False, "bool"),
    "OptInMessage": (None, "text"),
    "OptOutMessage": (None, "text"),
    "HelpMessage": (None, "text"),
    "OptInKeywords": (None, "list"),
    "OptOutKeywords": (None, "list"),
    "HelpKeywords": (None, "list"),
    "SubscriberOptIn": (None, "bool"),
    "AgeGated": (False, "bool"),
    "DirectLending": (False, "bool"),
    "PrivacyPolicyUrl": (None, "text"),
    "TermsAndConditionsUrl": (None, "text"),
}


@dataclass
class Campaign:
    """A US A2P 10DLC campaign (the Usa2p resource of a Messaging Service)."""

    sid: str
    account_sid: str
    messaging_service_sid: str
    fields: dict
    campaign_status: str = "PENDING"
    campaign_id: str | None = None  # the TCR's id, once the campaign was submitted
    errors: list[dict] = field(default_factory=list)
    created: datetime = field(default_factory=now)
    updated: datetime = field(default_factory=now)

    @property
    def path(self) -> str:
        return f"{V1}/Services/{self.messaging_service_sid}/Compliance/Usa2p/{self.sid}"

    def to_json(self) -> dict:
        data = {snake(name): value for name, value in self.fields.items()}
        data.update(
            {
                "sid": self.sid,
                "account_sid": self.account_sid,
                "messaging_service_sid": self.messaging_service_sid,
                "campaign_status": self.campaign_status,
                "campaign_id": self.campaign_id,
                "is_externally_registered": False,
                "rate_limits": {"att": {"mps": 600, "msg_class": "A"}, "tmobile": {"brand_tier": "TOP"}},
                "mock": False,
                "errors": list(self.errors),
                "date_created": iso8601(self.created),
                "date_updated": iso8601(self.updated),
                "url": v1_url(self.path),
            }
        )
        return data
