"""Benchmark: what the API's security layers cost on an authenticated list endpoint.

Run from the repository root:

    .venv/bin/python bench/api.py [--rounds 7] [--seconds 5] [--concurrency 8] [--members 25]

It needs no network and touches no existing data: it starts its own embedded
PostgreSQL + Redis under a fresh directory in /tmp (or --data-dir), creates a
scratch database with one organization of --members members and an API key
holding ``members:read``, and serves the project with uvicorn in a separate
process, as the image does (uvloop + httptools, one process, no access log,
DEBUG off, persistent database connections; bench/api_settings.py).

Two endpoints answer the same page of the same team (bench/api_urls.py):

- secured: ``GET /api/v1/members`` with ``Authorization: Bearer jc_live_…``:
  API key lookup and hash check, organization resolution, scope check, the
  Redis sliding-window rate limit (its budget raised so it counts every
  request but refuses none) with its RateLimit-* headers, tenancy filter;
- open: ``GET /bench/open-members``: the same selector, serializer and
  pagination with AllowAny, no authentication and no throttling.

Rounds alternate the order (secured first, then open first, ...) and each
variant runs --seconds with --concurrency keep-alive client threads. Per
round: requests per second and p50/p95 latency; the summary prints their
medians over the rounds and the median of the per-round throughput ratios
secured/open. Target: the layers cost under 25% of throughput. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on the path; the project root is what we need.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import median, percentile, scratch_database, section  # noqa: E402

from accounts.principals import Principal

OPERATOR = Principal.system("operator")  # service keys, as the create_api_key command makes them

SECURED = "/api/v1/members"
OPEN = "/bench/open-members"
TARGET_COST = 0.25


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(members: int):
    """One organization with ``members`` members and a members:read API key; returns (organization, raw key)."""
    from accounts.api_keys.services import api_key_create
    from accounts.models import Membership
    from accounts.scopes import ALL_SCOPES
    from accounts.services import organization_create, user_create

    owner = user_create(email="owner@bench.invalid", password=None, name="Bench Owner")
    organization = organization_create(name="Bench Dental", owner=owner)
    for n in range(members - 1):
        person = user_create(email=f"person{n:03d}@bench.invalid", password=None, name=f"Person {n}")
        Membership.objects.create(organization=organization, user=person, role="member")
    _key, raw = api_key_create(
        organization=organization, actor=OPERATOR, service_role="owner", name="Bench", scopes=["members:read"]
    )
    return organization, raw


class Server:
    """uvicorn serving jagcall.asgi in its own process, with the benchmark's settings."""

    def __init__(self, *, organization_id, database_name: str):
        self.port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.api_settings",
            "BENCH_DATABASE_NAME": database_name,
            "BENCH_ORGANIZATION_ID": str(organization_id),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        command = [
            sys.executable, "-m", "uvicorn", "jagcall.asgi:application",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--loop", "uvloop", "--http", "httptools", "--lifespan", "off", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.process.stderr.read().decode()[-2000:]}")
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


def check_answer(port: int, path: str, headers: dict) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}: {body}")
    return {"status": response.status, "results": len(body["results"]), "headers": {k.lower(): v for k, v in response.getheaders()}}


