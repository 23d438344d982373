"""What every stand-in shares: a threaded HTTP server on 127.0.0.1 (random port), request
parsing (query, form, JSON, raw body), a record of every request received, and replies
(JSON, bytes, or a stream such as server-sent events).

A stand-in subclasses ``StandIn`` and implements ``handle(request) -> Reply``. Replies are
HTTP/1.0 (the connection closes after each one), so a streamed body needs no length and a
stopped stand-in leaves no kept-alive connection behind.

Streaming APIs (Deepgram's live transcription, ElevenLabs' multi-stream-input) are websockets on
the same host and port as the REST API, as with the providers, so one base URL serves both. A
stand-in lists the paths it upgrades in ``websocket_paths`` (regular expressions), may refuse
before the upgrade in ``websocket_refusal(request) -> Reply | None`` (a bad key: 401, as the
provider answers the handshake), and runs each session in ``websocket(request, connection)``,
in the thread that accepted it, with a ``websockets.sync`` connection (``recv()``, ``send()``,
iteration, ``close()``). The handshake request is recorded in ``requests`` like any other, with
status 101 once upgraded. The handshake itself is the ``websockets`` package's sans-I/O
``ServerProtocol``, fed the request that http.server already read; ``stop()`` closes the
sessions still open (code 1001), so no thread outlives the stand-in.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import traceback
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from websockets.frames import CloseCode
from websockets.http11 import Request as WebSocketRequest
from websockets.server import ServerProtocol
from websockets.sync.connection import Connection
from websockets.sync.server import ServerConnection

MAX_BODY_BYTES = 50 * 1024 * 1024
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # largest websocket message a stand-in accepts
# Sessions opening and closing are routine here: keep them out of test and dev-server output.
WEBSOCKET_LOGGER = logging.getLogger("jagcall.standins.websocket")
WEBSOCKET_LOGGER.setLevel(logging.WARNING)


@dataclass
class RecordedRequest:
    """One request as the stand-in received it. ``headers`` keys are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    query_lists: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    form: dict[str, str] = field(default_factory=dict)  # last value of each form field
    form_lists: dict[str, list[str]] = field(default_factory=dict)  # every value (repeated fields)
    json: Any = None
    status: int | None = None  # the status the stand-in answered
    raw_query: str = ""  # the query string as sent (signatures cover it byte for byte)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Reply:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body=json.dumps(data).encode(), headers=dict(headers or {}))


def sse_reply(events: Iterable[str]) -> Reply:
    """A text/event-stream reply; each item is one complete event (``"data: ...\\n\\n"``)."""
    return Reply(body=(event.encode() for event in events), content_type="text/event-stream")


def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, list[str]], Any]:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True), None
    if kind == "application/json" or (kind == "" and body[:1] in (b"{", b"[")):
        try:
            return {}, json.loads(body)
        except ValueError:
            return {}, None
    return {}, None


class StandIn:
    """A provider stand-in: ``start()`` -> self, ``base_url``, ``stop()``, ``requests``."""

    name = "stand-in"
    # Paths (regular expressions, matched whole) whose GET with ``Upgrade: websocket`` opens a session.
    websocket_paths: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.delay_seconds = 0.0  # wait this long before answering (timeout tests)
        self._faults: list[list] = []  # [path prefix, reply, times left]
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._websockets: set[ServerConnection] = set()  # sessions open now (closed by stop())

    # -- lifecycle -------------------------------------------------------------------------
    def start(self):
        if self._server is not None:
            return self
        standin = self

        class Handler(_Handler):
            owner = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-stand-in",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            sessions = list(self._websockets)
        for connection in sessions:
            connection.close(CloseCode.GOING_AWAY, "stand-in stopped")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"The {self.name} stand-in is not running: call start() first.")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- what subclasses implement -----------------------------------------------------------
    def handle(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    def error_reply(self, status: int, message: str) -> Reply:
        """An error in the provider's JSON shape (subclasses override)."""
        return json_reply({"error": {"message": message}}, status=status)

    def accepts_websocket(self, request: RecordedRequest) -> bool:
        return any(re.fullmatch(pattern, request.path) for pattern in self.websocket_paths)

    def websocket_refusal(self, request: RecordedRequest) -> Reply | None:
        """A reply that refuses the upgrade (bad key, bad parameters), or None to accept it.

        [!!] Subclasses check the credential here, before the upgrade, as the providers do: a
        session never starts for a caller the REST API would turn away.
        """
        return None

    def websocket(self, request: RecordedRequest, connection: ServerConnection) -> None:
        """Run one websocket session (in the thread that accepted it); return to close it."""
        raise NotImplementedError

    # -- helpers for tests -------------------------------------------------------------------
    def fail_next(
        self, status: int = 503, message: str = "Service unavailable", *, path_prefix: str = "", times: int = 1
    ):
        """Answer the next ``times`` requests under ``path_prefix`` with this error instead."""
        with self._lock:
            self._faults.append([path_prefix, self.error_reply(status, message), times])
        return self

    def _fault_for(self, path: str) -> Reply | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault[0]) and fault[2] > 0:
                    fault[2] -= 1
                    return fault[1]
        return None

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r for r in self.requests if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _UpgradedConnection(ServerConnection):
    """A server connection whose handshake happened before it existed (in the HTTP handler):
    every event it receives is a frame."""

    def process_event(self, event) -> None:
        Connection.process_event(self, event)


