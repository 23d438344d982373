"""Benchmark: Twilio's inbound SMS webhook, 50 requests in flight; the pre-send gate with 1,000,000 subscriptions.

Run from the repository root:

    .venv/bin/python bench/sms_webhook.py [--rounds 5] [--requests 2000] [--concurrency 50] [--keywords 200]
        [--subscriptions 1000000] [--gate-iterations 5000] [--db-pool 10] [--max-concurrent-webhooks N]

It needs no network and touches no existing data: it starts its own embedded
PostgreSQL + Redis under a fresh directory in /tmp (or --data-dir) and works
in a scratch database, dropped at the end.

The organizations: one that texts, in platform mode (its Twilio subaccount,
whose auth token is stored encrypted), with a number that answers calls with
an agent and whose agent does not answer texts (NumberMessaging.agent_replies
off: the setting saved, no Celery task queued); three more organizations with
numbers of their own, which only share the subscriptions table.

The subscriptions table is filled first, with --subscriptions rows in one
``INSERT ... SELECT generate_series`` into messaging_subscription (the real
table, its indexes in place), then VACUUM ANALYZE: 40 % of the rows are on
the texting number, the rest spread over eleven other numbers of the four
organizations; 85 % are opt-outs, 15 % opted in again, changed over the last
two years. A filler row's blind index is random hex in the stored form
(``<key version>$<64 hex>``) and its ``recipient`` is a ciphertext that does
not decrypt (``jc1`` + random bytes): anything that decrypted one would raise
DecryptionError. Among them, at random places, are --probes rows whose blind
index is the one the field computes (BlindIndexField.compute) for known
numbers, opted out of the texting number.

The webhook (part a): the project served with the command of the image (the
Dockerfile's CMD: uvicorn on jagcall.asgi:application, one process, uvloop +
httptools), on 127.0.0.1, DEBUG off, the web process's database pool and
request bounds as in production (bench/voice_settings.py, the server of
bench/voice_webhook.py), Server-Timing on, JSON logs at INFO. The load:
--concurrency keep-alive connections driven by one asyncio loop, each POSTing
requests built before the clock starts, signed as Twilio signs them
(RequestValidator over PUBLIC_BASE_URL + path and the form), each with its own
MessageSid and I-Twilio-Idempotency-Token, with the fields Twilio sends:

- texts: /hooks/twilio/sms/ with ordinary bodies (questions, confirmations,
  some with emoji, so UCS-2, and some longer than one segment; none is a
  keyword nor asks to stop). --new-senders of them (default 25 %) come from a
  number never seen before: its first text creates the contact and the
  conversation; the others come from earlier senders, whose contact and
  conversation are found (blind index) and reused;
- keywords: STOP (and its variants: Stop, UNSUBSCRIBE, CANCEL, ...) from
  earlier senders who are subscribed, START (START, Unstop) from those who
  are not: the subscription changes and its history and audit are written, a
  STOP puts the sender on the do-not-call list (once), and the confirmation
  is answered in TwiML and stored in the thread. No OptOutType is sent (the
  number is not in a Messaging Service with Advanced Opt-Out), so JagCall
  answers the keyword itself. Reported apart: it does several times the
  writes of an ordinary text and is a small share of real traffic.

Each round sends --requests texts and --keywords keyword texts at
--concurrency in flight, then --uncontended texts from a single client.
Figures, medians over the rounds, as bench/voice_webhook.py reports them:
client-observed p50/p95/p99; server time (Server-Timing "app", from entering
Django to the answer) and its "queue" (waiting for a place before that); the
webhook view's own duration_ms from the project's log line; throughput; CPU
of each process; PostgreSQL sessions per request. After the rounds, what was
stored is counted against what was sent (messages, contacts,
conversations, subscription changes, confirmations).

The gate (part b), in this process (Django on the same scratch database,
DEBUG off, one persistent connection as the application's role), with the
server stopped: messaging.services.gate.pre_send_check (every rule) and its
``opted_out`` rule alone, for recipients with a row (opted out) and without
one (never changed: no row), --gate-iterations calls per variant per round,
in interleaved blocks, each call timed; p50/p95/p99, medians over rounds.
Every result is checked (opted out: refused with ``opted_out``; never
changed: allowed). EXPLAIN (ANALYZE, BUFFERS) of the check's statement, as
Django sent it, shows the indexes used. The keyword senders' state is also
asked of the gate: it must agree with the last keyword each one texted.

Goals (issue): (a) SMS webhook p95 < 25 ms with 50 requests in flight on 2
cores; PASS/FAIL against the server time ("app") p95, as for the voice
webhook, and against the client-observed p95, which adds the wait in line;
(b) the pre-send check p95 < 1 ms with 1,000,000 subscriptions.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on the path; the project root is what we need.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import median, percentile, scratch_database, section  # noqa: E402
from bench.voice_webhook import PUBLIC_BASE_URL, CpuMeter, Phase, Server, Signer  # noqa: E402

SMS = "/hooks/twilio/sms/"
GOAL_WEBHOOK_P95_MS = 25.0
GOAL_GATE_P95_MS = 1.0
OUR_NUMBER = "+14155550123"
# Area codes of the senders (US and Canada); numbers are built from a counter, so each is new.
SENDER_AREAS = ("212", "415", "628", "312", "646", "718", "305", "617", "206", "512", "416", "604")

ORDINARY_BODIES = (
    "Hi, can I move my appointment to Thursday afternoon?",
    "Running about 10 minutes late, sorry!",
    "What time do you open on Saturday?",
    "Thanks, see you then",
    "Is there parking near the office?",
    "Do you take Delta Dental insurance?",
    "Ok 👍",
    "Can you send me the address again please",
    "My daughter has a toothache since yesterday, do you have anything today? She is 7.",
    "Confirmed for 3:30",
    "Yes that works for me",
    "Could I get a copy of my last invoice? I need it for my HSA claim.",
    "Hello, I got a text from this number about a cleaning. Who is this?",
    "Merci, à jeudi !",
    "Great, thank you so much 😊",
    "I'd like to book a cleaning for me and my husband, ideally back to back, any morning next week except "
    "Wednesday. We are both existing patients. Also, is the whitening offer from last month still on?",
    "Sure",
    "How much is a filling without insurance?",
    "Can I bring my son to the same appointment?",
    "Got it",
)
STOP_WORDS = ("STOP", "Stop", "stop", "STOP.", "UNSUBSCRIBE", "Cancel", "END", "quit")
START_WORDS = ("START", "Start", "UNSTOP", "start")


# --- the organizations -----------------------------------------------------------------------------


def seed():
    """The texting organization (subaccount, agent, number, agent replies off) and three more with numbers.

    Returns (organization, its number, account SID, auth token, [(organization id, number id)] of every number).
    """
    from accounts.services import organization_create, user_create
    from messaging.models import NumberMessaging
    from telephony.models import Agent, PhoneNumber, TwilioSubaccount

    owner = user_create(email="owner@bench-sms.invalid", password=None, name="Bench Owner")
    organization = organization_create(name="Bench Dental", owner=owner, plan_code="pro")
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
    )
    number = PhoneNumber.objects.create(
        organization=organization, number=OUR_NUMBER, twilio_sid="PN" + secrets.token_hex(16),
        account_sid=account_sid, country="US", agent=agent, sms_enabled=True,
    )  # fmt: skip
    NumberMessaging.objects.create(organization=organization, phone_number=number, agent_replies=False)
    numbers = [(organization.id, number.id)]
    others = [organization_create(name=name, owner=owner) for name in ("Bench Clinic", "Bench Salon", "Bench Garage")]
    # Two more numbers of the texting organization, three of each other one: eleven beside ours.
    for serial, holder in enumerate([organization, organization, *[o for o in others for _ in range(3)]], start=201):
        extra = PhoneNumber.objects.create(
            organization=holder, number=f"+1415555{serial:04d}", twilio_sid="PN" + secrets.token_hex(16),
            account_sid=account_sid if holder is organization else "AC" + secrets.token_hex(16), country="US",
            sms_enabled=True,
        )  # fmt: skip
        numbers.append((holder.id, extra.id))
    return organization, number, account_sid, auth_token, numbers


# --- part b's table: the subscriptions ------------------------------------------------------------


REBUILD_INDEXES_FROM = 100_000  # a smaller load goes into the indexes as they are


def _secondary_indexes(cursor) -> list[tuple[str, str, bool]]:
    """messaging_subscription's indexes but its primary key: (name, definition, is a constraint), as PostgreSQL
    describes them, so they are made again exactly as the migrations made them."""
    cursor.execute(
        """
        SELECT COALESCE(c.conname, i.indexrelid::regclass::text),
               COALESCE(pg_get_constraintdef(c.oid), pg_get_indexdef(i.indexrelid)), c.oid IS NOT NULL
          FROM pg_index i
          LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype = 'u'
         WHERE i.indrelid = 'messaging_subscription'::regclass AND NOT i.indisprimary
         ORDER BY 1
        """
    )
    return [tuple(row) for row in cursor.fetchall()]


def fill_subscriptions(count: int, probe_numbers: list[str], organization, number, numbers) -> dict:
    """``count`` rows into messaging_subscription in one INSERT ... SELECT, the probes among them; VACUUM ANALYZE."""
    from django.db import connections, transaction

    from jagcall.kernel.crypto.blind_index import current_version
    from messaging.models import Subscription

    field = Subscription._meta.get_field("recipient_index")
    template = Subscription(organization_id=organization.id)  # the probes' index, as the field computes it on save
    probe_indexes = [field.compute(template, value) for value in probe_numbers]
    # The probes' places: rows of the texting number (g mod 5 < 2), spread over the whole table.
    rng = random.Random(7)
    eligible = max(1, count // 5)
    places = set()
    while len(places) < min(len(probe_numbers), count // 5 * 2):
        g = 5 * rng.randrange(eligible) + rng.choice((5, 1))  # g mod 5 in {0, 1}
        if g <= count:
            places.add(g)
    places = list(places)
    probe_indexes = probe_indexes[: len(places)]
    others = [pair for pair in numbers if pair[1] != number.id]
    owner = connections["owner"]
    timings = {}
    began = time.perf_counter()
    with transaction.atomic(using="owner"), owner.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign keys checked as rows go in, not at commit
        rebuilt = _secondary_indexes(cursor) if count >= REBUILD_INDEXES_FROM else []
        for name, definition, constraint in rebuilt:  # built again after the load, several times faster
            cursor.execute(f'ALTER TABLE messaging_subscription DROP CONSTRAINT "{name}"' if constraint
                           else f'DROP INDEX "{name}"')  # fmt: skip
        cursor.execute(
            """
            INSERT INTO messaging_subscription
                (id, organization_id, phone_number_id, recipient, recipient_index, subscribed, needs_review, changed_at)
            SELECT gen_random_uuid(),
                   CASE WHEN mod(g, 5) < 2 THEN %(org)s::uuid ELSE (%(orgs)s::uuid[])[1 + mod(g / 5, %(k)s)] END,
                   CASE WHEN mod(g, 5) < 2 THEN %(num)s::uuid ELSE (%(nums)s::uuid[])[1 + mod(g / 5, %(k)s)] END,
                   convert_to('jc1', 'UTF8') || sha256(convert_to('r|' || g || '|' || random(), 'UTF8'))
                       || decode(md5(random()::text), 'hex'),
                   COALESCE(p.idx, %(version)s || '$'
                                   || encode(sha256(convert_to('i|' || g || '|' || random(), 'UTF8')), 'hex')),
                   CASE WHEN p.idx IS NULL THEN random() >= 0.85 ELSE false END,
                   false,
                   now() - random() * interval '730 days'
              FROM generate_series(1, %(count)s) AS g
              LEFT JOIN unnest(%(places)s::bigint[], %(indexes)s::text[]) AS p(place, idx) ON p.place = g
            """,
            {
                "org": str(organization.id), "num": str(number.id), "k": len(others),
                "orgs": [str(org) for org, _ in others], "nums": [str(num) for _, num in others],
                "version": current_version(), "count": count, "places": places, "indexes": probe_indexes,
            },
        )  # fmt: skip
        timings["insert_s"] = time.perf_counter() - began
        began = time.perf_counter()
        for name, definition, constraint in rebuilt:
            cursor.execute(f'ALTER TABLE messaging_subscription ADD CONSTRAINT "{name}" {definition}' if constraint
                           else definition)  # fmt: skip
        if rebuilt and _secondary_indexes(cursor) != rebuilt:
            raise RuntimeError("messaging_subscription's indexes differ from what they were before the load")
        timings["index_s"] = time.perf_counter() - began
        timings["rebuilt"] = len(rebuilt)
    with owner.cursor() as cursor:
        began = time.perf_counter()
        cursor.execute("VACUUM ANALYZE messaging_subscription")
        timings["vacuum_s"] = time.perf_counter() - began
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE phone_number_id = %s), "
            "pg_table_size('messaging_subscription'), pg_indexes_size('messaging_subscription') "
            "FROM messaging_subscription",
            [str(number.id)],
        )
        total, on_number, table_bytes, index_bytes = cursor.fetchone()
    timings.update(total=total, on_number=on_number, table_mb=table_bytes / 2**20, index_mb=index_bytes / 2**20,
                   probes=len(places))  # fmt: skip
    return timings


# --- part a's requests: texts as Twilio posts them ------------------------------------------------


class Texts:
    """Inbound texts to our number, signed: senders new and returning, ordinary bodies or keywords."""

    def __init__(self, signer: Signer, *, new_share: float, seed: int = 11):
        from jagcall.kernel.phone import is_e164
        from messaging.keywords import Intent, intent_of

        for body in ORDINARY_BODIES:  # an ordinary text must stay ordinary, or it measures something else
            if intent_of(body)[0] != Intent.NONE:
                raise RuntimeError(f"{body!r} reads as {intent_of(body)}, not as an ordinary text")
        for word in STOP_WORDS + START_WORDS:
            if intent_of(word)[0] not in (Intent.OPT_OUT, Intent.OPT_IN):
                raise RuntimeError(f"{word!r} is not read as a keyword")
        self.is_e164 = is_e164
        self.signer = signer
        self.new_share = new_share
        self.rng = random.Random(seed)
        self.serial = 0
        self.seen: list[str] = []  # senders of earlier batches
        self.subscribed: dict[str, bool] = {}  # the keyword senders' state, as their last keyword left it
        self.sent = {"texts": 0, "keywords": 0, "new senders": 0, "returning": 0}

    def _new_sender(self) -> str:
        while True:
            self.serial += 1
            index = self.serial
            area = SENDER_AREAS[index % len(SENDER_AREAS)]
            exchange = 201 + (index // len(SENDER_AREAS)) % 700
            line = (index // (len(SENDER_AREAS) * 700)) % 10000
            candidate = f"+1{area}{exchange:03d}{line:04d}"
            if self.is_e164(candidate):
                return candidate

    def _request(self, host: str, sender: str, body: str) -> bytes:
        sid = "SM" + secrets.token_hex(16)
        segments = 1 if len(body) <= 70 else 2
        form = {
            "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "SAN FRANCISCO",
            "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "", "Body": body,
            "FromCountry": "CA" if sender[2:5] in ("416", "604") else "US", "To": OUR_NUMBER, "ToZip": "94108",
            "NumSegments": str(segments), "MessageSid": sid, "AccountSid": self.signer.account_sid, "From": sender,
            "ApiVersion": "2010-04-01",
        }  # fmt: skip
        return self.signer.request(SMS, form, host)

    def ordinary(self, count: int, host: str) -> list[bytes]:
        built, first_seen = [], []
        for _ in range(count):
            if not self.seen or self.rng.random() < self.new_share:
                sender = self._new_sender()
                first_seen.append(sender)
                self.sent["new senders"] += 1
            else:
                sender = self.rng.choice(self.seen)
                self.sent["returning"] += 1
            built.append(self._request(host, sender, self.rng.choice(ORDINARY_BODIES)))
        self.seen.extend(first_seen)  # returning senders are taken from earlier batches only
        self.sent["texts"] += count
        return built

    def keywords(self, count: int, host: str) -> list[bytes]:
        """STOP from subscribed senders, START from unsubscribed ones: each one changes a subscription."""
        built = []
        for sender in self.rng.sample(self.seen, min(count, len(self.seen))):
            subscribed = self.subscribed.get(sender, True)
            word = self.rng.choice(STOP_WORDS if subscribed else START_WORDS)
            self.subscribed[sender] = not subscribed
            built.append(self._request(host, sender, word))
        self.sent["keywords"] += len(built)
        return built


# --- part a: the rounds ------------------------------------------------------------------------------


def check_answer(name: str, result: dict, expected: bytes) -> None:
    """Refuse to measure a webhook that never answers right; say so when some answers are wrong."""
    if not result["statuses"].get(200):
        raise RuntimeError(f"{name}: no 200 at all, statuses {result['statuses']}; "
                           f"first answers: { {k: v[:300] for k, v in result['samples'].items()} }")  # fmt: skip
    if expected not in result["sample"]:
        raise RuntimeError(f"{name}: the answer does not contain {expected!r}: {result['sample'][:500]!r}")
    if result["wrong"]:
        print(f"  WARNING: {name}: statuses {result['statuses']}; first wrong answers: "
              f"{ {k: v[:300] for k, v in result['samples'].items() if k != 200} }")  # fmt: skip


def stored_counts(organization, number) -> dict:
    """What the webhook wrote, counted in the database."""
    from compliance.models import DoNotCallEntry
    from messaging.models import Contact, Conversation, Direction, Message, SenderType, SubscriptionChange

    messages = Message.objects.for_org(organization)
    return {
        "inbound messages": messages.filter(direction=Direction.INBOUND, conversation__phone_number=number).count(),
        "automatic replies": messages.filter(direction=Direction.OUTBOUND, sender_type=SenderType.SYSTEM).count(),
        "contacts": Contact.objects.for_org(organization).count(),
        "conversations": Conversation.objects.for_org(organization).filter(phone_number=number).count(),
        "subscription changes": SubscriptionChange.objects.for_org(organization).count(),
        "do-not-call entries": DoNotCallEntry.objects.for_org(organization).count(),
    }


def consistency(texts: Texts, stored: dict) -> list[str]:
    """Differences between what was sent and what was stored ([] when everything is there once)."""
    expected = {
        "inbound messages": texts.sent["texts"] + texts.sent["keywords"],
        "automatic replies": texts.sent["keywords"],
        "contacts": len(texts.seen),
        "conversations": len(texts.seen),
        "subscription changes": texts.sent["keywords"],
        "do-not-call entries": len(texts.subscribed),  # each keyword sender's first keyword was a STOP
    }
    return [f"{key}: {stored[key]} stored, {value} expected" for key, value in expected.items() if stored[key] != value]


def run_webhook(args, organization, number, account_sid, auth_token, database_name, data_dir):
    """Part a: the server started, the warm-up and the rounds; returns (rounds, the texts sent, what was stored)."""
    server = Server(
        database_name=database_name, log_path=data_dir / "bench-sms-server.log", db_pool=args.db_pool,
        max_concurrent=args.max_concurrent, max_concurrent_webhooks=args.max_concurrent_webhooks,
    )  # fmt: skip
    texts = Texts(Signer(account_sid, auth_token), new_share=args.new_senders)
    phase = Phase("texts", SMS, 200)
    rounds: dict[str, list[dict]] = {"texts": [], "keywords": [], "texts, 1 client": []}
    try:
        server.wait_ready(timeout=240)  # a loaded machine can take minutes to import the project
        host = f"127.0.0.1:{server.port}"
        meter = CpuMeter(server.process.pid, data_dir)
        print(f"server: {shlex.join(server.command)}")
        print(f"organization {organization.id}: subaccount {account_sid}, number {OUR_NUMBER}, "
              f"agent replies off (NumberMessaging.agent_replies=False)")  # fmt: skip

        section(f"Warm-up ({args.warmup} texts, {args.concurrency} in flight; every sender new)")
        warm = phase.run(server, meter, texts.ordinary(args.warmup, host), args.concurrency, database_name)
        check_answer("texts", warm, b"<Response/>")
        print(f"  texts {warm['rps']:>7.0f} req/s, statuses {warm['statuses']}")
        print(f"  a text's answer: {warm['sample'][:200].decode(errors='replace')}")
        if args.keywords:
            warm_keywords = phase.run(server, meter, texts.keywords(min(args.keywords, 50), host), args.concurrency,
                                      database_name)  # fmt: skip
            check_answer("keywords", warm_keywords, b"<Message>")
            print(f"  keywords {warm_keywords['rps']:>4.0f} req/s, statuses {warm_keywords['statuses']}")
            print(f"  a keyword's answer: {warm_keywords['sample'][:300].decode(errors='replace')}")

        section(f"Rounds ({args.rounds} x {args.requests} texts + {args.keywords} keywords, {args.concurrency} in "
                f"flight; then {args.uncontended} texts from 1 client)")  # fmt: skip
        for index in range(args.rounds):
            line = []
            batches = [("texts", args.requests), ("keywords", args.keywords)]
            if index % 2:
                batches.reverse()
            for name, count in batches:
                if not count:
                    continue
                requests = texts.ordinary(count, host) if name == "texts" else texts.keywords(count, host)
                result = phase.run(server, meter, requests, args.concurrency, database_name)
                rounds[name].append(result)
                line.append(f"{name} {result['rps']:>4.0f} req/s p95 {result['p95_ms']:>6.1f} (server p95 "
                            f"{result['app_p95_ms']:>5.1f}, view p95 {result['view_p95_ms']:>5.1f}) ms"
                            + (f" [{result['wrong']} unexpected]" if result["wrong"] else ""))  # fmt: skip
            if args.uncontended:
                result = phase.run(server, meter, texts.ordinary(args.uncontended, host), 1, database_name)
                rounds["texts, 1 client"].append(result)
                line.append(f"texts@1 p95 {result['p95_ms']:>5.1f} (server p95 {result['app_p95_ms']:>5.1f}) ms")
            print(f"  round {index + 1}: " + " | ".join(line))
            sys.stdout.flush()
    finally:
        server.stop()
    time.sleep(0.2)
    stored = stored_counts(organization, number)
    return rounds, texts, {"stored": stored, "problems": consistency(texts, stored), "log": server.log_path}


# --- part b: the gate, in this process -------------------------------------------------------------


def explain_rule(organization, number, recipient: str) -> tuple[list[str], int]:
    """The whole check's statement that reads the subscription (with the do-not-call entry), as Django sent it,
    under EXPLAIN (ANALYZE, BUFFERS); and the check's statement count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from messaging.services import gate

    with CaptureQueriesContext(connection) as whole:
        gate.pre_send_check(organization=organization, to_number=recipient, sender=number)
    statements = [query["sql"] for query in whole.captured_queries if "messaging_subscription" in query["sql"]]
    if len(statements) != 1:
        raise RuntimeError(f"the check ran {len(statements)} statements on messaging_subscription")
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statements[0])
        plan = [row[0] for row in cursor.fetchall()]
    return [statements[0], *plan], len(whole.captured_queries)


