"""Benchmark: Twilio's voice webhook and status callback under 50 concurrent requests, on the production server.

Run from the repository root:

    .venv/bin/python bench/voice_webhook.py [--rounds 5] [--requests 2000] [--concurrency 50]
        [--db-pool 10] [--max-concurrent N] [--conn-max-age 60]

It needs no network and touches no existing data: it starts its own embedded
PostgreSQL + Redis under a fresh directory in /tmp (or --data-dir), creates a
scratch database with one organization in platform mode (its Twilio
subaccount, whose auth token is stored encrypted), an agent that records its
calls, and a number answered by that agent, and serves the project with the
command of the image (the Dockerfile's CMD: uvicorn on jagcall.asgi:application,
one process, uvloop + httptools, no access log), on 127.0.0.1, DEBUG off,
the web process's database connections as in production (a pool of
--db-pool connections, DB_POOL_MAX_SIZE; --db-pool 0: no pool, connections
kept --conn-max-age seconds), at most --max-concurrent requests inside
Django at once (WEB_MAX_CONCURRENT_REQUESTS; default: production's, the pool's
size), Server-Timing on (SERVER_TIMING_HEADER) and JSON logs at INFO
(bench/voice_settings.py).

The load: --concurrency keep-alive connections driven by one asyncio loop,
each POSTing requests built before the clock starts, signed as Twilio signs
them (RequestValidator.compute_signature over PUBLIC_BASE_URL + path and the
form), each with its own CallSid and I-Twilio-Idempotency-Token:

- voice: /hooks/twilio/voice/ for a new inbound call: the number's agent is
  found, the Call is created (numbers encrypted, blind indexes), its ringing
  status recorded and pushed, a stream token issued, and TwiML with
  <Start><Recording> and <Connect><Stream> answered;
- status: /hooks/twilio/status/ for calls the voice rounds created:
  in-progress then completed (usage recorded once, call.updated pushed).

Rounds alternate the order (voice first, then status first, ...). Each round
also sends --uncontended requests of each kind from a single client, so the
time one request takes when it does not queue behind 49 others shows beside.

Figures, per endpoint, medians over the rounds:
- client-observed latency p50/p95: from writing the request to reading the
  whole answer, on the load generator's clock; it includes queueing in the
  server, which at 50 requests in flight dominates (Little's law: latency ~
  50 / throughput);
- server time p50/p95, from each answer's Server-Timing header
  (jagcall/kernel/serving.py): "app", from the moment the request entered
  Django (past the concurrency bound) to the answer's first byte, with the
  middleware, the view and the thread hand-offs; and "queue", the time it
  waited at the bound before that;
- the webhook view's own duration, from the project's log line
  (``jagcall.webhooks``: "webhook twilio handled 200 (x ms)"): signature,
  organization, dedupe and handling, without the middleware and the server;
- throughput, and the CPU each process used (the machine has 2 cores: the
  load generator, uvicorn, PostgreSQL and Redis share them);
- PostgreSQL sessions opened per request (pg_stat_database.sessions).

Goal: voice webhook p95 < 25 ms under 50 concurrent requests. PASS/FAIL is
printed twice: against the server time ("app") p95, what the issue asks for,
and against the client-observed p95, which adds the wait in line; the
uncontended p95 is printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on the path; the project root is what we need.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import median, percentile, scratch_database, section  # noqa: E402

PUBLIC_BASE_URL = "https://bench.jagcall.invalid"
os.environ["PUBLIC_BASE_URL"] = PUBLIC_BASE_URL  # before the settings load, here and in the server
VOICE = "/hooks/twilio/voice/"
STATUS = "/hooks/twilio/status/"
GOAL_VOICE_P95_MS = 25.0
OUR_NUMBER = "+14155550123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the organization -------------------------------------------------------------------------


def seed():
    """An organization in platform mode: its subaccount, an agent that records, a number it answers."""
    from accounts.services import organization_create, user_create
    from telephony.models import Agent, PhoneNumber, TwilioSubaccount

    owner = user_create(email="owner@bench.invalid", password=None, name="Bench Owner")
    organization = organization_create(name="Bench Dental", owner=owner)
    # The rounds leave hundreds of calls ringing until the status phase ends them; a contract's limit
    # above that keeps every voice request on the full path (a caller beyond the plan's lines is refused).
    organization.concurrent_calls_limit = 1_000_000
    organization.save(update_fields=["concurrent_calls_limit"])
    account_sid = "AC" + secrets.token_hex(16)
    auth_token = secrets.token_hex(16)
    TwilioSubaccount.objects.create(
        organization=organization, account_sid=account_sid, auth_token=auth_token, friendly_name="Bench Dental"
    )
    agent = Agent.objects.create(
        organization=organization,
        name="Front desk",
        system_prompt="You answer the phone of a dental practice.",
        first_message="Hello, Bench Dental, how can I help?",
        record_calls=True,
    )
    PhoneNumber.objects.create(
        organization=organization,
        number=OUR_NUMBER,
        twilio_sid="PN" + secrets.token_hex(16),
        account_sid=account_sid,
        country="US",
        agent=agent,
    )
    return organization, account_sid, auth_token


# --- Twilio's requests, built before the clock starts ------------------------------------------------


class Signer:
    def __init__(self, account_sid: str, auth_token: str):
        from twilio.request_validator import RequestValidator

        self.account_sid = account_sid
        self.validator = RequestValidator(auth_token)
        self.counter = 0

    def request(self, path: str, form: dict, host: str) -> bytes:
        signature = self.validator.compute_signature(PUBLIC_BASE_URL + path, form)
        body = urlencode(form).encode()
        headers = [
            f"POST {path} HTTP/1.1",
            f"Host: {host}",
            "User-Agent: TwilioProxy/1.1",
            "Content-Type: application/x-www-form-urlencoded",
            f"Content-Length: {len(body)}",
            f"X-Twilio-Signature: {signature}",
            f"I-Twilio-Idempotency-Token: {secrets.token_hex(18)}",
            "Accept: */*",
        ]
        return ("\r\n".join(headers) + "\r\n\r\n").encode() + body

    def new_call_sid(self) -> str:
        self.counter += 1
        return f"CA{self.counter:08d}{secrets.token_hex(12)}"

    def caller(self) -> str:
        return f"+1628555{self.counter % 10000:04d}"

    def voice(self, host: str) -> tuple[bytes, str]:
        sid, caller = self.new_call_sid(), self.caller()
        form = {
            "AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": sid, "CallStatus": "ringing",
            "Called": OUR_NUMBER, "CalledCity": "SAN FRANCISCO", "CalledCountry": "US", "CalledState": "CA",
            "CalledZip": "94108", "Caller": caller, "CallerCity": "", "CallerCountry": "US", "CallerState": "CA",
            "CallerZip": "", "Direction": "inbound", "From": caller, "FromCity": "", "FromCountry": "US",
            "FromState": "CA", "FromZip": "", "To": OUR_NUMBER, "ToCity": "SAN FRANCISCO", "ToCountry": "US",
            "ToState": "CA", "ToZip": "94108",
        }  # fmt: skip
        return self.request(VOICE, form, host), sid

    def status(self, host: str, sid: str, status: str, sequence: int) -> bytes:
        form = {
            "AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": sid, "CallStatus": status,
            "CallbackSource": "call-progress-events", "Called": OUR_NUMBER, "Caller": "+16285550100",
            "Direction": "inbound", "From": "+16285550100", "To": OUR_NUMBER, "SequenceNumber": str(sequence),
            "Timestamp": format_datetime(_now(), usegmt=True),
        }  # fmt: skip
        if status == "completed":
            form.update({"CallDuration": "42", "Duration": "1"})
        return self.request(STATUS, form, host)


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


# --- the server ---------------------------------------------------------------------------------


def dockerfile_command() -> list[str]:
    """The image's default command (Dockerfile CMD), so the benchmark serves the project as production does."""
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    if not match:
        raise RuntimeError("no CMD [...] line in the Dockerfile")
    command = json.loads(match.group(1))
    if command[:2] != ["uvicorn", "jagcall.asgi:application"]:
        raise RuntimeError(f"the Dockerfile's CMD is not uvicorn on jagcall.asgi:application: {command}")
    return command


