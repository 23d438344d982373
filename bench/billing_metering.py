"""Benchmark: usage metered to Stripe, a sender killed mid-batch, and Stripe's totals against ours.

Run from the repository root:

    .venv/bin/python bench/billing_metering.py [--records 100000] [--rounds 3] [--organizations 20]
        [--batch-size 500] [--concurrency 8] [--kill-at 0.4]

It needs no network and touches no existing data: it starts its own embedded
PostgreSQL + Redis under a fresh directory in /tmp (or --data-dir), works in a
scratch database, dropped at the end, and runs the Stripe stand-in
(jagcall/kernel/standins/stripe.py) in this process, reached through the real
Stripe SDK.

Set-up: the plans' prices and meters at the stand-in (billing_prices_sync),
--organizations organizations, each a Stripe customer with an active
subscription (its BillingAccount). Each round then writes --records usage
events (70 % call minutes of 1-15, 30 % SMS segments of 1-3, spread over the
last three days, each with its identifier derived from its source, as
billing.services.usage.usage_record makes it) with one bulk insert, and:

1. starts a sender: another process (Django on the same database, the
   settings of the web image, the Stripe SDK pointed at the stand-in) running
   billing.services.metering.usage_send_all, the beat task's work, batches of
   --batch-size with --concurrency requests in flight;
2. kills it (SIGKILL) once the stand-in has accepted --kill-at of the round's
   events and the current batch is half sent: the batch's transaction is
   rolled back, so the events Stripe accepted in it are still unsent for us;
3. waits for PostgreSQL to release the dead sender's row locks, then starts a
   new sender, which sends everything left, the dead batch again;
4. checks: nothing is left unsent; the stand-in accepted each identifier once
   (the repeats it refused are exactly the dead batch's accepted events); per
   customer and meter, Stripe's total equals the sum of our sent events; the
   daily reconciliation (usage_reconcile) finds no difference on any day.

Figures, per round and medians over rounds: records/s of the first sender
until it was killed and of the second until it finished (events marked sent
per second of wall time, process start included), the events of the dead
batch sent twice and refused, and the reconciliation's differences.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import shlex
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import median, scratch_database, section  # noqa: E402


# --- the sender: another process -----------------------------------------------------------------------


def sender_main() -> int:
    """Run as ``billing_metering.py --sender``: send every unsent usage event, print how many."""
    import django

    django.setup()
    from billing.services.metering import usage_send_all

    began = time.perf_counter()
    sent = usage_send_all(max_batches=1_000_000)
    print(f"sent {sent} in {time.perf_counter() - began:.2f} s", flush=True)
    return 0


def start_sender(database_name: str, standin, args, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.voice_settings",
        "BENCH_DATABASE_NAME": database_name,
        "PROVIDER_BASE_URLS": f"stripe={standin.base_url}",
        "STRIPE_SECRET_KEY": standin.api_key,
        "BILLING_METER_BATCH_SIZE": str(args.batch_size),
        "BILLING_METER_CONCURRENCY": str(args.concurrency),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--sender"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


# --- set-up ------------------------------------------------------------------------------------------


def seed(count: int) -> list:
    """The plans' prices and meters at Stripe; ``count`` organizations subscribed (a customer each)."""
    from django.utils import timezone

    from accounts.services import organization_create, user_create
    from billing.models import BillingAccount
    from billing.services.prices import prices_sync
    from billing.services.stripe_api import client

    prices_sync()
    stripe = client()
    owner = user_create(email="owner@bench-metering.invalid", password=None, name="Bench Owner")
    now = timezone.now()
    organizations = []
    for index in range(count):
        organization = organization_create(name=f"Bench Practice {index:03d}", owner=owner, plan_code="pro")
        customer = stripe.v1.customers.create({"name": organization.name, "metadata": {"organization_id": str(organization.id)}})
        BillingAccount.objects.for_org(organization).update_or_create(
            organization=organization,
            defaults={"stripe_customer_id": customer.id, "stripe_subscription_id": "sub_bench",
                      "subscription_status": "active", "subscribed_plan_code": "pro", "interval": "month",
                      "current_period_start": now - dt.timedelta(days=10),
                      "current_period_end": now + dt.timedelta(days=20), "synced_at": now},
        )  # fmt: skip
        organizations.append(organization)
    return organizations