def load(port: int, path: str, headers: dict, *, seconds: float, concurrency: int) -> dict:
    """``concurrency`` threads, each with one keep-alive connection, for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures = [0] * concurrency
    start_gate = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        own = latencies[index]
        start_gate.wait()
        while True:
            began = time.perf_counter()
            if began >= stop_at[0]:
                break
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            own.append(time.perf_counter() - began)
            if response.status != 200:
                failures[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_gate.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    every = [value for own in latencies for value in own]
    return {
        "requests": len(every),
        "failures": sum(failures),
        "rps": len(every) / elapsed,
        "p50_ms": percentile(every, 0.50) * 1e3,
        "p95_ms": percentile(every, 0.95) * 1e3,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Cost of the API's security layers on an authenticated list endpoint.")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per variant; medians are reported (default 7)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per variant per round (default 5)")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive client threads (default 8)")
    parser.add_argument("--members", type=int, default=25, help="members in the listed team (default 25)")
    parser.add_argument("--data-dir", help="directory for the embedded servers (default: a fresh one under /tmp, removed at the end)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    with scratch_database(args.data_dir, packages=("Django", "djangorestframework", "uvicorn", "uvloop", "httptools", "psycopg", "redis")) as facts:
        from django.db import connection

        organization, raw_key = seed(args.members)
        database_name = connection.settings_dict["NAME"]
        connection.close()
        server = Server(organization_id=organization.id, database_name=database_name)
        try:
            server.wait_ready()
            variants = {
                "secured": (SECURED, {"Authorization": f"Bearer {raw_key}"}),
                "open": (OPEN, {}),
            }
            section("Answers")
            for name, (path, headers) in variants.items():
                answer = check_answer(server.port, path, headers)
                limit = answer["headers"].get("ratelimit-limit", "-")
                print(f"  {name:<8} GET {path:<22} {answer['status']}  {answer['results']} members  RateLimit-Limit {limit}")
            section(f"Warm-up ({args.concurrency} clients, 2 s each)")
            for name, (path, headers) in variants.items():
                warm = load(server.port, path, headers, seconds=2.0, concurrency=args.concurrency)
                print(f"  {name:<8} {warm['rps']:>8.0f} req/s")
            section(f"Rounds ({args.rounds} x {args.seconds:g} s per variant, {args.concurrency} clients, order alternating)")
            rounds: dict[str, list[dict]] = {name: [] for name in variants}
            for index in range(args.rounds):
                order = list(variants) if index % 2 == 0 else list(reversed(variants))
                line = []
                for name in order:
                    path, headers = variants[name]
                    result = load(server.port, path, headers, seconds=args.seconds, concurrency=args.concurrency)
                    rounds[name].append(result)
                    line.append(
                        f"{name} {result['rps']:>7.0f} req/s p50 {result['p50_ms']:>6.2f} p95 {result['p95_ms']:>6.2f} ms"
                        + (f" ({result['failures']} not 200)" if result["failures"] else "")
                    )
                print(f"  round {index + 1}: " + " | ".join(line))
                sys.stdout.flush()
        finally:
            server.stop()
        print_summary(rounds, args, facts, time.perf_counter() - began)
    return 0


def print_summary(rounds: dict, args, facts: dict, elapsed: float) -> None:
    section("Summary (medians over rounds)")
    summary = {
        name: {key: median([r[key] for r in results]) for key in ("rps", "p50_ms", "p95_ms")}
        for name, results in rounds.items()
    }
    print(f"  {'':<44} {'req/s':>9} {'p50 ms':>9} {'p95 ms':>9}")
    print(f"  {'open: AllowAny, no throttle (' + OPEN + ')':<44} {summary['open']['rps']:>9.0f} "
          f"{summary['open']['p50_ms']:>9.2f} {summary['open']['p95_ms']:>9.2f}")
    print(f"  {'secured: API key + limit + tenancy':<44} {summary['secured']['rps']:>9.0f} "
          f"{summary['secured']['p50_ms']:>9.2f} {summary['secured']['p95_ms']:>9.2f}")
    # Each round measures both variants back to back, so its ratio is the fairest figure on a noisy
    # machine; the headline is the median of those ratios.
    per_round = [s["rps"] / o["rps"] for s, o in zip(rounds["secured"], rounds["open"])]
    ratio = median(per_round)
    cost = 1 - ratio
    print(f"  throughput ratio secured/open, median of rounds: {ratio:.3f} "
          f"(per round: {', '.join(f'{r:.3f}' for r in per_round)}; ratio of the medians above: "
          f"{summary['secured']['rps'] / summary['open']['rps']:.3f})")
    print(f"  cost of the security layers: {cost * 100:.1f}% of throughput "
          f"(target < {TARGET_COST * 100:.0f}%: {'met' if cost < TARGET_COST else 'NOT met'})")
    print(f"  added latency at p50: {summary['secured']['p50_ms'] - summary['open']['p50_ms']:+.2f} ms")
    failures = sum(r["failures"] for results in rounds.values() for r in results)
    if failures:
        print(f"  WARNING: {failures} answers were not 200; the figures above include them")
    print()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    for key, value in facts.items():
        print(f"{key}: {value}")
    print(f"total time: {elapsed:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
