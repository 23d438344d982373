"""Benchmark: the calls list page and GET /api/v1/calls with 100k calls in the organization, and what decrypting costs.

Run from the repository root:

    .venv/bin/python bench/calls_list.py [--calls 100000] [--rounds 5] [--requests 200]

It needs no network and touches no existing data: it starts its own embedded
PostgreSQL + Redis under .data/bench-calls (or --data-dir), keeps the scratch
database there, and seeds it once: one organization with --calls calls (60%
inbound, the usual mix of statuses, three agents, two numbers, spread over
180 days; each call's two numbers encrypted with the organization's keys
and blind-indexed, written with bulk_create). A later run with the same
--calls finds them and skips the seeding; --fresh starts over.

Requests run in-process through Django's test client (the whole middleware
stack, sessions in Redis, DEBUG off, a persistent database connection as in
production; bench/calls_settings.py), interleaved in each round:

- page: GET /o/<slug>/calls/ as a member: the newest 50 calls (the rows show
  the other party's number masked, decrypted in one pass over the page);
- page without decryption: the same view and template with the rows built
  from a fixed number (bench/calls_urls.py);
- page, filtered: status=completed and the date range of the last 30 days;
- api: GET /api/v1/calls with an API key holding calls:read (50 calls, both
  numbers of each in full);
- page 200 deep: the API's 200th page through its cursor (informational).

Between requests, the decryption of what the page shows is also timed
directly: the 50 newest calls loaded as the page loads them, then their
shown column (the other party's number) decrypted in one batch; likewise both
numbers for the API's page.

Per variant: p50/p95 per round, medians over the rounds. Goals: page and API
p95 < 60 ms; decrypting what the page shows adds < 15% to the page's server
time (two readings: the A/B difference of the medians, and the direct batch
time over the page's median). PASS/FAIL lines at the end.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shlex
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on the path; the project root is what we need.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.calls_settings"  # its comparison route and production-shaped settings

from bench.common import median, percentile, scratch_database, section  # noqa: E402

GOAL_P95_MS = 60.0
GOAL_DECRYPT_SHARE = 0.15
OWNER_EMAIL = "owner@bench-calls.invalid"


# --- seeding (once per data directory and size) ----------------------------------------------


def organization_slug(calls: int) -> str:
    return f"bench-calls-{calls}"


def seed(calls: int, *, batch: int = 2000):
    """The organization with ``calls`` calls; reused when a previous run made it. Returns (organization, owner, seconds)."""
    from django.db import connection, transaction

    from accounts.models import Organization, User
    from accounts.services import organization_create, user_create
    from telephony.models import Agent, Call, CallDirection, CallStatus, PhoneNumber

    slug = organization_slug(calls)
    existing = Organization.objects.filter(slug=slug).first()
    if existing is not None:
        count = Call.objects.for_org(existing).count()
        if count == calls:
            owner = User.objects.get(email=OWNER_EMAIL)
            print(f"seeded before: organization {slug} with {count:,} calls (reused; --fresh starts over)")
            return existing, owner, 0.0
        raise RuntimeError(f"organization {slug} holds {count:,} calls, not {calls:,}: run with --fresh")

    began = time.perf_counter()
    owner = User.objects.filter(email=OWNER_EMAIL).first() or user_create(
        email=OWNER_EMAIL, password=None, name="Bench Owner"
    )
    organization = organization_create(name=f"Bench Calls {calls}", owner=owner, slug=slug)
    agents = [
        Agent.objects.create(organization=organization, name=name, system_prompt="You answer the phone.")
        for name in ("Front desk", "After hours", "Billing")
    ]
    numbers = [
        PhoneNumber.objects.create(
            organization=organization, number=f"+1415555{index:04d}", twilio_sid=f"PN{calls:010d}{index:022d}",
            account_sid="AC" + "0" * 32, country="US", agent=agents[index],
        )
        for index in range(2)
    ]  # fmt: skip
    rng = random.Random(calls)
    statuses = [CallStatus.COMPLETED] * 70 + [CallStatus.NO_ANSWER] * 10 + [CallStatus.BUSY] * 6 + [
        CallStatus.FAILED] * 4 + [CallStatus.CANCELED] * 4 + [CallStatus.IN_PROGRESS] * 2 + [CallStatus.RINGING] * 2 + [
        CallStatus.QUEUED] * 2  # fmt: skip
    now = Call._meta.get_field("created_at").default()
    span = timedelta(days=180).total_seconds()
    made = 0
    while made < calls:
        rows = []
        for index in range(made, min(calls, made + batch)):
            inbound = rng.random() < 0.6
            number = numbers[index % 2]
            counterpart = f"+1{rng.choice(('628', '415', '510', '650', '707'))}555{rng.randrange(10000):04d}"
            status = rng.choice(statuses)
            created = now - timedelta(seconds=span * index / calls + rng.random())
            finished = status in {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED,
                                  CallStatus.CANCELED}  # fmt: skip
            duration = rng.randrange(5, 900) if status == CallStatus.COMPLETED else (0 if finished else None)
            rows.append(
                Call(
                    organization=organization,
                    direction=CallDirection.INBOUND if inbound else CallDirection.OUTBOUND,
                    agent=number.agent if rng.random() < 0.97 else None,
                    phone_number=number,
                    from_number=counterpart if inbound else number.number,
                    to_number=number.number if inbound else counterpart,
                    status=status,
                    twilio_sid=f"CA{calls:08d}{index:024d}",
                    account_sid=number.account_sid,
                    placed_by="" if inbound else "owner@bench-calls.invalid",
                    created_at=created,
                    answered_at=created + timedelta(seconds=4) if status in {CallStatus.COMPLETED,
                                                                              CallStatus.IN_PROGRESS} else None,
                    ended_at=created + timedelta(seconds=4 + (duration or 0)) if finished else None,
                    duration_seconds=duration,
                    billable_seconds=duration,
                    price=Decimal("-0.0085") * ((duration or 0) // 60 + 1) if status == CallStatus.COMPLETED else None,
                    price_unit="USD" if status == CallStatus.COMPLETED else "",
                    error_code="31005" if status == CallStatus.FAILED else "",
                    error_message="Connection error" if status == CallStatus.FAILED else "",
                )
            )  # fmt: skip
        with transaction.atomic():
            Call.objects.bulk_create(rows, batch_size=500)
        made += len(rows)
        if made % 20000 == 0 or made == calls:
            elapsed = time.perf_counter() - began
            print(f"  seeded {made:>8,} calls in {elapsed:6.1f} s ({made / elapsed:,.0f}/s)")
            sys.stdout.flush()
    with connection.cursor() as cursor:
        cursor.execute(f'VACUUM ANALYZE "{Call._meta.db_table}"')
    return organization, owner, time.perf_counter() - began


# --- the measurement ---------------------------------------------------------------------------


def signed_in_client(user):
    """A test client with the session a sign-in with the password leaves (force_login alone proves nothing)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    session = client.session
    session["account_authentication_methods"] = [{"method": "password", "at": time.time(), "email": user.email}]
    session["account_authentication_methods_user"] = str(user.pk)
    session.save()
    return client


def timed_get(client, path: str, headers: dict | None = None, *, expect: int = 200):
    began = time.perf_counter()
    response = client.get(path, headers=headers or {})
    elapsed = time.perf_counter() - began
    if response.status_code != expect:
        raise RuntimeError(f"GET {path} answered {response.status_code} {response.headers.get('Location', '')}: {response.content[:500]!r}")
    return elapsed, response


def decrypt_batches(organization):
    """Direct timing: the page's 50 calls loaded as the page loads them, then their shown numbers decrypted."""
    from telephony.selectors.calls import call_list, call_page

    began = time.perf_counter()
    calls = call_page(queryset=call_list(organization=organization)).calls
    loaded = time.perf_counter()
    shown = [call.counterpart_number for call in calls]  # the page's column: one decryption per row
    page_decrypt = time.perf_counter() - loaded
    fetch = loaded - began
    calls = call_page(queryset=call_list(organization=organization)).calls
    began = time.perf_counter()
    both = [(call.from_number, call.to_number) for call in calls]  # the API's: both numbers of every row
    api_decrypt = time.perf_counter() - began
    assert len(shown) == len(both) == 50
    return fetch, page_decrypt, api_decrypt


def api_deep_cursor(client, headers, pages: int) -> str:
    """The path of the API's page ``pages`` deep (following ``next``)."""
    path = "/api/v1/calls"
    for _ in range(pages - 1):
        _elapsed, response = timed_get(client, path, headers)
        following = response.json().get("next")
        if not following:
            break
        path = following.split("testserver", 1)[-1]
    return path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="The calls list page and API with many calls, and the cost of decryption.")
    parser.add_argument("--calls", type=int, default=100_000, help="calls in the organization (default 100000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (default 5)")
    parser.add_argument("--requests", type=int, default=200, help="requests per variant per round (default 200)")
    parser.add_argument("--deep", type=int, default=200, help="how deep the deep API page is (default 200; 0: skip)")
    parser.add_argument("--data-dir", default=str(ROOT / ".data" / "bench-calls"),
                        help="directory for the embedded servers and the kept database (default .data/bench-calls)")
    parser.add_argument("--fresh", action="store_true", help="remove the data directory first, and seed again")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    data_dir = Path(args.data_dir).resolve()
    if args.fresh and data_dir.exists():
        import shutil

        from jagcall.kernel.embedded import EmbeddedPostgres, EmbeddedRedis

        EmbeddedRedis(data_dir / "redis").stop()
        EmbeddedPostgres(data_dir / "pg").stop()
        shutil.rmtree(data_dir)
        print(f"removed {data_dir}")
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o755)  # the embedded PostgreSQL runs as its own user when we are root
    with scratch_database(str(data_dir), packages=("Django", "djangorestframework", "psycopg", "tink"), keep=True) as facts:
        from accounts.api_keys.services import api_key_create
        from accounts.principals import Principal
        from jagcall.kernel.crypto.keys import organization_keys

        section(f"Seeding: {args.calls:,} calls in one organization")
        organization, owner, seed_seconds = seed(args.calls)
        _key, raw_key = api_key_create(
            organization=organization, actor=Principal.system("operator"), service_role="owner",
            name=f"Bench {time.time():.0f}", scopes=["calls:read"],
        )  # fmt: skip
        api_headers = {"Authorization": f"Bearer {raw_key}"}
        client = signed_in_client(owner)
        organization_keys(organization.id)  # warm key cache, as in a running server
        slug = organization.slug
        today = time.strftime("%Y-%m-%d")
        month_ago = time.strftime("%Y-%m-%d", time.localtime(time.time() - 30 * 86400))
        variants = {
            "page": (f"/o/{slug}/calls/", {}),
            "page without decryption": (f"/bench/o/{slug}/calls-without-decryption/", {}),
            "page, filtered": (f"/o/{slug}/calls/?status=completed&date_from={month_ago}&date_to={today}", {}),
            "api": ("/api/v1/calls", api_headers),
        }
        if args.deep:
            variants[f"api, page {args.deep}"] = (api_deep_cursor(client, api_headers, args.deep), api_headers)

        section("Answers")
        for name, (path, headers) in variants.items():
            _elapsed, response = timed_get(client, path, headers)
            if name.startswith("api"):
                detail = f"{len(response.json()['results'])} calls"
            else:
                detail = f"{response.content.count(b'<tr data-call-id')} rows, {len(response.content):,} bytes"
            print(f"  {name:<26} {response.status_code}  {detail}")
        page = client.get(variants["page"][0]).content
        plain = client.get(variants["page without decryption"][0]).content
        if page.count(b"<tr data-call-id") != 50 or plain.count(b"<tr data-call-id") != 50:
            raise RuntimeError("the page does not show 50 calls")
        if b"+1 628 \xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2 0100" not in plain:
            raise RuntimeError("the comparison page does not show its fixed number: is the view still call_rows?")

        section("Warm-up (30 requests per variant)")
        for _ in range(30):
            for path, headers in variants.values():
                timed_get(client, path, headers)
            decrypt_batches(organization)
        print("  done")

        section(f"Rounds ({args.rounds} x {args.requests} requests per variant, interleaved)")
        rounds: dict[str, list[dict]] = {name: [] for name in variants}
        direct: list[dict] = []
        for index in range(args.rounds):
            times = {name: [] for name in variants}
            fetches, page_decrypts, api_decrypts = [], [], []
            names = list(variants) if index % 2 == 0 else list(reversed(variants))
            gc.collect()
            for _ in range(args.requests):
                for name in names:
                    path, headers = variants[name]
                    times[name].append(timed_get(client, path, headers)[0])
                fetch, page_decrypt, api_decrypt = decrypt_batches(organization)
                fetches.append(fetch)
                page_decrypts.append(page_decrypt)
                api_decrypts.append(api_decrypt)
            for name in variants:
                rounds[name].append({"p50_ms": percentile(times[name], 0.5) * 1e3, "p95_ms": percentile(times[name], 0.95) * 1e3})
            direct.append({
                "fetch_ms": median(fetches) * 1e3,
                "page_decrypt_ms": median(page_decrypts) * 1e3,
                "api_decrypt_ms": median(api_decrypts) * 1e3,
            })  # fmt: skip
            print(f"  round {index + 1}: " + " | ".join(
                f"{name} p50 {rounds[name][-1]['p50_ms']:.1f} p95 {rounds[name][-1]['p95_ms']:.1f}" for name in variants)
                + f" | decrypt 50 shown {direct[-1]['page_decrypt_ms']:.2f} ms")  # fmt: skip
            sys.stdout.flush()
        print_summary(rounds, direct, args, facts, seed_seconds, time.perf_counter() - began)
    return 0


def print_summary(rounds: dict, direct: list[dict], args, facts: dict, seed_seconds: float, elapsed: float) -> None:
    section(f"Summary ({args.calls:,} calls; medians over {args.rounds} rounds of {args.requests} requests)")
    summary = {name: {key: median([r[key] for r in results]) for key in ("p50_ms", "p95_ms")} for name, results in rounds.items()}
    print(f"  {'':<28} {'p50 ms':>8} {'p95 ms':>8}")
    for name, row in summary.items():
        print(f"  {name:<28} {row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f}")
    fetch = median([d["fetch_ms"] for d in direct])
    page_decrypt = median([d["page_decrypt_ms"] for d in direct])
    api_decrypt = median([d["api_decrypt_ms"] for d in direct])
    print(f"  {'direct: load the 50 calls':<28} {fetch:>8.2f}")
    print(f"  {'direct: decrypt 50 shown':<28} {page_decrypt:>8.2f}   (the page's column, one batch)")
    print(f"  {'direct: decrypt 2 x 50':<28} {api_decrypt:>8.2f}   (the API's two numbers per call)")

    page, without = summary["page"], summary["page without decryption"]
    # Each round measures both pages interleaved; the per-round difference is the fairest on a noisy machine.
    differences = [r["p50_ms"] - w["p50_ms"] for r, w in zip(rounds["page"], rounds["page without decryption"])]
    ab_share = median(differences) / page["p50_ms"]
    direct_share = page_decrypt / page["p50_ms"]
    api_share = api_decrypt / summary["api"]["p50_ms"]
    print()
    print(f"  decryption's share of the page, A/B: {median(differences):+.2f} ms of {page['p50_ms']:.2f} ms = {ab_share * 100:+.1f}% "
          f"(per round: {', '.join(f'{d:+.2f}' for d in differences)} ms)")
    print(f"  decryption's share of the page, direct: {page_decrypt:.2f} ms of {page['p50_ms']:.2f} ms = {direct_share * 100:.1f}%")
    print(f"  decryption's share of the API: {api_decrypt:.2f} ms of {summary['api']['p50_ms']:.2f} ms = {api_share * 100:.1f}%")
    print()
    for name in ("page", "page, filtered", "api"):
        p95 = summary[name]["p95_ms"]
        print(f"{'PASS' if p95 < GOAL_P95_MS else 'FAIL'}: {name} p95 {p95:.1f} ms (goal < {GOAL_P95_MS:.0f} ms)")
    share = max(ab_share, direct_share)
    print(f"{'PASS' if share < GOAL_DECRYPT_SHARE else 'FAIL'}: decrypting what the page shows adds {share * 100:.1f}% "
          f"(the larger of A/B and direct; goal < {GOAL_DECRYPT_SHARE * 100:.0f}%)")
    print()
    print(f"command: {shlex.join(getattr(sys, 'orig_argv', [sys.executable, *sys.argv]))}")
    print(f"options: calls={args.calls} rounds={args.rounds} requests={args.requests} deep={args.deep}")
    print(f"seeding: {'reused from a previous run' if not seed_seconds else f'{seed_seconds:.1f} s'}")
    for key, value in facts.items():
        print(f"{key}: {value}")
    try:
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    except OSError:
        pass
    print(f"total time: {elapsed:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