def write_usage(organizations: list, records: int, round_index: int, rng: random.Random) -> dict:
    """``records`` unsent usage events in one bulk insert; our totals by (organization, kind, day)."""
    from django.utils import timezone

    from billing.models import UsageEvent
    from billing.services.usage import usage_identifier

    now = timezone.now().replace(microsecond=0)
    oldest = now - dt.timedelta(days=3)
    span = int((now - dt.timedelta(minutes=5) - oldest).total_seconds())
    rows = []
    totals: dict[tuple, int] = {}
    for index in range(records):
        organization = organizations[index % len(organizations)]
        if rng.random() < 0.7:
            kind, quantity, source = "call_minutes", rng.randint(1, 15), f"call:bench-{round_index}-{index}"
        else:
            kind, quantity, source = "sms_segments", rng.randint(1, 3), f"message:bench-{round_index}-{index}"
        occurred = oldest + dt.timedelta(seconds=rng.randrange(span))
        rows.append(UsageEvent(organization=organization, kind=kind, quantity=quantity, source=source,
                               identifier=usage_identifier(kind, source), occurred_at=occurred))  # fmt: skip
        key = (organization.id, kind, occurred.astimezone(dt.UTC).date())
        totals[key] = totals.get(key, 0) + quantity
    UsageEvent.objects.unscoped("the benchmark writes every organization's usage").bulk_create(rows, batch_size=5000)
    return totals


# --- a round ---------------------------------------------------------------------------------------


def unsent() -> int:
    from billing.models import UsageEvent

    return UsageEvent.objects.unscoped("the benchmark counts every organization's usage").filter(
        sent_at__isnull=True
    ).count()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_locks(timeout: float = 60.0) -> float:
    """Wait until no other session holds a lock on the usage table (the dead sender's backend has gone)."""
    from django.db import connection

    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'billing_usageevent' AND l.pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return time.perf_counter() - began
        time.sleep(0.05)
    raise RuntimeError("the killed sender's locks were not released")


def run_round(index: int, args, organizations, standin, database_name: str, data_dir: Path, rng) -> dict:
    accepted_before = len(standin.meter_events)
    duplicates_before = standin.duplicate_meter_events
    began = time.perf_counter()
    totals = write_usage(organizations, args.records, index, rng)
    insert_s = time.perf_counter() - began
    kill_at = int(args.records * args.kill_at)
    log_path = data_dir / "bench-metering-sender.log"

    # 1-2. The first sender, killed half-way through a batch.
    cpu_here, cpu_children = time.process_time(), _children_cpu()
    began = time.perf_counter()
    sender = start_sender(database_name, standin, args, log_path)
    killed = False
    while sender.poll() is None:
        accepted = len(standin.meter_events) - accepted_before
        if accepted >= kill_at and (accepted % args.batch_size) >= args.batch_size // 2:
            sender.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.001)
    sender.wait()
    first_s = time.perf_counter() - began
    accepted_at_kill = len(standin.meter_events) - accepted_before
    if not killed:
        raise RuntimeError(f"the sender ended (status {sender.returncode}) before it could be killed; see {log_path}")
    release_s = wait_for_locks()
    left = unsent()
    marked_at_kill = args.records - left

    # 3. The second sender finishes.
    began = time.perf_counter()
    sender = start_sender(database_name, standin, args, log_path)
    if sender.wait(timeout=3600):
        raise RuntimeError(f"the second sender failed (status {sender.returncode}); see {log_path}")
    second_s = time.perf_counter() - began
    sent_per_k = 1000 / (args.records + accepted_at_kill - marked_at_kill)  # every request, repeats included
    sender_cpu_ms = (_children_cpu() - cpu_children) * 1e3 * sent_per_k
    standin_cpu_ms = (time.process_time() - cpu_here) * 1e3 * sent_per_k

    # 4. Checks.
    problems = []
    still_unsent = unsent()
    if still_unsent:
        problems.append(f"{still_unsent} events left unsent")
    accepted = len(standin.meter_events) - accepted_before
    duplicates = standin.duplicate_meter_events - duplicates_before
    if accepted != args.records:
        problems.append(f"the stand-in accepted {accepted} events, {args.records} written")
    if duplicates != accepted_at_kill - marked_at_kill:
        problems.append(f"{duplicates} repeats refused, {accepted_at_kill - marked_at_kill} expected (the dead batch)")
    new_events = standin.meter_events[accepted_before:]
    if len({e["identifier"] for e in new_events}) != len(new_events):
        problems.append("an identifier was accepted twice")
    return {
        "insert_s": insert_s, "first_s": first_s, "second_s": second_s, "release_s": release_s,
        "accepted_at_kill": accepted_at_kill, "marked_at_kill": marked_at_kill, "dead_batch": accepted_at_kill - marked_at_kill,
        "duplicates": duplicates, "first_rps": marked_at_kill / first_s, "second_rps": left / second_s,
        "left": left, "problems": problems, "totals": totals, "sender_cpu_ms": sender_cpu_ms,
        "standin_cpu_ms": standin_cpu_ms,
    }  # fmt: skip