class _Handler(BaseHTTPRequestHandler):
    owner: StandIn
    server_version = "StandIn/1.0"

    def log_message(self, format, *args):  # keep test and dev-server output quiet
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query_lists = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except ValueError:
            self._send(Reply(status=413, body=b'{"error": "body too large"}'))
            return
        form_lists, parsed_json = _parse_body(self.headers.get("Content-Type", ""), body)
        request = RecordedRequest(
            method=self.command,
            path=urllib.parse.unquote(parsed.path),
            query={k: v[-1] for k, v in query_lists.items()},
            query_lists=query_lists,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            form={k: v[-1] for k, v in form_lists.items()},
            form_lists=form_lists,
            json=parsed_json,
            raw_query=parsed.query,
        )
        self.owner._record(request)
        if self.owner.delay_seconds:
            time.sleep(self.owner.delay_seconds)
        if self._wants_websocket() and self.command == "GET" and self.owner.accepts_websocket(request):
            self._websocket(request)
            return
        try:
            reply = self.owner._fault_for(request.path) or self.owner.handle(request)
        except Exception:  # a stand-in bug: answer like a provider's 500 and keep the traceback visible
            reply = json_reply({"error": "stand-in failure", "traceback": traceback.format_exc()}, status=500)
        request.status = reply.status
        self._send(reply)

    def _wants_websocket(self) -> bool:
        return "websocket" in self.headers.get("Upgrade", "").lower()

    def _websocket(self, request: RecordedRequest) -> None:
        """Upgrade this request to a websocket session, unless the stand-in refuses it."""
        # A websocket client reads only HTTP/1.1 answers (a refusal included); each closes the connection.
        self.protocol_version = "HTTP/1.1"
        self.close_connection = True
        try:
            refusal = self.owner._fault_for(request.path) or self.owner.websocket_refusal(request)
        except Exception:
            refusal = json_reply({"error": "stand-in failure", "traceback": traceback.format_exc()}, status=500)
        if refusal is not None:
            request.status = refusal.status
            headers = {**refusal.headers, "Connection": "close"}
            self._send(Reply(refusal.status, refusal.body, refusal.content_type, headers))
            return
        protocol = ServerProtocol(max_size=MAX_MESSAGE_BYTES, logger=WEBSOCKET_LOGGER)
        # http.server has read the handshake already: hand the protocol the same bytes, so it
        # checks the request (key, version, headers) and answers it itself.
        lines = [self.requestline] + [f"{name}: {value}" for name, value in self.headers.items()]
        protocol.receive_data(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        handshake = next((e for e in protocol.events_received() if isinstance(e, WebSocketRequest)), None)
        if handshake is None:
            request.status = 400
            self._send(Reply(400, b"Invalid websocket handshake", "text/plain", {"Connection": "close"}))
            return
        response = protocol.accept(handshake)
        protocol.send_response(response)
        request.status = response.status_code
        self.connection.sendall(b"".join(protocol.data_to_send()))
        if response.status_code != 101:
            return
        server = None  # only the websockets server's own handshake uses it
        connection = _UpgradedConnection(self.connection, protocol, server, ping_interval=None, close_timeout=2)
        connection.request, connection.response = handshake, response
        with self.owner._lock:
            self.owner._websockets.add(connection)
        try:
            self.owner.websocket(request, connection)
        except Exception:  # a stand-in bug: close like a provider's internal error, keep the traceback visible
            traceback.print_exc()
            connection.close(CloseCode.INTERNAL_ERROR, "stand-in failure")
        finally:
            connection.close()
            with self.owner._lock:
                self.owner._websockets.discard(connection)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if isinstance(reply.body, (bytes, bytearray)):
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
            return
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        chunks: Iterator[bytes] = iter(reply.body)
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading the stream

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch
