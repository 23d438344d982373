"""Benchmark of the audit log (compliance/): the cost of writing an event, and queries at scale.

Run from the repository root:

    .venv/bin/python bench/audit.py [--events 5000000] [--orgs 100] [--rounds 7]

It needs no network and touches no existing data: like bench/crypto.py it
starts its own embedded PostgreSQL + Redis under a fresh directory in /tmp
(or JAGCALL_DATA_DIR / --data-dir), creates a scratch test database, and at
the end drops it, stops the servers it started and removes the directory.

What it measures:

1. Write cost. (a) p50/p95 latency of a portal request that changes a
   tenant row, without and with an audit event (audit_record + its change
   set) in the same transaction, interleaved A/B, through the whole
   middleware stack (session in Redis, user from PostgreSQL); medians over
   --rounds rounds of --requests requests each. (b) audit_record alone,
   inside a caller's transaction and in its own. (c) Writers in parallel
   threads on one chain and on separate chains (the chain lock at work).
2. Queries at scale. --events events (default 5,000,000) are bulk-loaded
   across --orgs organizations with a skewed size distribution (the largest
   holds about 14%), by INSERT ... SELECT generate_series with placeholder
   hashes (chain validity does not matter to a query), then the model's
   indexes are built. For the largest and a median organization, p50/p95 of
   the first page (50 rows) of the portal/API selector with each filter,
   a page 200 pages deep, and one API request end to end; EXPLAIN (ANALYZE,
   BUFFERS) of each query on the largest organization; export throughput.
3. Chain verification throughput on a real chain written by audit_record.

Figures are medians over rounds. Nothing is asserted: this is a benchmark.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import scratch_database, section  # noqa: E402


# --- small helpers -----------------------------------------------------------------


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def ms(seconds):
    return f"{seconds * 1e3:.2f}"


# --- 1. write cost -------------------------------------------------------------------


def bench_urlconf():
    """The project's URLs plus two bench views: one write without, one with an audit event."""
    import types

    from django.http import HttpResponse
    from django.urls import include, path

    from accounts.models import Organization
    from compliance.services import audit_changes, audit_record, audit_snapshot

    def change(request, org_slug, audited):
        from django.db import transaction

        with transaction.atomic():
            organization = Organization.objects.select_for_update().get(slug=org_slug)
            before = audit_snapshot(organization) if audited else None
            organization.name = f"Bench Dental {time.perf_counter_ns() % 1000}"
            organization.save(update_fields=["name", "updated_at"])
            if audited:
                audit_record(
                    action="organization.updated",
                    organization=organization,
                    request=request,
                    resource=organization,
                    changes=audit_changes(before, organization, fields=["name"]),
                )
        return HttpResponse("ok")

    module = types.ModuleType("bench_audit_urls")
    module.urlpatterns = [
        path("bench/<slug:org_slug>/plain/", lambda r, org_slug: change(r, org_slug, False)),
        path("bench/<slug:org_slug>/audited/", lambda r, org_slug: change(r, org_slug, True)),
        path("", include("jagcall.urls")),
    ]
    sys.modules[module.__name__] = module
    return module.__name__


def bench_requests(org, user, *, rounds, requests, results):
    from django.test import Client, override_settings
    from django.urls import clear_url_caches

    section(f"1a. Request latency without / with an audit event: {rounds} rounds x {requests} requests each, interleaved")
    urlconf = bench_urlconf()
    with override_settings(ROOT_URLCONF=urlconf, ALLOWED_HOSTS=["testserver"]):
        clear_url_caches()
        client = Client()
        client.force_login(user)
        plain, audited = f"/bench/{org.slug}/plain/", f"/bench/{org.slug}/audited/"
        for _ in range(50):  # warm-up: connections, caches, code paths
            client.get(plain)
            client.get(audited)
        per_round = {"plain": [], "audited": []}
        for _round in range(rounds):
            times = {"plain": [], "audited": []}
            for _ in range(requests):
                for label, url in (("plain", plain), ("audited", audited)):
                    start = time.perf_counter()
                    response = client.get(url)
                    times[label].append(time.perf_counter() - start)
                    assert response.status_code == 200, response.status_code
            for label in times:
                per_round[label].append((percentile(times[label], 50), percentile(times[label], 95)))
        clear_url_caches()
    print(f"{'request':<34} {'p50 ms':>8} {'p95 ms':>8}   (medians over rounds)")
    summary = {}
    for label, title in (("plain", "change a row"), ("audited", "change a row + audit event")):
        p50 = statistics.median(r[0] for r in per_round[label])
        p95 = statistics.median(r[1] for r in per_round[label])
        summary[label] = (p50, p95)
        print(f"{title:<34} {ms(p50):>8} {ms(p95):>8}")
    added50 = summary["audited"][0] - summary["plain"][0]
    added95 = summary["audited"][1] - summary["plain"][1]
    print(f"{'added by the audit event':<34} {ms(added50):>8} {ms(added95):>8}")
    results["request"] = {"plain": summary["plain"], "audited": summary["audited"], "added": (added50, added95)}


