"""A local stand-in for Cloudflare Turnstile (siteverify and the widget's api.js).

It listens on 127.0.0.1 on an ephemeral port, in a daemon thread, and speaks
siteverify's wire format: POST /turnstile/v0/siteverify with the form (or
JSON) fields ``secret``, ``response``, ``remoteip``, ``idempotency_key``; the
reply is JSON ``{"success", "error-codes", "challenge_ts", "hostname",
"action", "cdata"}``. Every request it receives is recorded (parsed fields,
headers, and the reply it gave) in ``requests``.

Tokens are issued by ``issue_token()`` (from Python) or ``GET /issue`` (from
the stand-in api.js in a browser). Verifying a token spends it: a second
verification answers ``timeout-or-duplicate``, unless it repeats the
``idempotency_key`` of the first, which returns the first reply again (as
Cloudflare does for retries).

Switches for failure tests:
- ``mode``: "ok", "slow" (waits ``slow_seconds`` before answering, longer than
  any client timeout the tests use), "error500", "garbage" (200 with a body
  that is not JSON), "no_success" (200 with JSON that lacks ``success``);
- ``expire_tokens``: set False to answer success for tokens older than 300 s,
  so the client's own age check can be exercised;
- ``unspend(token)``: forget that a token was spent, so the client's own
  replay guard can be exercised.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SITEVERIFY_PATH = "/turnstile/v0/siteverify"
SCRIPT_PATH = "/turnstile/v0/api.js"
ISSUE_PATH = "/issue"
MODES = ("ok", "slow", "error500", "garbage", "no_success")
TOKEN_MAX_LENGTH = 2048
TOKEN_MAX_AGE = timedelta(seconds=300)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    form: dict[str, str]  # parsed body fields (form-urlencoded or JSON)
    status: int | None = None
    reply: dict | None = None  # the JSON the stand-in answered, if any


@dataclass
class IssuedToken:
    action: str
    hostname: str
    challenge_ts: datetime
    cdata: str = ""
    spent: bool = False
    replies_by_idempotency_key: dict[str, dict] = field(default_factory=dict)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


API_JS = """\
/* Turnstile test stand-in: no challenge, every widget gets a valid token at once. */
(function () {
  "use strict";
  var BASE = %(base)s;

  function inputFor(el) {
    var form = el.closest("form");
    var input = (form || el).querySelector('input[name="cf-turnstile-response"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = "cf-turnstile-response";
      el.appendChild(input);
    }
    return input;
  }

  function render(el) {
    if (typeof el === "string") { el = document.querySelector(el); }
    if (!el) { return; }
    var action = el.getAttribute("data-action") || "";
    var url = BASE + "/issue?action=" + encodeURIComponent(action) +
      "&hostname=" + encodeURIComponent(window.location.hostname);
    var label = el.querySelector(".cf-turnstile-stand-in");
    if (!label) {
      label = document.createElement("span");
      label.className = "cf-turnstile-stand-in";
      label.style.fontSize = "small";
      el.appendChild(label);
    }
    label.textContent = "Verifying (test stand-in)";
    return fetch(url).then(function (r) { return r.json(); }).then(function (data) {
      var input = inputFor(el);
      input.value = data.token;
      input.setAttribute("value", data.token);
      label.textContent = "Verified (test stand-in)";
      el.setAttribute("data-stand-in-state", "verified");
      var callback = el.getAttribute("data-callback");
      if (callback && typeof window[callback] === "function") { window[callback](data.token); }
    });
  }

  function renderAll() {
    var nodes = document.querySelectorAll(".cf-turnstile");
    for (var i = 0; i < nodes.length; i++) { render(nodes[i]); }
  }

  window.turnstile = {
    render: render,
    reset: function (el) { return render(el || document.querySelector(".cf-turnstile")); },
    getResponse: function (el) {
      el = el || document.querySelector(".cf-turnstile");
      var input = el && inputFor(el);
      return input ? input.value : undefined;
    },
    remove: function () {}
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", renderAll);
  } else {
    renderAll();
  }
})();
"""


class TurnstileStandIn:
    secret = "stand-in-secret"
    site_key = "stand-in-site-key"

    def __init__(self, *, slow_seconds: float = 10.0):
        self.slow_seconds = slow_seconds
        self.expire_tokens = True
        self.requests: list[RecordedRequest] = []
        self._mode = "ok"
        self._tokens: dict[str, IssuedToken] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> TurnstileStandIn:
        stand_in = self

        class Handler(_Handler):
            pass

        Handler.stand_in = stand_in
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="turnstile-stand-in", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes a "slow" handler at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> TurnstileStandIn:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Turnstile stand-in is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def verify_url(self) -> str:
        return self.url + SITEVERIFY_PATH

    @property
    def script_url(self) -> str:
        return self.url + SCRIPT_PATH

    # --- switches ----------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")
        self._mode = value

    # --- tokens ------------------------------------------------------------------

    def issue_token(self, action: str = "signup", hostname: str = "127.0.0.1", age_seconds: float = 0) -> str:
        """A fresh token, as the widget would get for ``action`` on a page at ``hostname``."""
        token = "0." + secrets.token_urlsafe(96)
        issued = IssuedToken(
            action=action, hostname=hostname, challenge_ts=datetime.now(UTC) - timedelta(seconds=age_seconds)
        )
        with self._lock:
            self._tokens[token] = issued
        return token

    def unspend(self, token: str) -> None:
        """Forget that ``token`` was verified (models a siteverify that misses a replay)."""
        with self._lock:
            issued = self._tokens[token]
            issued.spent = False
            issued.replies_by_idempotency_key.clear()

    def is_spent(self, token: str) -> bool:
        with self._lock:
            return self._tokens[token].spent

    @property
    def siteverify_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == SITEVERIFY_PATH]

    # --- siteverify --------------------------------------------------------------

    def siteverify(self, fields: dict[str, str] | None) -> dict:
        """Cloudflare's answer to one siteverify call with these fields (None: unparseable body)."""
        if fields is None:
            return _failure("bad-request")
        secret = fields.get("secret") or ""
        token = fields.get("response") or ""
        idempotency_key = fields.get("idempotency_key") or ""
        if not secret:
            return _failure("missing-input-secret")
        if secret != self.secret:
            return _failure("invalid-input-secret")
        if not token:
            return _failure("missing-input-response")
        if len(token) > TOKEN_MAX_LENGTH:
            return _failure("invalid-input-response")
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None:
                return _failure("invalid-input-response")
            if idempotency_key and idempotency_key in issued.replies_by_idempotency_key:
                return issued.replies_by_idempotency_key[idempotency_key]
            expired = datetime.now(UTC) - issued.challenge_ts > TOKEN_MAX_AGE
            if issued.spent or (expired and self.expire_tokens):
                reply = _failure("timeout-or-duplicate")
            else:
                reply = {
                    "success": True,
                    "error-codes": [],
                    "challenge_ts": _iso(issued.challenge_ts),
                    "hostname": issued.hostname,
                    "action": issued.action,
                    "cdata": issued.cdata,
                }
            issued.spent = True
            if idempotency_key:
                issued.replies_by_idempotency_key[idempotency_key] = reply
            return reply

    def _record(self, recorded: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(recorded)


def _failure(*error_codes: str) -> dict:
    return {"success": False, "error-codes": list(error_codes), "messages": []}


def _parse_fields(content_type: str, body: bytes) -> dict[str, str] | None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            data = json.loads(text or "{}")
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))