class Server:
    """The image's uvicorn command on 127.0.0.1, with the benchmark's settings; JSON logs into a file."""

    def __init__(self, *, database_name: str, log_path: Path, conn_max_age: int = 60, db_pool: int = 10,
                 max_concurrent: int | None = None, max_concurrent_webhooks: int | None = None,
                 port: int | None = None, environment: dict[str, str] | None = None):
        self.port = port or free_port()
        command = dockerfile_command()
        for option, value in (("--host", "127.0.0.1"), ("--port", str(self.port))):
            command[command.index(option) + 1] = value
        self.command = [sys.executable, "-m", *command]
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.voice_settings",
            "BENCH_DATABASE_NAME": database_name,
            "BENCH_CONN_MAX_AGE": str(conn_max_age),
            "BENCH_DB_POOL": "1" if db_pool else "0",
            "DB_POOL_MAX_SIZE": str(db_pool),
            "SERVER_TIMING_HEADER": "true",
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
        }
        env.update(environment or {})  # another benchmark's additions (bench/voice_turns.py)
        if max_concurrent is not None:
            env["WEB_MAX_CONCURRENT_REQUESTS"] = str(max_concurrent)
        else:
            env.pop("WEB_MAX_CONCURRENT_REQUESTS", None)
        if max_concurrent_webhooks is not None:
            env["WEB_MAX_CONCURRENT_WEBHOOKS"] = str(max_concurrent_webhooks)
        else:
            env.pop("WEB_MAX_CONCURRENT_WEBHOOKS", None)
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90.0) -> None:
        import http.client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_path.read_text()[-3000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def webhook_durations(log_path: Path, start: int, end: int, path: str) -> list[float]:
    """duration_ms of the project's ``jagcall.webhooks`` log lines for ``path`` between two file offsets."""
    with open(log_path, "rb") as handle:
        handle.seek(start)
        chunk = handle.read(end - start)
    durations = []
    for line in chunk.splitlines():
        if b'"jagcall.webhooks"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("path") == path and record.get("outcome") == "handled":
            durations.append(float(record["duration_ms"]))
    return durations


# --- CPU of each process -----------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds used by the load generator (this process), uvicorn, PostgreSQL and Redis, and the whole machine."""

    def __init__(self, server_pid: int, data_dir: Path):
        import psutil

        self.psutil = psutil
        self.server = psutil.Process(server_pid)
        self.roots = {"postgresql": [], "redis": []}
        marker = str(data_dir)
        for process in psutil.process_iter(["cmdline", "name"]):
            try:
                line = " ".join(process.info["cmdline"] or [])
            except (psutil.Error, TypeError):
                continue
            if marker not in line:
                continue
            name = (process.info["name"] or "").lower()
            if "postgres" in name:
                self.roots["postgresql"].append(process)
            elif "redis" in name:
                self.roots["redis"].append(process)

    def _tree(self, processes) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
                for child in process.children(recursive=True):
                    try:
                        child_times = child.cpu_times()
                        total += child_times.user + child_times.system
                    except self.psutil.Error:
                        pass
            except self.psutil.Error:
                pass
        return total

    def sample(self) -> dict:
        machine = self.psutil.cpu_times()
        return {
            "wall": time.perf_counter(),
            "load generator": time.process_time(),
            "uvicorn": self._tree([self.server]),
            "postgresql": self._tree(self.roots["postgresql"]),
            "redis": self._tree(self.roots["redis"]),
            "machine": machine.user + machine.system + machine.nice + getattr(machine, "irq", 0) + getattr(machine, "softirq", 0),
        }

    @staticmethod
    def cores(before: dict, after: dict) -> dict:
        wall = after["wall"] - before["wall"]
        used = {key: (after[key] - before[key]) / wall for key in before if key != "wall"}
        used["other"] = used["machine"] - sum(used[k] for k in ("load generator", "uvicorn", "postgresql", "redis"))
        return used


def pg_counters(database_name: str) -> tuple[int, int]:
    """(sessions ever opened, connections open now) on the benchmark's database.

    Asked on this process's own connection, opened once and kept: a server
    that leaks connections must not lock the benchmark out.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT sessions FROM pg_stat_database WHERE datname = %s), "
            "(SELECT count(*) FROM pg_stat_activity WHERE datname = %s)",
            [database_name, database_name],
        )
        sessions, open_now = cursor.fetchone()
    return int(sessions or 0), int(open_now or 0) - 1  # not counting this process's own


# --- the load ----------------------------------------------------------------------------------


def server_timing(value: str) -> dict[str, float]:
    """``queue;dur=1.2, app;dur=8.5`` -> {"queue": 1.2, "app": 8.5}."""
    timings = {}
    for metric in value.split(","):
        name, _, params = metric.strip().partition(";")
        for param in params.split(";"):
            key, _, number = param.strip().partition("=")
            if key == "dur":
                try:
                    timings[name.strip()] = float(number)
                except ValueError:
                    pass
    return timings


async def _read_response(reader) -> tuple[int, bytes, dict]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = b""
    return status, body, server_timing(headers.get("server-timing", ""))


async def _drive(port: int, requests: list[bytes], concurrency: int) -> dict:
    latencies: list[float] = []
    app_ms: list[float] = []
    queue_ms: list[float] = []
    statuses: dict[int, int] = {}
    samples: dict[int, bytes] = {}  # the first answer of each status
    queue = iter(requests)
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]

    async def client(reader, writer):
        clock = time.perf_counter
        for request in queue:
            began = clock()
            writer.write(request)
            status, body, timing = await _read_response(reader)
            latencies.append(clock() - began)
            if "app" in timing:
                app_ms.append(timing["app"])
                queue_ms.append(timing.get("queue", 0.0))
            statuses[status] = statuses.get(status, 0) + 1
            samples.setdefault(status, body)

    began = time.perf_counter()
    await asyncio.gather(*(client(reader, writer) for reader, writer in connections))
    elapsed = time.perf_counter() - began
    for _reader, writer in connections:
        writer.close()
    return {"latencies": latencies, "app_ms": app_ms, "queue_ms": queue_ms, "statuses": statuses, "elapsed": elapsed,
            "samples": samples}


def drive(port: int, requests: list[bytes], concurrency: int) -> dict:
    try:
        import uvloop

        return uvloop.run(_drive(port, requests, concurrency))
    except ImportError:
        return asyncio.run(_drive(port, requests, concurrency))


class Phase:
    """One endpoint's batch of requests: latency, the view's logged durations, throughput, CPU, PG sessions."""

    def __init__(self, name, path, expected_status):
        self.name, self.path, self.expected = name, path, expected_status

    def run(self, server: Server, meter: CpuMeter, requests: list[bytes], concurrency: int, database_name: str) -> dict:
        sessions_before, _open = pg_counters(database_name)
        log_start = server.log_path.stat().st_size
        before = meter.sample()
        result = drive(server.port, requests, concurrency)
        after = meter.sample()
        time.sleep(0.05)  # the last log lines reach the file
        durations = webhook_durations(server.log_path, log_start, server.log_path.stat().st_size, self.path)
        sessions_after, open_after = pg_counters(database_name)
        sessions = sessions_after - sessions_before
        latencies = result["latencies"]
        wrong = sum(count for status, count in result["statuses"].items() if status != self.expected)
        return {
            "requests": len(latencies),
            "wrong": wrong,
            "statuses": result["statuses"],
            "rps": len(latencies) / result["elapsed"],
            "p50_ms": percentile(latencies, 0.50) * 1e3,
            "p95_ms": percentile(latencies, 0.95) * 1e3,
            "p99_ms": percentile(latencies, 0.99) * 1e3,
            "app_p50_ms": percentile(result["app_ms"], 0.50),
            "app_p95_ms": percentile(result["app_ms"], 0.95),
            "queue_p50_ms": percentile(result["queue_ms"], 0.50),
            "queue_p95_ms": percentile(result["queue_ms"], 0.95),
            "view_p50_ms": percentile(durations, 0.50) if durations else float("nan"),
            "view_p95_ms": percentile(durations, 0.95) if durations else float("nan"),
            "view_lines": len(durations),
            "sessions_per_request": sessions / max(1, len(latencies)),
            "open_connections": open_after,
            "cores": CpuMeter.cores(before, after),
            "samples": result["samples"],
            "sample": result["samples"].get(self.expected, b""),
        }


# --- the run -------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Twilio voice webhook and status callback under concurrent load.")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (default 5)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per endpoint per round (default 2000)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight (default 50)")
    parser.add_argument("--uncontended", type=int, default=200,
                        help="requests per endpoint per round from a single client (default 200; 0: none)")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up requests per endpoint (default 300)")
    parser.add_argument("--db-pool", type=int, default=10,
                        help="the server's pool of database connections (DB_POOL_MAX_SIZE; default 10, production's; 0: no pool)")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="requests inside Django at once (WEB_MAX_CONCURRENT_REQUESTS; default: production's, the pool's size; 0: no bound)")
    parser.add_argument("--max-concurrent-webhooks", type=int, default=None,
                        help="signed webhooks inside Django at once, their own lane (WEB_MAX_CONCURRENT_WEBHOOKS; default: production's, 1; 0: no lane, they share --max-concurrent)")
    parser.add_argument("--conn-max-age", type=int, default=60,
                        help="with --db-pool 0: the server's CONN_MAX_AGE (default 60, DB_CONN_MAX_AGE's default; 0: close after each request)")
    parser.add_argument("--data-dir", help="directory for the embedded servers (default: a fresh one under /tmp, removed at the end)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    packages = ("Django", "uvicorn", "uvloop", "httptools", "psycopg", "redis", "twilio", "tink")
    with scratch_database(args.data_dir, packages=packages) as facts:
        from django.db import connection

        organization, account_sid, auth_token = seed()
        database_name = connection.settings_dict["NAME"]
        data_dir = Path(os.environ["JAGCALL_DATA_DIR"])
        server = Server(database_name=database_name, log_path=data_dir / "bench-voice-server.log",
                        conn_max_age=args.conn_max_age, db_pool=args.db_pool, max_concurrent=args.max_concurrent,
                        max_concurrent_webhooks=args.max_concurrent_webhooks)
        signer = Signer(account_sid, auth_token)
        phases = {"voice": Phase("voice", VOICE, 200), "status": Phase("status", STATUS, 204)}
        calls: list[str] = []  # CallSids the voice webhook created, waiting for their status callbacks

        def voice_requests(count):
            host = f"127.0.0.1:{server.port}"
            built = []
            for _ in range(count):
                request, sid = signer.voice(host)
                built.append(request)
                calls.append(sid)
            return built

        def status_requests(count):
            host = f"127.0.0.1:{server.port}"
            needed = (count + 1) // 2
            if len(calls) < needed:
                raise RuntimeError("not enough calls for the status callbacks; raise --warmup")
            taken = [calls.pop(0) for _ in range(needed)]
            built = []
            for sid in taken:  # each call: in-progress, then completed
                built.append(signer.status(host, sid, "in-progress", 1))
                built.append(signer.status(host, sid, "completed", 2))
            return built[:count]

        builders = {"voice": voice_requests, "status": status_requests}
        rounds: dict[str, list[dict]] = {"voice": [], "status": [], "voice, 1 client": [], "status, 1 client": []}
        try:
            server.wait_ready()
            meter = CpuMeter(server.process.pid, data_dir)
            print(f"server: {shlex.join(server.command)}")
            print(f"organization {organization.id}: subaccount {account_sid}, number {OUR_NUMBER}, agent records calls")

            section(f"Warm-up ({args.warmup} voice + {args.warmup} status requests, {args.concurrency} in flight)")
            # The voice warm-up also leaves calls for the first status batch.
            warm = phases["voice"].run(server, meter, voice_requests(max(args.warmup, args.requests)), args.concurrency, database_name)
            check_answer("voice", warm)
            warm_status = phases["status"].run(server, meter, status_requests(args.warmup), args.concurrency, database_name)
            check_answer("status", warm_status)
            print(f"  voice  {warm['rps']:>7.0f} req/s, statuses {warm['statuses']}")
            print(f"  status {warm_status['rps']:>7.0f} req/s, statuses {warm_status['statuses']}")
            print(f"  a voice answer: {warm['sample'][:400].decode(errors='replace')}")

            section(f"Rounds ({args.rounds} x {args.requests} requests per endpoint, {args.concurrency} in flight; "
                    f"then {args.uncontended} from 1 client; order alternating)")
            for index in range(args.rounds):
                order = ["voice", "status"] if index % 2 == 0 else ["status", "voice"]
                line = []
                for name in order:
                    result = phases[name].run(server, meter, builders[name](args.requests), args.concurrency, database_name)
                    rounds[name].append(result)
                    line.append(f"{name} {result['rps']:>5.0f} req/s p50 {result['p50_ms']:>6.1f} p95 {result['p95_ms']:>6.1f} "
                                f"(server p95 {result['app_p95_ms']:>5.1f}, view p95 {result['view_p95_ms']:>5.1f}) ms, "
                                f"PG open {result['open_connections']}" + (f" [{result['wrong']} unexpected]" if result["wrong"] else ""))
                if args.uncontended:
                    for name in order:
                        result = phases[name].run(server, meter, builders[name](args.uncontended), 1, database_name)
                        rounds[f"{name}, 1 client"].append(result)
                        line.append(f"{name}@1 p50 {result['p50_ms']:>5.1f} p95 {result['p95_ms']:>5.1f} "
                                    f"(server p95 {result['app_p95_ms']:>5.1f}) ms")
                print(f"  round {index + 1}: " + " | ".join(line))
                sys.stdout.flush()
        finally:
            server.stop()
        args.log_path = server.log_path
        print_summary(rounds, args, facts, time.perf_counter() - began)
        failed = sum(r["wrong"] for results in rounds.values() for r in results)
    return 0 if not failed else 1


def check_answer(name: str, result: dict) -> None:
    """Refuse to measure an endpoint that never answers right; say so when some answers are wrong."""
    expected = 200 if name == "voice" else 204
    if not result["statuses"].get(expected):
        if name != "voice":
            print(f"  WARNING: {name}: no expected answer at all, statuses {result['statuses']}: "
                  f"{ {k: v[:200] for k, v in result['samples'].items()} }")
            return
        raise RuntimeError(f"{name}: no expected answer, statuses {result['statuses']}; "
                           f"first answers: { {k: v[:300] for k, v in result['samples'].items()} }")
    if name == "voice" and b"<Stream" not in result["sample"]:
        raise RuntimeError(f"voice: the answer connects no stream: {result['sample'][:500]!r}")
    if result["wrong"]:
        print(f"  WARNING: {name}: statuses {result['statuses']}; first wrong answers: "
              f"{ {k: v[:200] for k, v in result['samples'].items() if k != expected} }")


def print_summary(rounds: dict, args, facts: dict, elapsed: float) -> None:
    section("Summary (medians over rounds)")
    print(f"  {'':<18} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'server p50':>11} {'server p95':>11} "
          f"{'queue p50':>10} {'queue p95':>10} {'view p50':>9} {'view p95':>9} {'PG sess/req':>12} {'PG open':>8}")
    summary = {}
    for name, results in rounds.items():
        if not results:
            continue
        row = {key: median([r[key] for r in results]) for key in
               ("rps", "p50_ms", "p95_ms", "p99_ms", "app_p50_ms", "app_p95_ms", "queue_p50_ms", "queue_p95_ms",
                "view_p50_ms", "view_p95_ms", "sessions_per_request")}
        row["open_connections"] = max(r["open_connections"] for r in results)
        summary[name] = row
        print(f"  {name:<18} {row['rps']:>7.0f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['p99_ms']:>8.1f} "
              f"{row['app_p50_ms']:>11.1f} {row['app_p95_ms']:>11.1f} {row['queue_p50_ms']:>10.1f} {row['queue_p95_ms']:>10.1f} "
              f"{row['view_p50_ms']:>9.1f} {row['view_p95_ms']:>9.1f} {row['sessions_per_request']:>12.2f} {row['open_connections']:>8}")
    print("  (p50/p95/p99: client-observed latency; server: Server-Timing app, from entering Django to the answer;")
    print("   queue: Server-Timing queue, waiting for one of the --max-concurrent places before that;")
    print("   view: the webhook view's duration_ms from the project's log line;")
    print("   PG sess/req: PostgreSQL sessions opened per request; PG open: the most connections left open after a batch)")
    print()
    print(f"  CPU in cores while {args.concurrency} requests were in flight (median over rounds; 2 cores on this machine):")
    keys = ("load generator", "uvicorn", "postgresql", "redis", "other", "machine")
    print(f"  {'':<18} " + " ".join(f"{k:>14}" for k in keys))
    for name in ("voice", "status"):
        if rounds[name]:
            print(f"  {name:<18} " + " ".join(f"{median([r['cores'][k] for r in rounds[name]]):>14.2f}" for k in keys))
    print("  ('other': the rest of the machine, which is shared; 'machine': everything)")
    print()
    def verdict(name: str, key: str = "p95_ms") -> str:
        wrong = sum(r["wrong"] for r in rounds[name])
        if wrong:
            return f"FAIL ({wrong} of {sum(r['requests'] for r in rounds[name])} answers wrong)"
        return "PASS" if summary[name][key] < GOAL_VOICE_P95_MS else "FAIL"

    voice = summary.get("voice")
    if voice:
        print(f"{verdict('voice', 'app_p95_ms')}: voice webhook server time p95 {voice['app_p95_ms']:.1f} ms with "
              f"{args.concurrency} in flight, Server-Timing app (goal < {GOAL_VOICE_P95_MS:.0f} ms); it waited "
              f"{voice['queue_p95_ms']:.1f} ms p95 in line before that")
        print(f"{verdict('voice')}: voice webhook p95 {voice['p95_ms']:.1f} ms with {args.concurrency} in flight, "
              f"client-observed (goal < {GOAL_VOICE_P95_MS:.0f} ms)")
        # Little's law: with N requests always in flight, latency = N / throughput.
        print(f"  at {voice['rps']:.0f} req/s, {args.concurrency} in flight queue for ~{args.concurrency / voice['rps'] * 1e3:.0f} ms "
              f"each (Little's law); the goal needs > {args.concurrency / GOAL_VOICE_P95_MS * 1e3:.0f} req/s from one process")
        alone = summary.get("voice, 1 client")
        if alone:
            print(f"{verdict('voice, 1 client')}: voice webhook p95 {alone['p95_ms']:.1f} ms from 1 client, "
                  "no queueing (same goal)")
    failures = sum(r["wrong"] for results in rounds.values() for r in results)
    total = sum(r["requests"] for results in rounds.values() for r in results)
    if failures:
        statuses: dict = {}
        for results in rounds.values():
            for r in results:
                for status, count in r["statuses"].items():
                    statuses[status] = statuses.get(status, 0) + count
        print(f"FAIL: {failures} of {total} answers had an unexpected status {statuses}; the latencies above include "
              f"them (see the server's log: {args.log_path})")
    print()
    print(f"command: {shlex.join(getattr(sys, 'orig_argv', [sys.executable, *sys.argv]))}")
    print(f"options: rounds={args.rounds} requests={args.requests} concurrency={args.concurrency} "
          f"uncontended={args.uncontended} warmup={args.warmup} db_pool={args.db_pool} "
          f"max_concurrent={'default' if args.max_concurrent is None else args.max_concurrent} "
          f"max_concurrent_webhooks={'default' if args.max_concurrent_webhooks is None else args.max_concurrent_webhooks} "
          f"conn_max_age={args.conn_max_age if not args.db_pool else 'n/a (pool)'}")
    for key, value in facts.items():
        print(f"{key}: {value}")
    try:
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    except OSError:
        pass
    print(f"total time: {elapsed:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
