"""Controls of the stand-in itself, which Twilio's API has no equivalent of: at Twilio, a person would
pick up a phone and dial. They live under ``/stand-in/`` so that no path can be taken for Twilio's.

    POST /stand-in/Accounts/{AccountSid}/SimulatedCalls.json      To, From, Script
    POST /stand-in/Accounts/{AccountSid}/SimulatedMessages.json   To, From, Body

A simulated caller rings ``To`` (a number of that account) from ``From``; when our voice webhook answers
with ``<Connect><Stream>``, the caller speaks the steps of the script named ``Script`` (one of
``caller_scripts``: name -> a function returning the steps, see media.py) into the Media Stream.
The answer comes at once, 201 with the call as the Calls resource shows it (``sid``, ``status``
"ringing"...); the voice webhook is posted right after, from a background thread, as Twilio does
(the receiver may look the call up by its sid while it answers). Errors come in Twilio's shape:
401 without valid credentials, 400 for a missing or invalid field, 404 when ``To`` is not a number
of the account, 503 when the caller cannot speak (espeak-ng or sox missing: nothing rings then).

A simulated text reaches ``To`` (an SMS-capable number of that account) from ``From``: the answer is
202 at once with the text as given (``to``, ``from``, ``body``, ``status`` "receiving"); then, from a
background thread, ``inbound_message`` (messaging.py) posts the signed webhook Twilio sends for a text
received and sends the ``<Message>`` replies of the TwiML it gets back. Errors: 400 for a missing or
invalid field, 404 when ``To`` is not an SMS-capable number of the account with an SMS webhook.

Authentication is every route's (the account's SID and auth token, its parent account's, or an API
key); the web process, which does not hold the stand-in, rings through ``ring_simulated_caller`` and texts
through ``text_simulated_message``.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from jagcall.kernel.standins import speech
from jagcall.kernel.standins.base import json_reply
from jagcall.kernel.standins.twilio import numbers as available
from jagcall.kernel.standins.twilio.media import BargeIn, Say
from jagcall.kernel.standins.twilio.records import twilio_error

CONTROL_PREFIX = "/stand-in"
CONTROL_ROUTES = [
    (re.compile(rf"{CONTROL_PREFIX}/Accounts/(?P<account>AC[0-9a-f]{{32}})/SimulatedCalls\.json"), "simulated_calls"),
    (
        re.compile(rf"{CONTROL_PREFIX}/Accounts/(?P<account>AC[0-9a-f]{{32}})/SimulatedMessages\.json"),
        "simulated_messages",
    ),
]
MAX_SIMULATED_BODY = 1600
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SimulatedCallerUnavailable(Exception):
    """The stand-in could not be reached, or refused to ring or to text; ``str()`` says why, ``status`` its
    HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StandInControl:
    """Mixed into TwilioStandIn: needs ``numbers``, ``calls``, ``ring`` / ``answer_inbound`` (driving.py),
    ``_in_background``, ``caller_scripts`` (name -> function returning a caller's steps), and
    ``inbound_message`` / ``_sms_webhook`` / ``_service_of_number`` (messaging.py)."""

    caller_scripts: dict[str, Callable[[], list]]

    def _simulated_calls_post(self, request, principal, account):
        form = request.form
        to, from_, name = form.get("To", "").strip(), form.get("From", "").strip(), form.get("Script", "").strip()
        if not to:
            return twilio_error(400, 21201, "No 'To' number is specified")
        if not from_ or not available.is_valid(from_):
            return twilio_error(400, 21212, f"Invalid 'From' Phone Number: {from_ or '(none)'}")
        if name not in self.caller_scripts:
            known = ", ".join(sorted(self.caller_scripts)) or "none are registered"
            return twilio_error(400, 20001, f"Unknown Script {name!r}; known scripts: {known}")
        script = self.caller_scripts[name]()
        try:  # the caller's sentences, rendered now (then cached): a caller who cannot speak never rings
            for step in script:
                if isinstance(step, (Say, BargeIn)):
                    speech.render(step.text)
        except speech.SpeechUnavailable as error:
            return twilio_error(503, 20503, f"The simulated caller cannot speak: {error}")
        try:
            call, voice = self.ring(to, from_, script=script, account_sid=account)
        except LookupError as error:
            return twilio_error(404, 20404, f"{to} is not a number of {account} that rings a voice webhook ({error})")
        self._in_background(self.answer_inbound, call, voice)
        return json_reply({**call.to_json(), "script": name}, status=201)

    def _simulated_messages_post(self, request, principal, account):
        form = request.form
        to, from_, body = form.get("To", "").strip(), form.get("From", "").strip(), form.get("Body", "")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not from_ or not available.is_valid(from_):
            return twilio_error(400, 21212, f"Invalid 'From' Phone Number: {from_ or '(none)'}")
        if not body.strip():
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > MAX_SIMULATED_BODY:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        number = next((n for n in self.numbers.values() if n.phone_number == to and n.account_sid == account), None)
        if number is None or not number.sms:
            return twilio_error(404, 20404, f"{to} is not an SMS-capable number of {account}")
        if not self._sms_webhook(number, self._service_of_number(number.sid))[0]:
            return twilio_error(404, 20404, f"{to} has no SMS webhook (SmsUrl) to post the text to")
        self._in_background(self.inbound_message, to, from_, body)
        return json_reply({"account_sid": account, "to": to, "from": from_, "body": body, "status": "receiving"},
                          status=202)  # fmt: skip


