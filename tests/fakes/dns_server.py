"""A local stand-in for a DNS server: answers TXT questions over UDP on 127.0.0.1.

It speaks the DNS wire format (RFC 1035, parsed and built with dnspython),
so the resolver under test sends real queries and reads real answers. It
serves the TXT records put in ``txt`` (name -> list of values), answers
NXDOMAIN for any other name, and records every question it receives in
``questions`` as ``(name, type)``.

Switches for failure tests (``mode``): "ok", "servfail" (every answer is
SERVFAIL), "silent" (never answers, so the client times out).
"""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

MODES = ("ok", "servfail", "silent")


class DnsStandIn:
    def __init__(self):
        self.txt: dict[str, list[str]] = {}
        self.questions: list[tuple[str, str]] = []
        self.mode = "ok"
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self._running = False
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``ip:port``, the form the SSO_DNS_NAMESERVERS setting takes."""
        host, port = self._socket.getsockname()
        return f"{host}:{port}"

    def publish(self, name: str, value: str) -> None:
        self.txt.setdefault(name.lower().rstrip("."), []).append(value)

    def start(self) -> "DnsStandIn":
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="dns-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._socket.close()

    def _serve(self) -> None:
        while self._running:
            try:
                data, client = self._socket.recvfrom(4096)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            reply = self._answer(data)
            if reply is not None:
                self._socket.sendto(reply, client)

    def _answer(self, data: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # not DNS: a real server drops it too
            return None
        if not query.question:
            return None
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.questions.append((name, dns.rdatatype.to_text(question.rdtype)))
        if self.mode == "silent":
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if self.mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        values = self.txt.get(name)
        if values is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            quoted = ['"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values]
            response.answer.append(dns.rrset.from_text_list(question.name, 300, dns.rdataclass.IN, dns.rdatatype.TXT, quoted))
        return response.to_wire()
