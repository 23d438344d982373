"""Controls of the stand-in itself, which Twilio's API has no equivalent of: at Twilio, a person would
pick up a phone and dial. They live under ``/stand-in/`` so that no path can be taken for Twilio's.

    POST /stand-in/Accounts/{AccountSid}/SimulatedCalls.json      To, From, Script

A simulated caller rings ``To`` (a number of that account) from ``From``; when our voice webhook answers
with ``<Connect><Stream>``, the caller speaks the steps of the script named ``Script`` (one of
``caller_scripts``: name -> a function returning the steps, see media.py) into the Media Stream.
The answer comes at once, 201 with the call as the Calls resource shows it (``sid``, ``status``
"ringing"...); the voice webhook is posted right after, from a background thread, as Twilio does
(the receiver may look the call up by its sid while it answers). Errors come in Twilio's shape:
401 without valid credentials, 400 for a missing or invalid field, 404 when ``To`` is not a number
of the account, 503 when the caller cannot speak (espeak-ng or sox missing: nothing rings then).

Authentication is every route's (the account's SID and auth token, its parent account's, or an API
key); the web process, which does not hold the stand-in, rings through ``ring_simulated_caller``.
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
]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SimulatedCallerUnavailable(Exception):
    """The stand-in could not be reached, or refused to ring; ``str()`` says why, ``status`` its HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StandInControl:
    """Mixed into TwilioStandIn: needs ``numbers``, ``calls``, ``ring`` / ``answer_inbound`` (driving.py),
    ``_in_background`` and ``caller_scripts`` (name -> function returning a caller's steps)."""

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


def ring_simulated_caller(
    base_url: str, *, account_sid: str, username: str, password: str, to: str, from_: str, script: str,
    timeout: float = 10.0,
) -> str:  # fmt: skip
    """Ask the Twilio stand-in at ``base_url`` to ring ``to`` from ``from_`` with the named script; the call's sid.

    ``username``/``password``: credentials that open ``account_sid`` (its own, or its parent's).
    Raises SimulatedCallerUnavailable when the stand-in cannot be reached or refuses.
    """
    url = f"{base_url.rstrip('/')}{CONTROL_PREFIX}/Accounts/{account_sid}/SimulatedCalls.json"
    body = urllib.parse.urlencode({"To": to, "From": from_, "Script": script}).encode()
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
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
    sid = answer.get("sid") if isinstance(answer, dict) else None
    if not isinstance(sid, str) or not sid.startswith("CA"):
        raise SimulatedCallerUnavailable("the Twilio stand-in answered without a call sid")
    return sid