def compare_totals(standin, all_totals: dict, organizations) -> list[str]:
    """Stripe's total per customer and meter against the sum of our sent events."""
    from django.conf import settings

    from billing.models import BillingAccount

    customers = dict(
        BillingAccount.objects.unscoped("the benchmark compares every account").values_list(
            "organization_id", "stripe_customer_id"
        )
    )
    stripes: dict[tuple, Decimal] = {}
    names = {name: kind for kind, name in settings.BILLING_METER_EVENT_NAMES.items()}
    for event in standin.meter_events:
        key = (event["payload"]["stripe_customer_id"], names[event["event_name"]])
        stripes[key] = stripes.get(key, Decimal(0)) + Decimal(event["payload"]["value"])
    ours: dict[tuple, int] = {}
    for (organization_id, kind, _day), quantity in all_totals.items():
        key = (customers[organization_id], kind)
        ours[key] = ours.get(key, 0) + quantity
    return [f"{key}: Stripe {stripes.get(key)}, ours {value}" for key, value in ours.items() if stripes.get(key) != value] + [
        f"{key}: Stripe has {value}, we sent nothing" for key, value in stripes.items() if key not in ours
    ]  # fmt: skip


def reconcile(days: set) -> tuple[int, int, float]:
    """usage_reconcile for each day: (rows, rows with a difference, seconds)."""
    from billing.services.metering import usage_reconcile

    began = time.perf_counter()
    rows = [row for day in sorted(days) for row in usage_reconcile(day=day)]
    return len(rows), sum(1 for row in rows if row.difference), time.perf_counter() - began