def _control_post(base_url: str, path: str, *, username: str, password: str, form: dict, timeout: float) -> dict:
    """POST ``form`` to a control route with Basic credentials; its JSON answer, or SimulatedCallerUnavailable."""
    body = urllib.parse.urlencode(form).encode()
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    url = f"{base_url.rstrip('/')}{CONTROL_PREFIX}{path}"
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Basic {credentials}", "Content-Type": "application/x-www-form-urlencoded",
    })  # fmt: skip
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            answer = json.loads(response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read().decode("utf-8", "replace")).get("message") or error.reason
        except ValueError:
            message = error.reason
        raise SimulatedCallerUnavailable(str(message), status=error.code) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise SimulatedCallerUnavailable(f"the Twilio stand-in at {base_url} did not answer ({error})") from None
    return answer if isinstance(answer, dict) else {}


def text_simulated_message(
    base_url: str, *, account_sid: str, username: str, password: str, to: str, from_: str, body: str,
    timeout: float = 10.0,
) -> dict:  # fmt: skip
    """Ask the Twilio stand-in at ``base_url`` to text ``body`` to ``to`` from ``from_`` (the webhook follows
    from a background thread); the stand-in's answer. Raises SimulatedCallerUnavailable when it cannot be
    reached or refuses (``status`` 400 or 404, ``str()`` Twilio's message)."""
    return _control_post(
        base_url, f"/Accounts/{account_sid}/SimulatedMessages.json", username=username, password=password,
        form={"To": to, "From": from_, "Body": body}, timeout=timeout,
    )  # fmt: skip


def ring_simulated_caller(
    base_url: str, *, account_sid: str, username: str, password: str, to: str, from_: str, script: str,
    timeout: float = 10.0,
) -> str:  # fmt: skip
    """Ask the Twilio stand-in at ``base_url`` to ring ``to`` from ``from_`` with the named script; the call's sid.

    ``username``/``password``: credentials that open ``account_sid`` (its own, or its parent's).
    Raises SimulatedCallerUnavailable when the stand-in cannot be reached or refuses.
    """
    answer = _control_post(
        base_url, f"/Accounts/{account_sid}/SimulatedCalls.json", username=username, password=password,
        form={"To": to, "From": from_, "Script": script}, timeout=timeout,
    )  # fmt: skip
    sid = answer.get("sid")
    if not isinstance(sid, str) or not sid.startswith("CA"):
        raise SimulatedCallerUnavailable("the Twilio stand-in answered without a call sid")
    return sid
