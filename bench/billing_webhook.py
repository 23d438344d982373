"""Benchmark: Stripe's webhook (/hooks/stripe/), 50 signed events in flight.

Run from the repository root:

    .venv/bin/python bench/billing_webhook.py [--rounds 5] [--requests 2000] [--concurrency 50]
        [--organizations 200] [--db-pool 10] [--max-concurrent-webhooks N]

It needs no network and touches no existing data: it starts its own embedded
PostgreSQL + Redis under a fresh directory in /tmp (or --data-dir) and works
in a scratch database, dropped at the end.

The project is served as bench/voice_webhook.py serves it: the Dockerfile's
CMD (uvicorn on jagcall.asgi:application, one process), DEBUG off, the web
process's database pool and request bounds as in production, Server-Timing
on, JSON logs at INFO, and STRIPE_WEBHOOK_SECRET set to the benchmark's
signing secret.

--organizations organizations each have a BillingAccount with a Stripe
customer and an active Pro subscription. Each request is an event as Stripe
sends it (its JSON shape, a snapshot of the object, a new evt_ id), signed as
Stripe signs it (``Stripe-Signature: t=<now>,v1=<HMAC-SHA256 of "t.body">``),
built before the clock starts. The mix, as a subscribed product sees it:

- 70 % customer.subscription.updated (a renewal, a plan change),
- 15 % invoice.paid, 5 % invoice.payment_failed (their subscription named in
  ``parent.subscription_details``, as the current API sends it),
- 5 % events the endpoint does not act on (charge.succeeded,
  payment_intent.created): acknowledged, nothing queued,
- 5 % handled types whose customer is not one of ours: acknowledged, nothing queued.

A handled event records its delivery (the dedupe row) and queues
billing.tasks.stripe_event_apply_task on Redis after the commit; no worker
runs, so nothing is applied: after the rounds the benchmark checks that every
delivery is recorded once, that the "default" queue holds exactly one task
per handled event, and that no BillingAccount changed (the work was queued,
not done in the request).

Figures, medians over the rounds, as bench/voice_webhook.py reports them:
client-observed p50/p95/p99, the server time (Server-Timing "app") and the
wait before it ("queue"), the webhook's own logged duration_ms, throughput,
CPU of each process, PostgreSQL sessions per request; and the same from a
single client (no queueing).

Goal (issue): p95 < 30 ms with 50 events in flight on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import secrets
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import median, scratch_database, section  # noqa: E402
from bench.voice_webhook import CpuMeter, Phase, Server  # noqa: E402

HOOK = "/hooks/stripe/"
GOAL_P95_MS = 30.0
API_VERSION = "2025-03-31.basil"
IGNORED_TYPES = ("charge.succeeded", "payment_intent.created")


def seed(count: int) -> list[dict]:
    """``count`` organizations on Pro, each with its Stripe customer and subscription ids."""
    from django.utils import timezone

    from accounts.services import organization_create, user_create
    from billing.models import BillingAccount

    owner = user_create(email="owner@bench-billing.invalid", password=None, name="Bench Owner")
    now = timezone.now()
    customers = []
    for index in range(count):
        organization = organization_create(name=f"Bench Practice {index:04d}", owner=owner, plan_code="pro")
        customer, subscription = "cus_" + secrets.token_hex(7), "sub_" + secrets.token_hex(12)
        BillingAccount.objects.for_org(organization).update_or_create(
            organization=organization,
            defaults={
                "stripe_customer_id": customer, "stripe_subscription_id": subscription,
                "subscription_status": "active", "subscribed_plan_code": "pro", "interval": "month",
                "current_period_start": now, "current_period_end": now + timezone.timedelta(days=30),
                "synced_at": now,
            },
        )  # fmt: skip
        customers.append({"customer": customer, "subscription": subscription, "organization": str(organization.id)})
    return customers


def accounts_fingerprint() -> str:
    """A digest of every BillingAccount's subscription fields: unchanged means nothing was applied."""
    from billing.models import BillingAccount

    rows = (
        BillingAccount.objects.unscoped("the benchmark compares every account before and after")
        .order_by("organization_id")
        .values_list("organization_id", "subscription_status", "subscribed_plan_code", "current_period_end",
                     "synced_at", "updated_at")
    )  # fmt: skip
    return hashlib.sha256(repr(list(rows)).encode()).hexdigest()