# --- the run -------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Usage metered to Stripe: throughput, a kill mid-batch, totals.")
    parser.add_argument("--records", type=int, default=100_000, help="usage events per round (default 100,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default 3)")
    parser.add_argument("--organizations", type=int, default=20, help="subscribed organizations (default 20)")
    parser.add_argument("--batch-size", type=int, default=500, help="BILLING_METER_BATCH_SIZE (default 500, production's)")
    parser.add_argument("--concurrency", type=int, default=8, help="BILLING_METER_CONCURRENCY (default 8, production's)")
    parser.add_argument("--kill-at", type=float, default=0.4,
                        help="share of a round's events Stripe has accepted when the sender is killed (default 0.4)")
    parser.add_argument("--data-dir", help="directory for the embedded servers (default: a fresh one under /tmp, "
                                           "removed at the end)")
    parser.add_argument("--sender", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sender:
        return args
    if args.records < 4 * args.batch_size:
        parser.error("--records must be at least four batches (4 x --batch-size)")
    if not 0 < args.kill_at < 0.9 or args.rounds < 1 or args.organizations < 1 or args.concurrency < 1:
        parser.error("--kill-at is a share between 0 and 0.9; --rounds, --organizations, --concurrency at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.sender:
        return sender_main()
    began = time.perf_counter()
    packages = ("Django", "psycopg", "stripe", "requests")
    with scratch_database(args.data_dir, packages=packages) as facts:
        from django.conf import settings
        from django.db import connection

        from jagcall.kernel.standins.stripe import StripeStandIn

        data_dir = Path(os.environ["JAGCALL_DATA_DIR"])
        database_name = connection.settings_dict["NAME"]
        with StripeStandIn() as standin:
            settings.PROVIDER_BASE_URLS = {**settings.PROVIDER_BASE_URLS, "stripe": standin.base_url}
            settings.STRIPE_SECRET_KEY = standin.api_key
            standin.webhook_url = None
            # The killed sender leaves connections half-written: the stand-in's server need not print each one.
            standin._server.handle_error = lambda request, client_address: None
            organizations = seed(args.organizations)
            print(f"Stripe stand-in at {standin.base_url}; {len(organizations)} organizations subscribed; "
                  f"{len(standin.meters)} meters")  # fmt: skip
            section(f"Rounds ({args.rounds} x {args.records:,} usage events; the sender killed at {args.kill_at:.0%})")
            rng = random.Random(5)
            results, all_totals = [], {}
            for index in range(args.rounds):
                result = run_round(index, args, organizations, standin, database_name, data_dir, rng)
                for key, value in result["totals"].items():
                    all_totals[key] = all_totals.get(key, 0) + value
                results.append(result)
                print(f"  round {index + 1}: inserted in {result['insert_s']:.1f} s; first sender "
                      f"{result['first_rps']:.0f} records/s, killed after {result['marked_at_kill']:,} marked sent "
                      f"({result['accepted_at_kill']:,} accepted by Stripe, {result['dead_batch']} in the dead batch); "
                      f"locks released after {result['release_s'] * 1e3:.0f} ms; second sender "
                      f"{result['second_rps']:.0f} records/s for {result['left']:,}; {result['duplicates']} repeats "
                      f"refused" + (f"; PROBLEMS: {result['problems']}" if result["problems"] else ""))  # fmt: skip
                sys.stdout.flush()
            section("Totals: Stripe against ours")
            mismatches = compare_totals(standin, all_totals, organizations)
            days = {day for (_o, _k, day) in all_totals}
            rows, differing, reconcile_s = reconcile(days)
            print(f"  {len(standin.meter_events):,} meter events accepted, {standin.duplicate_meter_events} repeats "
                  f"refused; per customer and meter: {len(mismatches)} totals differ")  # fmt: skip
            for line in mismatches[:10]:
                print(f"  MISMATCH: {line}")
            print(f"  usage_reconcile over {len(days)} days: {rows} rows, {differing} with a difference "
                  f"({reconcile_s:.1f} s)")  # fmt: skip
        problems = [p for r in results for p in r["problems"]] + mismatches
        if differing:
            problems.append(f"{differing} reconciliation rows differ")
        print_summary(args, results, problems, facts, time.perf_counter() - began)
    return 0 if not problems else 1


def print_summary(args, results: list[dict], problems: list[str], facts: dict, elapsed: float) -> None:
    section("Summary: usage metering (medians over rounds)")
    first = median([r["first_rps"] for r in results])
    second = median([r["second_rps"] for r in results])
    print(f"  first sender, until killed:   {first:>7.0f} records/s")
    print(f"  second sender, to the end:    {second:>7.0f} records/s")
    print(f"  CPU per 1,000 meter events: the senders {median([r['sender_cpu_ms'] for r in results]):.0f} ms, "
          f"the Stripe stand-in (this process) {median([r['standin_cpu_ms'] for r in results]):.0f} ms, on "
          f"{len(os.sched_getaffinity(0))} cores shared with PostgreSQL")
    print(f"  events of the dead batch, sent again and refused by Stripe as repeats: "
          f"{', '.join(str(r['duplicates']) for r in results)} (per round)")  # fmt: skip
    print(f"  (batches of {args.batch_size}, {args.concurrency} in flight; records/s counts events marked sent per "
          "second of the sender's wall time, its start included)")  # fmt: skip
    print()
    print(f"{'PASS' if not problems else 'FAIL'}: after a sender killed mid-batch and a retry, Stripe's totals equal "
          f"ours with every event counted once ({len(problems)} problems)")  # fmt: skip
    print()
    print(f"command: {shlex.join(getattr(sys, 'orig_argv', [sys.executable, *sys.argv]))}")
    print(f"options: records={args.records} rounds={args.rounds} organizations={args.organizations} "
          f"batch_size={args.batch_size} concurrency={args.concurrency} kill_at={args.kill_at}")  # fmt: skip
    for key, value in facts.items():
        print(f"{key}: {value}")
    try:
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    except OSError:
        pass
    print(f"total time: {elapsed:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