def bench_record(org, *, samples, results, profile=False):
    from django.db import transaction

    from compliance.services import audit_record

    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for n in range(samples):
            with transaction.atomic():
                audit_record(action="member.invited", organization=org, metadata={"n": n})
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)

    section(f"1b. audit_record alone: {samples} events each way")
    variants = {}
    for label, wrap in (("inside the caller's transaction", True), ("in its own transaction", False)):
        times = []
        for n in range(samples):
            start = time.perf_counter()
            if wrap:
                with transaction.atomic():
                    audit_record(action="member.invited", organization=org, metadata={"n": n})
            else:
                audit_record(action="member.invited", organization=org, metadata={"n": n})
            times.append(time.perf_counter() - start)
        variants[label] = times
        print(f"{label:<34} p50 {ms(percentile(times, 50))} ms   p95 {ms(percentile(times, 95))} ms   "
              f"p99 {ms(percentile(times, 99))} ms")
    results["record"] = {k: (percentile(v, 50), percentile(v, 95)) for k, v in variants.items()}


def bench_parallel(orgs, *, threads, per_thread, results):
    from django.db import connections

    from compliance.services import audit_record

    section(f"1c. Parallel writers: {threads} threads x {per_thread} events")

    def run(targets):
        latencies, errors = [], []
        barrier = threading.Barrier(len(targets) + 1)

        def worker(organization):
            try:
                barrier.wait()
                for n in range(per_thread):
                    start = time.perf_counter()
                    audit_record(action="member.invited", organization=organization, metadata={"n": n})
                    latencies.append(time.perf_counter() - start)
            except Exception as exc:  # printed below
                errors.append(exc)
            finally:
                connections.close_all()

        workers = [threading.Thread(target=worker, args=(o,)) for o in targets]
        for w in workers:
            w.start()
        barrier.wait()
        start = time.perf_counter()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
        return elapsed, latencies, errors

    for label, targets in (("one chain (same organization)", [orgs[0]] * threads), ("separate chains", orgs[:threads])):
        elapsed, latencies, errors = run(targets)
        total = len(latencies)
        print(f"{label:<32} {total / elapsed:>8,.0f} events/s   p50 {ms(percentile(latencies, 50))} ms   "
              f"p95 {ms(percentile(latencies, 95))} ms{'   ERRORS: ' + repr(errors[:1]) if errors else ''}")
        results[f"parallel.{label}"] = total / elapsed


# --- 2. queries at scale ----------------------------------------------------------------

ACTIONS = [
    "audit.viewed", "call.completed", "call.started", "agent.updated", "member.invited", "api_key.used",
    "member.role_changed", "message.sent", "number.assigned", "knowledge.document_added", "member.removed",
    "api_key.created", "api_key.revoked", "organization.updated", "webhook.created", "agent.created",
    "sso.configured", "billing.plan_changed", "member.joined", "audit.exported", "call.recording_deleted",
    "number.released", "webhook.deleted", "contact.opted_out", "agent.deleted", "invitation.revoked",
    "knowledge.document_deleted", "security.two_factor_required", "data_request.completed", "organization.transferred",
]