def run_gate(args, organization, number, present: list[str], absent: list[str], texts: Texts | None) -> dict:
    from django.db import connection
    from django.utils import timezone

    from jagcall.kernel.crypto.errors import DecryptionError
    from messaging.services import gate

    def check(recipient):
        return [r.code for r in gate.pre_send_check(organization=organization, to_number=recipient, sender=number)]

    def rule(recipient):
        refusal = gate.opted_out(organization, recipient, number, timezone.now(), False)
        return [refusal.code] if refusal else []

    variants = {
        "check, opted out (row)": (check, present, ["opted_out"]),
        "check, never changed (no row)": (check, absent, []),
        "opted_out rule, opted out (row)": (rule, present, ["opted_out"]),
        "opted_out rule, never changed": (rule, absent, []),
    }
    # Every probe once, before the clock: each answer right, and no filler ciphertext decrypted (it would raise).
    wrong = {name: 0 for name in variants}
    try:
        for name, (function, recipients, expected) in variants.items():
            wrong[name] += sum(1 for recipient in recipients if function(recipient) != expected)
    except DecryptionError as error:
        raise RuntimeError(f"the gate decrypted a subscription's recipient: {error}") from None
    print(f"  every probe checked once before the clock: {sum(len(v[1]) for v in variants.values())} answers, "
          f"{sum(wrong.values())} wrong, no recipient decrypted (the rows' ciphertexts do not decrypt)")  # fmt: skip
    agreed = disagreed = 0
    if texts is not None:
        for sender, subscribed in texts.subscribed.items():
            if check(sender) == ([] if subscribed else ["opted_out"]):
                agreed += 1
            else:
                disagreed += 1
    statement_plan, statements_per_check = explain_rule(organization, number, present[0])
    absent_plan, _ = explain_rule(organization, number, absent[0])

    block = 100
    rounds: dict[str, list[dict]] = {name: [] for name in variants}
    clock = time.perf_counter_ns
    for round_index in range(args.rounds):
        samples: dict[str, list[float]] = {name: [] for name in variants}
        cpu = dict.fromkeys(variants, 0.0)  # this process's CPU seconds: the cost without waiting for a core
        positions = dict.fromkeys(variants, 0)
        for _ in range(max(1, args.gate_iterations // block)):
            for name, (function, recipients, expected) in variants.items():
                durations = samples[name]
                start = positions[name]
                cpu_began = time.process_time()
                for offset in range(block):
                    recipient = recipients[(start + offset) % len(recipients)]
                    began = clock()
                    result = function(recipient)
                    durations.append((clock() - began) / 1e6)
                    if result != expected:
                        wrong[name] += 1
                cpu[name] += time.process_time() - cpu_began
                positions[name] = start + block
        for name, durations in samples.items():
            rounds[name].append({"n": len(durations), "p50": percentile(durations, 0.50),
                                 "p95": percentile(durations, 0.95), "p99": percentile(durations, 0.99),
                                 "cpu": cpu[name] / len(durations) * 1e3})  # fmt: skip
        print(f"  round {round_index + 1}: " + " | ".join(
            f"{name} p95 {rounds[name][-1]['p95']:.3f} ms" for name in variants))  # fmt: skip
        sys.stdout.flush()
    connection.close()
    return {"rounds": rounds, "wrong": wrong, "agreed": agreed, "disagreed": disagreed, "plan": statement_plan,
            "absent_plan": absent_plan, "statements_per_check": statements_per_check}  # fmt: skip


# --- the run -------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Twilio's inbound SMS webhook under concurrent load; the pre-send "
                                                 "gate with many subscriptions.")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each part; medians are reported (default 5)")
    parser.add_argument("--requests", type=int, default=2000, help="ordinary texts per round (default 2000)")
    parser.add_argument("--keywords", type=int, default=200,
                        help="STOP/START texts per round, reported apart (default 200; 0: none)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight (default 50)")
    parser.add_argument("--uncontended", type=int, default=200,
                        help="texts per round from a single client (default 200; 0: none)")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up texts, every sender new (default 300)")
    parser.add_argument("--new-senders", type=float, default=0.25,
                        help="share of texts from a number never seen before (default 0.25)")
    parser.add_argument("--subscriptions", type=int, default=1_000_000,
                        help="rows in messaging_subscription for the gate (default 1,000,000)")
    parser.add_argument("--probes", type=int, default=1000,
                        help="recipients looked up per variant: as many with a row, as many without (default 1000)")
    parser.add_argument("--gate-iterations", type=int, default=5000,
                        help="timed gate calls per variant per round (default 5000)")
    parser.add_argument("--db-pool", type=int, default=10,
                        help="the server's pool of database connections (DB_POOL_MAX_SIZE; default 10, production's)")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="requests inside Django at once (WEB_MAX_CONCURRENT_REQUESTS; default: production's)")
    parser.add_argument("--max-concurrent-webhooks", type=int, default=None,
                        help="signed webhooks inside Django at once (WEB_MAX_CONCURRENT_WEBHOOKS; default: "
                             "production's, 1)")
    parser.add_argument("--data-dir", help="directory for the embedded servers (default: a fresh one under /tmp, "
                                           "removed at the end)")
    args = parser.parse_args(argv)
    if args.subscriptions < 10 or args.probes < 1 or args.rounds < 1:
        parser.error("--subscriptions must be at least 10, --probes and --rounds at least 1")
    if not 0 <= args.new_senders <= 1:
        parser.error("--new-senders is a share between 0 and 1")
    return args


