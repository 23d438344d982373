"""The benchmarks still run: each script, at a very small size, end to end.

Each runs as a person runs it (a subprocess from the repository root) on
embedded servers of its own, never the suite's: the suite's data directory
and database settings are taken out of its environment. The benchmarks of one
test process share a data directory of their own (``bench_dir``), so the first
keeps its migrated database as a template and the others copy it instead of
migrating again (JAGCALL_BENCH_TEMPLATE, bench/common.py). What is checked is
that it measured what it says (its summary and PASS/FAIL lines), not the
figures, which depend on the machine, and that it stopped the servers it
started.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    """The data directory the benchmarks of this process share; whatever still runs in it is stopped at the end."""
    from jagcall.kernel.embedded import EmbeddedPostgres, EmbeddedRedis

    data_dir = tmp_path_factory.mktemp("bench-shared")
    os.chmod(data_dir, 0o755)  # the embedded PostgreSQL runs as its own user when we are root
    yield data_dir
    EmbeddedRedis(data_dir / "redis").stop()
    EmbeddedPostgres(data_dir / "pg").stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def run_bench(*args: str, data_dir: Path | None = None, timeout: int = 600) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"JAGCALL_DATA_DIR", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL"}
        and not key.startswith("PYTEST_")
    }
    if data_dir is not None:
        args = (*args, "--data-dir", str(data_dir))
        env["JAGCALL_BENCH_TEMPLATE"] = "1"
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    if data_dir is not None:
        assert_stopped(data_dir)
    return result.stdout


def assert_stopped(data_dir: Path) -> None:
    """The run stopped the servers it started in ``data_dir`` and dropped its scratch database's connections."""
    assert not (data_dir / "pg" / "cluster" / "postmaster.pid").exists(), "PostgreSQL was left running"
    assert not (data_dir / "redis" / "redis.pid").exists(), "Redis was left running"


def test_voice_webhook_bench_runs_small(bench_dir):
    out = run_bench("bench/voice_webhook.py", "--rounds", "1", "--requests", "40", "--concurrency", "5",
                    "--uncontended", "5", "--warmup", "20", "--conn-max-age", "0", data_dir=bench_dir)  # fmt: skip
    assert "a voice answer: <?xml" in out and "<Connect><Stream" in out
    assert re.search(r"^  voice +\d+ +[\d.]+ +[\d.]+", out, re.MULTILINE)
    assert re.search(r"^  status +\d+ +[\d.]+ +[\d.]+", out, re.MULTILINE)
    assert re.search(r"^(PASS|FAIL): voice webhook p95 [\d.]+ ms with 5 in flight", out, re.MULTILINE)
    assert re.search(r"^(PASS|FAIL): voice webhook server time p95 [\d.]+ ms with 5 in flight", out, re.MULTILINE)
    assert "unexpected status" not in out
    

def test_calls_list_bench_runs_small_and_reuses_its_seed(tmp_path):
    data_dir = tmp_path / "bench-calls"
    args = ("bench/calls_list.py", "--calls", "120", "--rounds", "1", "--requests", "3", "--deep", "2",
            "--data-dir", str(data_dir))  # fmt: skip
    try:
        first = run_bench(*args)
        assert "seeded      120 calls" in first
        for line in ("page p95", "page, filtered p95", "api p95"):
            assert re.search(rf"^(PASS|FAIL): {line} [\d.]+ ms", first, re.MULTILINE), line
        assert re.search(r"^(PASS|FAIL): decrypting what the page shows adds", first, re.MULTILINE)
        second = run_bench(*args)
        assert "seeded before: organization bench-calls-120 with 120 calls (reused" in second
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_voice_turns_bench_runs_one_call(bench_dir):
    out = run_bench("bench/voice_turns.py", "--levels", "1", "--calls-memory", "2", data_dir=bench_dir)
    assert re.search(r"^  calls 1 \(errors 0\), answered turns [1-9]", out, re.MULTILINE)
    for line in ("end of turn (VAD + Smart Turn)", "first audio (after stop)", "our added latency",
                 "barge-in clear"):  # fmt: skip
        assert re.search(rf"^  {re.escape(line)} +p50 +[\d.]+ ms +p95 +[\d.]+ ms +n=[1-9]", out, re.MULTILINE), line
    assert re.search(r"^  late agent frames +\d+ of [1-9]\d*", out, re.MULTILINE)
    assert re.search(r"^(PASS|FAIL): added latency p95 [\d.]+ ms at 1 calls", out, re.MULTILINE)
    assert re.search(r"^(PASS|FAIL): CPU per call [\d.]+ % of a core at 1 calls", out, re.MULTILINE)
    assert "server RSS: first 1 calls" in out
    assert "ERROR:" not in out
    

def test_turn_burst_bench_runs_small():
    out = run_bench("bench/turn_burst.py", "--callers", "3", "--rounds", "1", "--threads", "1,2")
    assert "3 callers pause at once, 1 rounds" in out
    for mode in ("thread per call", "shared 1", "shared 2"):
        figures = r" +[\d.]+ ms" * 6
        assert re.search(rf"^  {mode}{figures}$", out, re.MULTILINE), mode