class _Handler(BaseHTTPRequestHandler):
    stand_in: TurnstileStandIn
    server_version = "turnstile-stand-in"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _begin(self) -> RecordedRequest:
        parts = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        recorded = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)),
            headers={k: v for k, v in self.headers.items()},
            body=body,
            form=_parse_fields(self.headers.get("Content-Type", ""), body) or {},
        )
        self.stand_in._record(recorded)
        return recorded

    def _send(self, recorded: RecordedRequest, status: int, body: bytes, content_type: str) -> None:
        recorded.status = status
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. timed out on a slow reply)

    def _send_json(self, recorded: RecordedRequest, status: int, data: dict) -> None:
        recorded.reply = data
        self._send(recorded, status, json.dumps(data).encode(), "application/json")

    def do_OPTIONS(self):
        recorded = self._begin()
        recorded.status = 204
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        recorded = self._begin()
        stand_in = self.stand_in
        if recorded.path == SCRIPT_PATH:
            script = API_JS % {"base": json.dumps(stand_in.url)}
            self._send(recorded, 200, script.encode(), "application/javascript; charset=utf-8")
        elif recorded.path == ISSUE_PATH:
            token = stand_in.issue_token(
                action=recorded.query.get("action", ""), hostname=recorded.query.get("hostname", "127.0.0.1")
            )
            self._send_json(recorded, 200, {"token": token})
        elif recorded.path == SITEVERIFY_PATH:
            self._send_json(recorded, 405, _failure("bad-request"))
        else:
            self._send(recorded, 404, b"not found", "text/plain")

    def do_POST(self):
        recorded = self._begin()
        stand_in = self.stand_in
        if recorded.path != SITEVERIFY_PATH:
            self._send(recorded, 404, b"not found", "text/plain")
            return
        mode = stand_in.mode
        if mode == "error500":
            self._send(recorded, 500, b"internal server error", "text/plain")
            return
        if mode == "garbage":
            self._send(recorded, 200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            return
        if mode == "no_success":
            self._send_json(recorded, 200, {"error-codes": [], "messages": []})
            return
        if mode == "slow" and stand_in._stopping.wait(stand_in.slow_seconds):
            return  # stopped while waiting
        fields = _parse_fields(self.headers.get("Content-Type", ""), recorded.body)
        self._send_json(recorded, 200, stand_in.siteverify(fields))