def organization_sizes(total, orgs, skew=0.9):
    weights = [1 / (k + 1) ** skew for k in range(orgs)]
    scale = total / sum(weights)
    sizes = [int(w * scale) for w in weights]
    sizes[0] += total - sum(sizes)
    return sizes


def bulk_load(org_ids, sizes, span_days=400):
    """INSERT ... SELECT generate_series per organization, indexes dropped first and rebuilt after."""
    from django.db import connection

    from compliance.models import AuditEvent

    table = AuditEvent._meta.db_table
    indexes = list(AuditEvent._meta.indexes)
    with connection.schema_editor() as editor:
        for index in indexes:
            editor.remove_index(AuditEvent, index)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regproc('uuidv7')")
        has_uuidv7 = cursor.fetchone()[0] is not None
        cursor.execute("SELECT setseed(0.42)")
    id_sql = (
        "uuidv7(occurred - clock_timestamp())" if has_uuidv7 else "gen_random_uuid()"
    )
    actions = "ARRAY[" + ",".join(f"'{a}'" for a in ACTIONS) + "]"
    sql = f"""
        INSERT INTO {table} (id, occurred_at, organization_id, seq, actor_type, actor_id, actor_key, actor_label,
                             api_key_prefix, ip, user_agent, action, resource_type, resource_id, outcome, changes,
                             metadata, request_id, prev_hash, hash)
        SELECT {id_sql}, occurred, %(org)s, g,
               CASE WHEN r1 < 0.12 THEN 'api_key' WHEN r1 < 0.13 THEN 'system' ELSE 'user' END,
               NULL,
               CASE WHEN r1 < 0.12 THEN 'api_key:' || key_prefix WHEN r1 < 0.13 THEN 'system'
                    ELSE 'user:' || md5(%(org)s || '-u' || person)::uuid END,
               CASE WHEN r1 < 0.12 THEN 'jc_live_' || key_prefix WHEN r1 < 0.13 THEN 'system'
                    ELSE 'person' || person || '@org' || %(k)s || '.test' END,
               CASE WHEN r1 < 0.12 THEN key_prefix ELSE '' END,
               ('198.51.' || (floor(r3 * 40))::int || '.' || (1 + floor(r4 * 250))::int)::inet,
               CASE WHEN r1 < 0.12 THEN 'python-requests/2.32' ELSE 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5)' END,
               action, split_part(action, '.', 1), md5(%(org)s || '-r' || floor(r3 * 5000))::uuid::text,
               CASE WHEN r4 < 0.03 THEN 'denied' WHEN r4 < 0.05 THEN 'failed' ELSE 'success' END,
               CASE WHEN r2 < 0.3 THEN jsonb_build_object('name', jsonb_build_object('before', 'Old name', 'after', 'New name')) END,
               CASE WHEN r2 < 0.5 THEN '{{}}'::jsonb ELSE jsonb_build_object('via', 'portal', 'n', g) END,
               md5(g::text || %(org)s), md5(g::text) || md5(%(org)s || g), md5(%(org)s || g) || md5(g::text)
        FROM (
            SELECT g, r1, r2, r3, r4,
                   now() - ((%(n)s - g)::bigint * %(step)s::bigint) * interval '1 microsecond' AS occurred,
                   floor(power(r2, 2) * 40)::int AS person,
                   substr(md5(%(org)s || '-k' || floor(r3 * 5)), 1, 10) AS key_prefix,
                   ({actions})[1 + floor(power(r3, 1.6) * {len(ACTIONS)})::int] AS action
            FROM (SELECT g, random() AS r1, random() AS r2, random() AS r3, random() AS r4
                  FROM generate_series(1, %(n)s) AS g) AS raw
        ) AS rows
    """
    span_us = span_days * 86400 * 1_000_000
    started = time.perf_counter()
    loaded = 0
    with connection.cursor() as cursor:
        for k, (org_id, n) in enumerate(zip(org_ids, sizes)):
            if n <= 0:
                continue
            cursor.execute(sql, {"org": str(org_id), "n": n, "step": span_us // max(n, 1), "k": k})
            loaded += n
            if k % 10 == 0:
                print(f"  loaded {loaded:,} events ({time.perf_counter() - started:.0f} s)")
                sys.stdout.flush()
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    index_times = []
    with connection.schema_editor() as editor:
        for index in indexes:
            t = time.perf_counter()
            editor.add_index(AuditEvent, index)
            index_times.append((index.name, time.perf_counter() - t))
    index_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(
            "SELECT pg_size_pretty(pg_table_size(%s)), pg_size_pretty(pg_indexes_size(%s)), pg_total_relation_size(%s)",
            [table, table, table],
        )
        table_size, indexes_size, total_bytes = cursor.fetchone()
    return load_seconds, index_seconds, index_times, table_size, indexes_size, total_bytes


def _query_cases(org_id, k):
    from django.db import connection

    from compliance.models import AuditEvent

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT actor_key, count(*) FROM {AuditEvent._meta.db_table} WHERE organization_id = %s "
            "AND actor_key LIKE 'user:%%' GROUP BY 1 ORDER BY 2 DESC OFFSET 5 LIMIT 1",
            [org_id],
        )
        user_key = cursor.fetchone()[0]
        cursor.execute(
            f"SELECT resource_type, resource_id FROM {AuditEvent._meta.db_table} WHERE organization_id = %s "
            "ORDER BY occurred_at DESC LIMIT 1 OFFSET 1000",
            [org_id],
        )
        row = cursor.fetchone() or ("call", "x")
        cursor.execute(
            f"SELECT host(ip) FROM {AuditEvent._meta.db_table} WHERE organization_id = %s ORDER BY occurred_at DESC LIMIT 1 OFFSET 77",
            [org_id],
        )
        ip = cursor.fetchone()[0]
    from django.utils import timezone
    from datetime import timedelta

    now = timezone.now()
    return [
        ("first page, no filter", {}),
        ("actor = a person's id", {"actor": user_key.split(":", 1)[1]}),
        ("actor = an API key", {"actor": "jc_live_" + _prefix_of(org_id)}),
        ("actor free text (email part)", {"actor": f"person7@org{k}"}),
        ("action exact (rare)", {"action": "organization.transferred"}),
        ("action exact (common)", {"action": "member.invited"}),
        ("action prefix member.", {"action": "member."}),
        ("resource type + id", {"resource_type": row[0], "resource_id": row[1]}),
        ("date range: last 7 days", {"since": now - timedelta(days=7)}),
        ("date range: 7 days, 200 days ago", {"since": now - timedelta(days=207), "until": now - timedelta(days=200)}),
        ("outcome = denied", {"outcome": "denied"}),
        ("ip exact", {"ip": ip}),
        ("action prefix + 30-day range", {"action": "member.", "since": now - timedelta(days=120), "until": now - timedelta(days=90)}),
    ]


def _prefix_of(org_id):
    import hashlib

    return hashlib.md5(f"{org_id}-k2".encode()).hexdigest()[:10]


def bench_queries(org_ids, sizes, *, repeat, explain, results):
    from compliance.selectors import audit_event_list, audit_event_page, encode_cursor

    from accounts.models import Organization

    targets = [("largest", 0), ("median", len(org_ids) // 2)]
    for label, index in targets:
        organization = Organization.objects.get(pk=org_ids[index])
        section(f"2. First page (50 rows) on the {label} organization: {sizes[index]:,} events, {repeat} runs each")
        print(f"{'query':<36} {'p50 ms':>8} {'p95 ms':>8} {'rows':>5}")
        for title, filters in _query_cases(organization.id, index):
            queryset = audit_event_list(organization=organization, filters=filters)
            times, rows = [], 0
            for _ in range(repeat):
                start = time.perf_counter()
                page = audit_event_page(queryset=queryset)
                times.append(time.perf_counter() - start)
                rows = len(page.events)
            results[f"query.{label}.{title}"] = (percentile(times, 50), percentile(times, 95))
            print(f"{title:<36} {ms(percentile(times, 50)):>8} {ms(percentile(times, 95)):>8} {rows:>5}")
            if explain and label == "largest":
                explained.append((title, queryset))
        # A page 200 pages deep: the keyset makes it cost what the first does.
        queryset = audit_event_list(organization=organization)
        deep = list(queryset.values_list("occurred_at", "id")[9999:10000])
        if deep:
            from types import SimpleNamespace

            cursor = encode_cursor(SimpleNamespace(occurred_at=deep[0][0], id=deep[0][1]))
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                audit_event_page(queryset=queryset, after=cursor)
                times.append(time.perf_counter() - start)
            results[f"query.{label}.deep"] = (percentile(times, 50), percentile(times, 95))
            print(f"{'page 201 (after row 10,000)':<36} {ms(percentile(times, 50)):>8} {ms(percentile(times, 95)):>8}")
            if explain and label == "largest":
                from compliance.selectors import audit_events_older_than

                explained.append(("page 201 (keyset after row 10,000)", audit_events_older_than(queryset, deep[0][0], deep[0][1])))


explained: list = []


def print_plans():
    section("EXPLAIN (ANALYZE, BUFFERS) of the first-page queries, largest organization")
    summary = []
    for title, queryset in explained:
        plan = queryset[:51].explain(analyze=True, buffers=True)
        print(f"\n--- {title}")
        print(plan)
        lines = plan.splitlines()
        top = next((line.strip() for line in lines if "Index" in line or "Scan" in line), lines[0].strip())
        execution = next((line.strip() for line in lines if line.strip().startswith("Execution Time")), "")
        summary.append((title, top, execution))
    section("Plan summary (first scan node, execution time)")
    for title, top, execution in summary:
        print(f"{title:<36} {execution:<28} {top[:110]}")


def bench_api(organization, owner, *, repeat, results):
    from rest_framework.test import APIClient

    from accounts.jwt.tokens import OrganizationRefreshToken

    section(f"2b. API end to end: GET /api/v1/audit-events on the largest organization, {repeat} requests each")
    client = APIClient()
    token = OrganizationRefreshToken.for_membership(user=owner, organization=organization).access_token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    for title, query in (("first page", {}), ("action prefix member.", {"action": "member."}), ("outcome=denied", {"outcome": "denied"})):
        client.get("/api/v1/audit-events", query)  # warm-up (and the one audit.viewed of this filter set)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            response = client.get("/api/v1/audit-events", query)
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.content[:300]
        results[f"api.{title}"] = (percentile(times, 50), percentile(times, 95))
        print(f"{title:<36} p50 {ms(percentile(times, 50))} ms   p95 {ms(percentile(times, 95))} ms")


def bench_export(organization, *, rows, results):
    from compliance import exports
    from compliance.selectors import audit_event_iter, audit_event_list

    section(f"2c. Export: the newest {rows:,} events of the largest organization through the streaming CSV writer")
    events = audit_event_iter(queryset=audit_event_list(organization=organization))
    start = time.perf_counter()
    count = total = 0

    def limited():
        nonlocal count
        for event in events:
            if count >= rows:
                return
            count += 1
            yield event

    for chunk in exports.csv_chunks(limited()):
        total += len(chunk)
    elapsed = time.perf_counter() - start
    results["export.rows_per_s"] = count / elapsed
    print(f"{count:,} rows, {total / 2**20:.1f} MB of CSV in {elapsed:.1f} s: {count / elapsed:,.0f} rows/s")


# --- 3. verification --------------------------------------------------------------------


def bench_verify(org, *, events, results):
    from compliance.selectors import audit_chain_verify
    from compliance.services import audit_record

    section(f"3. Chain verification: a real chain of {events:,} events written by audit_record")
    start = time.perf_counter()
    for n in range(events):
        audit_record(action="member.invited", organization=org, metadata={"n": n}, changes={"role": {"before": "member", "after": "admin"}})
    write = time.perf_counter() - start
    start = time.perf_counter()
    report = audit_chain_verify(organization_id=org.id)
    elapsed = time.perf_counter() - start
    results["verify.events_per_s"] = report.events / elapsed
    print(f"written in {write:.1f} s ({events / write:,.0f} events/s, one writer); verified {report.events:,} events "
          f"in {elapsed:.2f} s: {report.events / elapsed:,.0f} events/s; ok={report.ok}")


# --- set-up and tear-down -------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark of JagCall's audit log (write cost, queries at scale).")
    parser.add_argument("--events", type=int, default=5_000_000, help="events bulk-loaded for the query benchmark (default 5,000,000)")
    parser.add_argument("--orgs", type=int, default=100, help="organizations they are spread across (default 100)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the request benchmark; medians are reported (default 7)")
    parser.add_argument("--requests", type=int, default=200, help="requests per variant per round (default 200)")
    parser.add_argument("--repeat", type=int, default=30, help="runs of each query (default 30)")
    parser.add_argument("--verify-events", type=int, default=20_000, help="events in the chain verified (default 20,000)")
    parser.add_argument("--export-rows", type=int, default=100_000, help="rows exported in the export benchmark (default 100,000)")
    parser.add_argument("--data-dir", help="directory for the embedded servers (default: a fresh one under /tmp, removed at the end)")
    parser.add_argument("--skip", action="append", default=[], choices=["write", "query", "verify"], help="leave a part out")
    parser.add_argument("--no-explain", action="store_true", help="do not print the query plans")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of audit_record")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # one line per request would drown the figures
    results: dict = {}
    with scratch_database(args.data_dir, packages=("Django", "psycopg", "django-auditlog")) as facts:
        from django.db import connection

        for key, value in facts.items():
            print(f"{key:<11} {value}")

        from accounts.services import organization_create, user_create

        owner = user_create(email="bench@jagcall.invalid", password=None, name="Bench")
        organizations = [organization_create(name=f"Bench Org {k:03d}", owner=owner) for k in range(max(args.orgs, 4))]

        if "write" not in args.skip:
            bench_requests(organizations[0], owner, rounds=args.rounds, requests=args.requests, results=results)
            bench_record(organizations[1], samples=2000, results=results, profile=args.profile)
            bench_parallel(organizations[2:], threads=min(4, len(organizations) - 2), per_thread=500, results=results)
        if "verify" not in args.skip:
            verify_org = organization_create(name="Bench Verify", owner=owner)
            bench_verify(verify_org, events=args.verify_events, results=results)
        if "query" not in args.skip:
            from compliance.models import AuditEvent

            section(f"2. Bulk load: {args.events:,} events across {args.orgs} organizations")
            org_ids = [o.id for o in organizations[: args.orgs]]
            # Start from empty tables of these organizations' chains: parts 1 and 3 wrote some events.
            with connection.cursor() as cursor:
                cursor.execute("SET jagcall.audit_allow_truncate = 'on'")
                cursor.execute(f"TRUNCATE {AuditEvent._meta.db_table}")
                cursor.execute("RESET jagcall.audit_allow_truncate")
            sizes = organization_sizes(args.events, len(org_ids))
            print(f"sizes: largest {sizes[0]:,}, median {sizes[len(sizes) // 2]:,}, smallest {sizes[-1]:,}")
            load, build, index_times, table_size, indexes_size, total_bytes = bulk_load(org_ids, sizes)
            print(f"loaded in {load:.0f} s ({args.events / load:,.0f} rows/s, no secondary indexes); "
                  f"indexes built in {build:.0f} s")
            for name, seconds in index_times:
                print(f"  {name:<36} {seconds:6.1f} s")
            print(f"table {table_size}, indexes {indexes_size}; {total_bytes / args.events:.0f} bytes per event in total")
            bench_queries(org_ids, sizes, repeat=args.repeat, explain=not args.no_explain, results=results)
            bench_api(organizations[0], owner, repeat=args.repeat, results=results)
            bench_export(organizations[0], rows=min(args.export_rows, sizes[0]), results=results)
            if not args.no_explain:
                print_plans()
        section("Summary")
        if "request" in results:
            r = results["request"]
            print(f"request p50/p95: {ms(r['plain'][0])}/{ms(r['plain'][1])} ms without, "
                  f"{ms(r['audited'][0])}/{ms(r['audited'][1])} ms with an audit event: "
                  f"+{ms(r['added'][0])}/+{ms(r['added'][1])} ms")
        worst = max(((k, v) for k, v in results.items() if k.startswith("query.")), key=lambda kv: kv[1][1], default=None)
        if worst:
            print(f"slowest first page (p95): {worst[0][6:]} {ms(worst[1][1])} ms")
        print(f"total time {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