def probe_numbers(count: int) -> tuple[list[str], list[str]]:
    """Two disjoint sets of valid numbers, none of them a sender of part a (other area codes)."""
    from jagcall.kernel.phone import is_e164

    present, absent = [], []
    index = 0
    while len(present) < count or len(absent) < count:
        index += 1
        candidate = f"+1{('303', '404')[index % 2]}{201 + (index // 2) % 700:03d}{index // 1400:04d}"
        if not is_e164(candidate):
            continue
        (present if index % 2 else absent).append(candidate)
    return present[:count], absent[:count]


def main(argv=None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    packages = ("Django", "uvicorn", "uvloop", "httptools", "psycopg", "redis", "twilio", "tink")
    with scratch_database(args.data_dir, packages=packages) as facts:
        from django.db import connection

        organization, number, account_sid, auth_token, numbers = seed()
        database_name = connection.settings_dict["NAME"]
        data_dir = Path(os.environ["JAGCALL_DATA_DIR"])

        probes = min(args.probes, max(1, args.subscriptions // 10))
        present, absent = probe_numbers(probes)
        section(f"Subscriptions ({args.subscriptions:,} rows over {len(numbers)} numbers of 4 organizations)")
        fill = fill_subscriptions(args.subscriptions, present, organization, number, numbers)
        present = present[: fill["probes"]]
        print(f"  inserted {fill['total']:,} rows in {fill['insert_s']:.1f} s (INSERT ... SELECT generate_series), "
              + (f"{fill['rebuilt']} secondary indexes dropped before and built after in {fill['index_s']:.1f} s, "
                 if fill["rebuilt"] else "")
              + f"VACUUM ANALYZE {fill['vacuum_s']:.1f} s; {fill['on_number']:,} on {OUR_NUMBER}; table "
              f"{fill['table_mb']:.0f} MB, indexes {fill['index_mb']:.0f} MB")  # fmt: skip
        print(f"  {len(present)} probe rows (blind index as BlindIndexField computes it, opted out) among them; "
              f"{len(absent)} probe numbers with no row")  # fmt: skip

        rounds, texts, stored = run_webhook(args, organization, number, account_sid, auth_token, database_name,
                                            data_dir)  # fmt: skip

        section(f"Pre-send gate, in this process ({args.rounds} x {args.gate_iterations} calls per variant, "
                f"{fill['total']:,} subscriptions)")  # fmt: skip
        number.refresh_from_db()
        organization.refresh_from_db()
        gate = run_gate(args, organization, number, present, absent, texts)
        print_summary(args, rounds, texts, stored, gate, fill, facts, time.perf_counter() - began)
        failures = sum(r["wrong"] for results in rounds.values() for r in results)
        failures += len(stored["problems"]) + sum(gate["wrong"].values()) + gate["disagreed"]
    return 0 if not failures else 1


def print_summary(args, rounds, texts: Texts, stored: dict, gate: dict, fill: dict, facts: dict, elapsed: float):
    section("Summary: the SMS webhook (medians over rounds)")
    print(f"  {'':<16} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'server p50':>11} {'server p95':>11} "
          f"{'queue p50':>10} {'queue p95':>10} {'view p50':>9} {'view p95':>9} {'PG sess/req':>12}")  # fmt: skip
    summary = {}
    for name, results in rounds.items():
        if not results:
            continue
        row = {key: median([r[key] for r in results]) for key in
               ("rps", "p50_ms", "p95_ms", "p99_ms", "app_p50_ms", "app_p95_ms", "queue_p50_ms", "queue_p95_ms",
                "view_p50_ms", "view_p95_ms", "sessions_per_request")}  # fmt: skip
        summary[name] = row
        print(f"  {name:<16} {row['rps']:>7.0f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['p99_ms']:>8.1f} "
              f"{row['app_p50_ms']:>11.1f} {row['app_p95_ms']:>11.1f} {row['queue_p50_ms']:>10.1f} "
              f"{row['queue_p95_ms']:>10.1f} {row['view_p50_ms']:>9.1f} {row['view_p95_ms']:>9.1f} "
              f"{row['sessions_per_request']:>12.2f}")  # fmt: skip
    print("  (p50/p95/p99: client-observed; server: Server-Timing app, from entering Django to the answer; queue:")
    print("   Server-Timing queue, waiting for a place in Django before that; view: the webhook's logged duration_ms)")
    sent = texts.sent
    print(f"  sent: {sent['texts']} ordinary texts ({sent['new senders']} from new senders, {sent['returning']} from "
          f"returning ones) and {sent['keywords']} keyword texts; {len(texts.seen)} senders")  # fmt: skip
    print("  stored: " + ", ".join(f"{value} {key}" for key, value in stored["stored"].items()))
    for problem in stored["problems"]:
        print(f"  MISMATCH: {problem}")
    print()
    print(f"  CPU in cores while {args.concurrency} requests were in flight (median over rounds; "
          f"{len(os.sched_getaffinity(0))} usable on this machine):")  # fmt: skip
    keys = ("load generator", "uvicorn", "postgresql", "redis", "other", "machine")
    print(f"  {'':<16} " + " ".join(f"{k:>14}" for k in keys))
    for name in ("texts", "keywords"):
        if rounds[name]:
            print(f"  {name:<16} " + " ".join(f"{median([r['cores'][k] for r in rounds[name]]):>14.2f}" for k in keys))
    print("  ('other': the rest of the machine, which is shared; 'machine': everything)")

    section("Summary: the pre-send gate (medians over rounds, ms)")
    print(f"  {'':<32} {'p50':>8} {'p95':>8} {'p99':>8} {'CPU/call':>9} {'calls':>8}")
    gate_summary = {}
    for name, results in gate["rounds"].items():
        row = {key: median([r[key] for r in results]) for key in ("p50", "p95", "p99", "cpu")}
        gate_summary[name] = row
        print(f"  {name:<32} {row['p50']:>8.3f} {row['p95']:>8.3f} {row['p99']:>8.3f} {row['cpu']:>9.3f} "
              f"{sum(r['n'] for r in results):>8}")  # fmt: skip
    print("  (wall-clock time of each call; CPU/call: this process's CPU time per call, PostgreSQL's not included)")
    print(f"  SQL statements per check: {gate['statements_per_check']} (the do-not-call entry and the subscription, "
          "each by blind index, in one round trip); the statement and its plan (a recipient with a row):")  # fmt: skip
    for line in gate["plan"]:
        print(f"    {line}")
    print("  and for a recipient without a row:")
    for line in gate["absent_plan"][1:]:
        print(f"    {line}")
    if texts.subscribed:
        print(f"  the gate agrees with the keyword senders' last STOP/START: {gate['agreed']} of "
              f"{gate['agreed'] + gate['disagreed']}")  # fmt: skip
    for name, count in gate["wrong"].items():
        if count:
            print(f"  WRONG: {name}: {count} answers not as expected")
    print()

    def verdict(value: float, goal: float, wrong: int = 0) -> str:
        if wrong:
            return f"FAIL ({wrong} wrong)"
        return "PASS" if value < goal else "FAIL"

    wrong_texts = sum(r["wrong"] for r in rounds["texts"]) + len(stored["problems"])
    main_row = summary.get("texts")
    if main_row:
        print(f"{verdict(main_row['app_p95_ms'], GOAL_WEBHOOK_P95_MS, wrong_texts)}: SMS webhook server time p95 "
              f"{main_row['app_p95_ms']:.1f} ms with {args.concurrency} in flight, Server-Timing app (goal < "
              f"{GOAL_WEBHOOK_P95_MS:.0f} ms); it waited {main_row['queue_p95_ms']:.1f} ms p95 in line before "
              "that")  # fmt: skip
        print(f"{verdict(main_row['p95_ms'], GOAL_WEBHOOK_P95_MS, wrong_texts)}: SMS webhook p95 "
              f"{main_row['p95_ms']:.1f} ms with {args.concurrency} in flight, client-observed (goal < "
              f"{GOAL_WEBHOOK_P95_MS:.0f} ms)")  # fmt: skip
        print(f"  at {main_row['rps']:.0f} req/s, {args.concurrency} in flight queue for ~"
              f"{args.concurrency / main_row['rps'] * 1e3:.0f} ms each (Little's law); the goal needs > "
              f"{args.concurrency / GOAL_WEBHOOK_P95_MS * 1e3:.0f} req/s from one process")  # fmt: skip
    alone = summary.get("texts, 1 client")
    if alone:
        print(f"{verdict(alone['p95_ms'], GOAL_WEBHOOK_P95_MS)}: SMS webhook p95 {alone['p95_ms']:.1f} ms from 1 "
              "client, no queueing (same goal)")  # fmt: skip
    keywords = summary.get("keywords")
    if keywords:
        wrong_keywords = sum(r["wrong"] for r in rounds["keywords"])
        print(f"{verdict(keywords['app_p95_ms'], GOAL_WEBHOOK_P95_MS, wrong_keywords)}: keyword texts (STOP/START) "
              f"server time p95 {keywords['app_p95_ms']:.1f} ms with {args.concurrency} in flight (same goal, "
              "reported apart)")  # fmt: skip
    for name, label in (("check, opted out (row)", "pre-send check p95 {:.3f} ms, recipient opted out (a row)"),
                        ("check, never changed (no row)",
                         "pre-send check p95 {:.3f} ms, recipient never changed (no row)"),
                        ("opted_out rule, opted out (row)", "opted_out rule alone p95 {:.3f} ms, a row"),
                        ("opted_out rule, never changed", "opted_out rule alone p95 {:.3f} ms, no row")):  # fmt: skip
        row = gate_summary[name]
        print(f"{verdict(row['p95'], GOAL_GATE_P95_MS, gate['wrong'][name])}: {label.format(row['p95'])} with "
              f"{fill['total']:,} subscriptions (goal < {GOAL_GATE_P95_MS:.0f} ms)")  # fmt: skip
    failures = sum(r["wrong"] for results in rounds.values() for r in results)
    if failures:
        print(f"FAIL: {failures} answers had an unexpected status; see the server's log: {stored['log']}")
    if stored["problems"]:
        print(f"FAIL: what was stored does not match what was sent ({len(stored['problems'])} differences above)")
    print()
    print(f"command: {shlex.join(getattr(sys, 'orig_argv', [sys.executable, *sys.argv]))}")
    print(f"options: rounds={args.rounds} requests={args.requests} keywords={args.keywords} "
          f"concurrency={args.concurrency} uncontended={args.uncontended} warmup={args.warmup} "
          f"new_senders={args.new_senders} subscriptions={args.subscriptions} probes={args.probes} "
          f"gate_iterations={args.gate_iterations} db_pool={args.db_pool} "
          f"max_concurrent={'default' if args.max_concurrent is None else args.max_concurrent} "
          f"max_concurrent_webhooks="
          f"{'default' if args.max_concurrent_webhooks is None else args.max_concurrent_webhooks}")  # fmt: skip
    print(f"public base URL signed over: {PUBLIC_BASE_URL}")
    for key, value in facts.items():
        print(f"{key}: {value}")
    try:
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    except OSError:
        pass
    print(f"total time: {elapsed:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
