"""A minimal local HTTP server for the provider-client tests: it answers each request
with the next canned response and records what arrived. (The full stand-ins of each
provider live in jagcall/kernel/standins/; these tests need only one answer per call.)"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "9f3c2b1a8e7d6c5b4a3f2e1d0c9b8a7f"  # 32 hex, the shape of a real auth token
OPENAI_KEY = "sk-proj-test0123456789abcdefghijklmnop"
ANTHROPIC_KEY = "sk-ant-api03-test0123456789abcdefghij"
DEEPGRAM_KEY = "0123456789abcdef0123456789abcdef01234567"
ELEVENLABS_KEY = "sk_0123456789abcdef0123456789abcdef0123456789abcdef"


@dataclass
class Canned:
    status: int = 200
    body: object = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes


class LocalServer:
    def __init__(self) -> None:
        self.responses: list[Canned] = []
        self.default = Canned(404, {"message": "no canned response"})
        self.requests: list[Received] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(Received(self.command, self.path, dict(self.headers), body))
                canned = server.responses.pop(0) if server.responses else server.default
                if canned.delay:
                    time.sleep(canned.delay)
                payload = canned.body if isinstance(canned.body, bytes) else json.dumps(canned.body).encode()
                try:
                    self.send_response(canned.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in canned.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, *responses: Canned) -> LocalServer:
        self.responses.extend(responses)
        return self


@pytest.fixture
def local_server():
    server = LocalServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def provider_settings(settings, local_server):
    """Every SDK pointed at the local server, with platform credentials set."""
    names = ("twilio", "openai", "anthropic", "deepgram", "elevenlabs")
    settings.PROVIDER_BASE_URLS = {name: local_server.base_url for name in names}
    settings.PROVIDER_TIMEOUT_SECONDS = 1
    settings.PROVIDER_MAX_RETRIES = 0
    settings.SIMULATED_PROVIDERS = False
    settings.TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.OPENAI_API_KEY = OPENAI_KEY
    settings.ANTHROPIC_API_KEY = ANTHROPIC_KEY
    settings.DEEPGRAM_API_KEY = DEEPGRAM_KEY
    settings.ELEVENLABS_API_KEY = ELEVENLABS_KEY
    return settings