class Events:
    """Stripe events, JSON as Stripe sends them, signed; counts what the endpoint should queue."""

    def __init__(self, secret: str, customers: list[dict], seed: int = 11):
        self.secret = secret.encode()
        self.customers = customers
        self.rng = random.Random(seed)
        self.sent = {"handled": 0, "ignored type": 0, "not our customer": 0}

    def _subscription(self, who: dict, now: int) -> dict:
        start = now - self.rng.randrange(0, 25 * 86400)
        item = {
            "id": "si_" + secrets.token_hex(7), "object": "subscription_item", "created": start,
            "current_period_start": start, "current_period_end": start + 30 * 86400, "metadata": {},
            "price": {"id": "price_" + secrets.token_hex(12), "object": "price", "active": True,
                      "billing_scheme": "per_unit", "currency": "usd", "livemode": False,
                      "lookup_key": "jagcall_pro_monthly", "product": "prod_" + secrets.token_hex(7),
                      "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
                      "type": "recurring", "unit_amount": 9900},
            "quantity": 1, "subscription": who["subscription"],
        }  # fmt: skip
        return {
            "id": who["subscription"], "object": "subscription", "application": None, "billing_cycle_anchor": start,
            "cancel_at": None, "cancel_at_period_end": False, "canceled_at": None, "collection_method":
            "charge_automatically", "created": start, "currency": "usd", "customer": who["customer"],
            "default_payment_method": "pm_" + secrets.token_hex(12), "ended_at": None,
            "items": {"object": "list", "data": [item], "has_more": False, "total_count": 1,
                      "url": f"/v1/subscription_items?subscription={who['subscription']}"},
            "latest_invoice": "in_" + secrets.token_hex(12), "livemode": False, "metadata":
            {"organization_id": who["organization"]}, "pause_collection": None, "start_date": start,
            "status": "active", "trial_end": None, "trial_start": None,
        }  # fmt: skip

    def _invoice(self, who: dict, now: int, paid: bool) -> dict:
        return {
            "id": "in_" + secrets.token_hex(12), "object": "invoice", "amount_due": 9900,
            "amount_paid": 9900 if paid else 0, "amount_remaining": 0 if paid else 9900, "attempt_count": 1,
            "billing_reason": "subscription_cycle", "collection_method": "charge_automatically", "created": now,
            "currency": "usd", "customer": who["customer"], "hosted_invoice_url": "https://invoice.stripe.com/i/x",
            "livemode": False, "number": f"JC-{self.rng.randrange(10**6):06d}", "paid": paid,
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"metadata": {}, "subscription": who["subscription"]}},
            "period_end": now, "period_start": now - 30 * 86400, "status": "paid" if paid else "open",
            "total": 9900,
        }  # fmt: skip

    def _signed(self, event: dict, host: str) -> bytes:
        body = json.dumps(event, indent=2).encode()
        timestamp = int(time.time())
        signature = hmac.new(self.secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        headers = [
            f"POST {HOOK} HTTP/1.1", f"Host: {host}", "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Content-Type: application/json; charset=utf-8", f"Content-Length: {len(body)}",
            f"Stripe-Signature: t={timestamp},v1={signature}", "Accept: */*; q=0.5, application/xml",
        ]  # fmt: skip
        return ("\r\n".join(headers) + "\r\n\r\n").encode() + body

    def build(self, count: int, host: str) -> list[bytes]:
        built = []
        now = int(time.time())
        for _ in range(count):
            who = self.rng.choice(self.customers)
            roll = self.rng.random()
            if roll < 0.05:
                who = {**who, "customer": "cus_" + secrets.token_hex(7)}  # another product's customer
                kind, obj = "customer.subscription.updated", self._subscription(who, now)
                self.sent["not our customer"] += 1
            elif roll < 0.10:
                kind = self.rng.choice(IGNORED_TYPES)
                obj = {"id": "ch_" + secrets.token_hex(12), "object": "charge", "amount": 9900, "currency": "usd",
                       "customer": who["customer"], "paid": True, "status": "succeeded"}  # fmt: skip
                self.sent["ignored type"] += 1
            else:
                if roll < 0.80:
                    kind, obj = "customer.subscription.updated", self._subscription(who, now)
                elif roll < 0.95:
                    kind, obj = "invoice.paid", self._invoice(who, now, True)
                else:
                    kind, obj = "invoice.payment_failed", self._invoice(who, now, False)
                self.sent["handled"] += 1
            event = {
                "id": "evt_" + secrets.token_hex(12), "object": "event", "api_version": API_VERSION, "created": now,
                "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None}, "type": kind,
            }  # fmt: skip
            built.append(self._signed(event, host))
        return built


def check_answer(name: str, result: dict) -> None:
    if not result["statuses"].get(200):
        raise RuntimeError(f"{name}: no 200 at all, statuses {result['statuses']}; "
                           f"first answers: { {k: v[:300] for k, v in result['samples'].items()} }")  # fmt: skip
    if result["wrong"]:
        print(f"  WARNING: {name}: statuses {result['statuses']}")


def queued_tasks(redis_url: str) -> dict[str, int]:
    """Tasks waiting on the broker's "default" queue, by task name."""
    import redis

    connection = redis.Redis.from_url(redis_url)
    counts: dict[str, int] = {}
    for raw in connection.lrange("default", 0, -1):
        name = json.loads(raw).get("headers", {}).get("task", "?")
        counts[name] = counts.get(name, 0) + 1
    return counts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Stripe's webhook under concurrent load.")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (default 5)")
    parser.add_argument("--requests", type=int, default=2000, help="events per round (default 2000)")
    parser.add_argument("--concurrency", type=int, default=50, help="events in flight (default 50)")
    parser.add_argument("--uncontended", type=int, default=200,
                        help="events per round from a single client (default 200; 0: none)")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up events (default 300)")
    parser.add_argument("--organizations", type=int, default=200, help="subscribed organizations (default 200)")
    parser.add_argument("--db-pool", type=int, default=10,
                        help="the server's pool of database connections (DB_POOL_MAX_SIZE; default 10, production's)")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="requests inside Django at once (WEB_MAX_CONCURRENT_REQUESTS; default: production's)")
    parser.add_argument("--max-concurrent-webhooks", type=int, default=None,
                        help="signed webhooks inside Django at once (WEB_MAX_CONCURRENT_WEBHOOKS; default: "
                             "production's)")
    parser.add_argument("--data-dir", help="directory for the embedded servers (default: a fresh one under /tmp, "
                                           "removed at the end)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 1 or args.organizations < 1 or args.concurrency < 1:
        parser.error("--rounds, --requests, --organizations and --concurrency must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    packages = ("Django", "uvicorn", "uvloop", "httptools", "psycopg", "redis", "celery", "stripe")
    with scratch_database(args.data_dir, packages=packages) as facts:
        from django.conf import settings
        from django.db import connection

        from jagcall.kernel.webhooks.models import ReceivedWebhook

        customers = seed(args.organizations)
        before = accounts_fingerprint()
        database_name = connection.settings_dict["NAME"]
        data_dir = Path(os.environ["JAGCALL_DATA_DIR"])
        secret = "whsec_" + secrets.token_urlsafe(32)
        redis_url = settings.CELERY_BROKER_URL
        import redis

        redis.Redis.from_url(redis_url).delete("default")
        server = Server(
            database_name=database_name, log_path=data_dir / "bench-billing-server.log", db_pool=args.db_pool,
            max_concurrent=args.max_concurrent, max_concurrent_webhooks=args.max_concurrent_webhooks,
            environment={"STRIPE_WEBHOOK_SECRET": secret},
        )  # fmt: skip
        events = Events(secret, customers)
        phase = Phase("events", HOOK, 200)
        rounds: dict[str, list[dict]] = {"events": [], "events, 1 client": []}
        try:
            server.wait_ready(timeout=240)
            host = f"127.0.0.1:{server.port}"
            meter = CpuMeter(server.process.pid, data_dir)
            print(f"server: {shlex.join(server.command)}")
            print(f"{len(customers)} organizations on Pro, each with a Stripe customer and an active subscription")

            section(f"Warm-up ({args.warmup} events, {args.concurrency} in flight)")
            warm = phase.run(server, meter, events.build(args.warmup, host), args.concurrency, database_name)
            check_answer("events", warm)
            print(f"  {warm['rps']:.0f} req/s, statuses {warm['statuses']}; an answer: {warm['sample'][:80]!r}")

            section(f"Rounds ({args.rounds} x {args.requests} events, {args.concurrency} in flight; then "
                    f"{args.uncontended} from 1 client)")  # fmt: skip
            for index in range(args.rounds):
                result = phase.run(server, meter, events.build(args.requests, host), args.concurrency, database_name)
                rounds["events"].append(result)
                line = (f"{result['rps']:>5.0f} req/s p50 {result['p50_ms']:>6.1f} p95 {result['p95_ms']:>6.1f} "
                        f"(server p95 {result['app_p95_ms']:>5.1f}, view p95 {result['view_p95_ms']:>5.1f}) ms"
                        + (f" [{result['wrong']} unexpected]" if result["wrong"] else ""))  # fmt: skip
                if args.uncontended:
                    alone = phase.run(server, meter, events.build(args.uncontended, host), 1, database_name)
                    rounds["events, 1 client"].append(alone)
                    line += f" | 1 client p95 {alone['p95_ms']:>5.1f} (server p95 {alone['app_p95_ms']:>5.1f}) ms"
                print(f"  round {index + 1}: {line}")
                sys.stdout.flush()
        finally:
            server.stop()
        time.sleep(0.2)
        recorded = ReceivedWebhook.objects.filter(provider="stripe").count()
        queued = queued_tasks(redis_url)
        after = accounts_fingerprint()
        problems = []
        total = sum(events.sent.values())
        if recorded != total:
            problems.append(f"{recorded} deliveries recorded, {total} sent")
        applied = queued.get("billing.tasks.stripe_event_apply_task", 0)
        if applied != events.sent["handled"]:
            problems.append(f"{applied} apply tasks queued, {events.sent['handled']} handled events sent")
        if set(queued) - {"billing.tasks.stripe_event_apply_task"}:
            problems.append(f"other tasks queued: {queued}")
        if after != before:
            problems.append("a BillingAccount changed during the rounds: work was done in the request")
        print_summary(args, rounds, events, recorded, queued, problems, facts, time.perf_counter() - began)
        failed = sum(r["wrong"] for results in rounds.values() for r in results) + len(problems)
    return 0 if not failed else 1


def print_summary(args, rounds, events: Events, recorded: int, queued: dict, problems: list, facts: dict,
                  elapsed: float) -> None:  # fmt: skip
    section("Summary: Stripe's webhook (medians over rounds)")
    keys = ("rps", "p50_ms", "p95_ms", "p99_ms", "app_p50_ms", "app_p95_ms", "queue_p50_ms", "queue_p95_ms",
            "view_p50_ms", "view_p95_ms", "sessions_per_request")  # fmt: skip
    print(f"  {'':<18} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'server p50':>11} {'server p95':>11} "
          f"{'queue p50':>10} {'queue p95':>10} {'view p50':>9} {'view p95':>9} {'PG sess/req':>12}")  # fmt: skip
    summary = {}
    for name, results in rounds.items():
        if not results:
            continue
        row = summary[name] = {key: median([r[key] for r in results]) for key in keys}
        print(f"  {name:<18} {row['rps']:>7.0f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['p99_ms']:>8.1f} "
              f"{row['app_p50_ms']:>11.1f} {row['app_p95_ms']:>11.1f} {row['queue_p50_ms']:>10.1f} "
              f"{row['queue_p95_ms']:>10.1f} {row['view_p50_ms']:>9.1f} {row['view_p95_ms']:>9.1f} "
              f"{row['sessions_per_request']:>12.2f}")  # fmt: skip
    print("  (p50/p95/p99: client-observed; server: Server-Timing app; queue: Server-Timing queue, waiting for a")
    print("   place in Django before that; view: the webhook's logged duration_ms)")
    print(f"  sent: {sum(events.sent.values())} events: " + ", ".join(f"{v} {k}" for k, v in events.sent.items()))
    print(f"  recorded deliveries: {recorded}; queued on Redis: "
          + (", ".join(f"{v} {k}" for k, v in queued.items()) or "nothing"))  # fmt: skip
    keys = ("load generator", "uvicorn", "postgresql", "redis", "other", "machine")
    print(f"  CPU in cores while {args.concurrency} were in flight: "
          + ", ".join(f"{k} {median([r['cores'][k] for r in rounds['events']]):.2f}" for k in keys))  # fmt: skip
    for problem in problems:
        print(f"  MISMATCH: {problem}")
    print()
    row = summary["events"]
    wrong = sum(r["wrong"] for r in rounds["events"]) + len(problems)

    def verdict(value):
        if wrong:
            return f"FAIL ({wrong} wrong)"
        return "PASS" if value < GOAL_P95_MS else "FAIL"

    print(f"{verdict(row['p95_ms'])}: Stripe webhook p95 {row['p95_ms']:.1f} ms with {args.concurrency} in flight, "
          f"client-observed (goal < {GOAL_P95_MS:.0f} ms)")  # fmt: skip
    print(f"{verdict(row['app_p95_ms'])}: Stripe webhook server time p95 {row['app_p95_ms']:.1f} ms (Server-Timing "
          f"app), after {row['queue_p95_ms']:.1f} ms p95 in line")  # fmt: skip
    alone = summary.get("events, 1 client")
    if alone:
        print(f"  from 1 client: p50 {alone['p50_ms']:.1f} ms, p95 {alone['p95_ms']:.1f} ms")
    print(f"{'PASS' if not problems else 'FAIL'}: every handled event queued its apply task once, no account changed "
          "in the request")  # fmt: skip
    print()
    print(f"command: {shlex.join(getattr(sys, 'orig_argv', [sys.executable, *sys.argv]))}")
    print(f"options: rounds={args.rounds} requests={args.requests} concurrency={args.concurrency} "
          f"uncontended={args.uncontended} warmup={args.warmup} organizations={args.organizations} "
          f"db_pool={args.db_pool} max_concurrent={args.max_concurrent or 'default'} "
          f"max_concurrent_webhooks={args.max_concurrent_webhooks or 'default'}")  # fmt: skip
    for key, value in facts.items():
        print(f"{key}: {value}")
    try:
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    except OSError:
        pass
    print(f"total time: {elapsed:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