def test_sms_webhook_bench_runs_small(bench_dir):
    out = run_bench("bench/sms_webhook.py", "--rounds", "1", "--requests", "50", "--keywords", "20",
                    "--concurrency", "5", "--uncontended", "5", "--warmup", "20", "--subscriptions", "10000",
                    "--probes", "100", "--gate-iterations", "200", data_dir=bench_dir)  # fmt: skip
    assert re.search(r"^  inserted 10,000 rows in [\d.]+ s", out, re.MULTILINE)
    assert "a text's answer: <?xml" in out and "<Response/>" in out
    assert re.search(r"^  a keyword's answer: .*<Message>.*unsubscribed", out, re.MULTILINE)
    for row in ("texts", "keywords", "texts, 1 client"):
        assert re.search(rf"^  {re.escape(row)} +\d+ +[\d.]+ +[\d.]+", out, re.MULTILINE), row
    assert re.search(r"^(PASS|FAIL): SMS webhook server time p95 [\d.]+ ms with 5 in flight", out, re.MULTILINE)
    assert re.search(r"^(PASS|FAIL): SMS webhook p95 [\d.]+ ms with 5 in flight, client-observed", out, re.MULTILINE)
    assert re.search(r"^(PASS|FAIL): keyword texts \(STOP/START\) server time p95 [\d.]+ ms", out, re.MULTILINE)
    for line in (r"pre-send check p95 [\d.]+ ms, recipient opted out \(a row\)",
                 r"pre-send check p95 [\d.]+ ms, recipient never changed \(no row\)",
                 r"opted_out rule alone p95 [\d.]+ ms, a row", r"opted_out rule alone p95 [\d.]+ ms, no row"):  # fmt: skip
        assert re.search(rf"^(PASS|FAIL): {line} with 10,000 subscriptions \(goal < 1 ms\)", out, re.MULTILINE), line
    assert re.search(r"^  SQL statements per check: 1 ", out, re.MULTILINE)  # both reads in one round trip
    assert re.search(r"^ +-> +Index (Only )?Scan using \w+ on messaging_subscription", out, re.MULTILINE)
    assert re.search(r"^ +-> +Index (Only )?Scan using \w+ on compliance_donotcallentry", out, re.MULTILINE)
    agreed = re.search(r"the gate agrees with the keyword senders' last STOP/START: (\d+) of (\d+)", out)
    assert agreed and agreed.group(1) == agreed.group(2) != "0"
    assert "MISMATCH" not in out and "WRONG" not in out and "unexpected status" not in out
    

def test_billing_webhook_bench_runs_small(bench_dir):
    out = run_bench("bench/billing_webhook.py", "--rounds", "1", "--requests", "40", "--concurrency", "5",
                    "--uncontended", "5", "--warmup", "20", "--organizations", "3", data_dir=bench_dir)  # fmt: skip
    for row in ("events", "events, 1 client"):
        assert re.search(rf"^  {re.escape(row)} +\d+ +[\d.]+ +[\d.]+", out, re.MULTILINE), row
    assert re.search(r"^  sent: 65 events: \d+ handled", out, re.MULTILINE)
    assert re.search(r"^  recorded deliveries: 65; queued on Redis: \d+ billing\.tasks\.stripe_event_apply_task", out,
                     re.MULTILINE)  # fmt: skip
    assert re.search(r"^(PASS|FAIL): Stripe webhook p95 [\d.]+ ms with 5 in flight, client-observed", out, re.MULTILINE)
    assert re.search(r"^(PASS|FAIL): Stripe webhook server time p95 [\d.]+ ms", out, re.MULTILINE)
    assert "PASS: every handled event queued its apply task once, no account changed in the request" in out
    assert "MISMATCH" not in out
    

def test_billing_metering_bench_runs_small(bench_dir):
    out = run_bench("bench/billing_metering.py", "--records", "1200", "--rounds", "1", "--organizations", "2",
                    "--batch-size", "100", "--concurrency", "2", data_dir=bench_dir)  # fmt: skip
    round_line = re.search(r"^  round 1: .* killed after ([\d,]+) marked sent \(([\d,]+) accepted by Stripe, (\d+) in "
                           r"the dead batch\).* (\d+) repeats refused", out, re.MULTILINE)  # fmt: skip
    assert round_line, out[-3000:]
    marked, accepted, dead, repeats = (int(value.replace(",", "")) for value in round_line.groups())
    assert dead == accepted - marked == repeats > 0  # killed inside a batch, which was sent again and refused
    assert re.search(r"^  1,200 meter events accepted, \d+ repeats refused; per customer and meter: 0 totals differ",
                     out, re.MULTILINE)  # fmt: skip
    assert re.search(r"^  usage_reconcile over \d+ days: \d+ rows, 0 with a difference", out, re.MULTILINE)
    assert re.search(r"^  first sender, until killed: +\d+ records/s", out, re.MULTILINE)
    assert "PASS: after a sender killed mid-batch and a retry, Stripe's totals equal ours" in out
    