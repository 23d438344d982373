"""Usage sent to Stripe by a real Celery worker that is killed mid-batch: the next run sends the batch again
and Stripe counts each event once (billing.services.metering)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from billing.models import BillingAccount, UsageEvent
from billing.services.usage import usage_record
from jagcall.celery import ping
from jagcall.tests.test_celery import BASE_DIR, _stop, _worker_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BATCH = 40


def start_worker(tmp_path, standin, name: str):
    env = _worker_env(tmp_path / "data")
    env.update(
        PROVIDER_BASE_URLS=f"stripe={standin.base_url}",
        STRIPE_SECRET_KEY=standin.api_key,
        SIMULATED_PROVIDERS="false",
        BILLING_METER_BATCH_SIZE=str(BATCH),
        BILLING_METER_CONCURRENCY="2",
        PROVIDER_MAX_RETRIES="0",
        JAGCALL_MASTER_KEYSET_FILE=str(settings.JAGCALL_MASTER_KEYSET_FILE),
        JAGCALL_BLIND_INDEX_KEYS=settings.JAGCALL_BLIND_INDEX_KEYS,
        SECRET_KEY=settings.SECRET_KEY,
        PYTHONUNBUFFERED="1",  # its log is read while it runs: each line written as it is logged
    )
    log_path = tmp_path / f"{name}.log"
    command = [
        sys.executable, "-m", "celery", "-A", "jagcall", "worker", "-Q", "default", "--pool=solo",
        "--concurrency=1", "--without-mingle", "--without-gossip", "--loglevel=INFO", "-n", f"{name}-{uuid.uuid4().hex}@%h",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, log_path


def wait_until(condition, process, log_path, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            break
        time.sleep(0.005)
    pytest.fail(f"timed out (worker {'running' if process.poll() is None else 'exited'}):\n{log_path.read_text()[-4000:]}")


def unsent(organization) -> int:
    return UsageEvent.objects.for_org(organization).filter(sent_at__isnull=True).count()


def locks_released() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'billing_usageevent' AND l.pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] == 0


def test_a_worker_killed_mid_batch_leaves_nothing_billed_twice(tmp_path, organization, stripe_standin):
    from billing.services.prices import prices_sync
    from billing.services.stripe_api import client
    from billing.services.subscriptions import billing_account_ensure
    from billing.tasks import usage_send_task

    prices_sync()
    customer = client().v1.customers.create({"name": organization.name})
    billing_account_ensure(organization)
    BillingAccount.objects.for_org(organization).update(stripe_customer_id=customer.id, subscription_status="active")
    when = timezone.now() - timezone.timedelta(minutes=5)
    for i in range(3 * BATCH):
        usage_record(organization=organization, kind="call_minutes", quantity=1 + i % 4, source=f"call:{i}",
                     occurred_at=when + timezone.timedelta(seconds=i))  # fmt: skip
    ours = sum(1 + i % 4 for i in range(3 * BATCH))
    stripe_standin.delay_seconds = 0.02  # a batch takes a moment: the worker is killed inside one
    name = settings.BILLING_METER_EVENT_NAMES["call_minutes"]

    first, first_log = start_worker(tmp_path, stripe_standin, "first")
    try:
        usage_send_task.delay()
        wait_until(lambda: len(stripe_standin.meter_events) >= BATCH + BATCH // 2, first, first_log)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        _stop(first)
    # A request the worker sent just before it died is still being answered (the stand-in's delay):
    # count once Stripe's side has settled.
    accepted_at_kill, settled_since = len(stripe_standin.meter_events), time.monotonic()
    while time.monotonic() - settled_since < 20 * stripe_standin.delay_seconds:
        time.sleep(stripe_standin.delay_seconds)
        if len(stripe_standin.meter_events) != accepted_at_kill:
            accepted_at_kill, settled_since = len(stripe_standin.meter_events), time.monotonic()
    marked_at_kill = 3 * BATCH - unsent(organization)
    assert marked_at_kill == BATCH  # the first batch committed; the second died with the worker
    assert accepted_at_kill > marked_at_kill  # Stripe has events of the dead batch that we do not mark sent

    # PostgreSQL rolls the dead worker's transaction back once it sees the connection gone.
    deadline = time.monotonic() + 30
    while not locks_released():
        assert time.monotonic() < deadline, "the dead worker's row locks were never released"
        time.sleep(0.05)
    second, second_log = start_worker(tmp_path, stripe_standin, "second")
    try:
        result = usage_send_task.delay()
        assert result.get(timeout=60) == 3 * BATCH - marked_at_kill
    finally:
        _stop(second)
    assert unsent(organization) == 0
    assert len(stripe_standin.meter_events) == 3 * BATCH  # each identifier once
    assert stripe_standin.duplicate_meter_events == accepted_at_kill - marked_at_kill  # the dead batch, refused
    assert stripe_standin.meter_total(name, customer.id) == ours


def cap_checks_received(log_path) -> int:
    return sum(
        1 for line in log_path.read_text().splitlines()
        if "billing.tasks.spend_cap_check_task[" in line and "] received" in line
    )  # fmt: skip


def test_a_burst_of_usage_queues_one_spend_cap_check_which_sets_the_flag_the_gates_read(
    tmp_path, organization, owner, settings, stripe_standin
):
    """Each usage record asks for a check of the cap; a burst of them costs one check, run a moment after the
    first, and that check covers the whole burst. Once it has run, the next record queues a new one."""
    from billing.selectors import month_start
    from billing.services.subscriptions import billing_account_ensure
    from billing.services.usage import _cap_checks

    settings.BILLING_CAP_CHECK_SECONDS = 1.0
    _cap_checks.forget()
    billing_account_ensure(organization)
    BillingAccount.objects.for_org(organization).update(spend_cap_cents=5_000)  # $50 of usage charges
    process, log_path = start_worker(tmp_path, stripe_standin, "caps")
    try:
        now = timezone.now()
        # Starter includes 500 minutes, then 9 cents a minute: 20 calls of 30 minutes are $9.00, under the cap.
        for i in range(20):
            usage_record(organization=organization, kind="call_minutes", quantity=30, source=f"call:under-{i}",
                         occurred_at=now)  # fmt: skip
        # The last records take the month over the cap ($63.00): the check queued by the first covers them.
        for i in range(12):
            usage_record(organization=organization, kind="call_minutes", quantity=50, source=f"call:over-{i}",
                         occurred_at=now)  # fmt: skip
        burst_ended = time.monotonic()

        def reached():
            organization.refresh_from_db()
            return organization.spend_cap_reached_month == month_start(now).date()

        wait_until(reached, process, log_path, timeout=60)
        # A task queued after the burst, run by the same one-at-a-time worker: once it is done, the worker
        # has taken in every task queued before it.
        assert ping.delay("drained").get(timeout=60) == "drained"
        assert cap_checks_received(log_path) == 1, log_path.read_text()[-4000:]

        # The window has passed: the next record queues its own check.
        time.sleep(max(0.0, burst_ended + settings.BILLING_CAP_CHECK_SECONDS + 0.1 - time.monotonic()))
        usage_record(organization=organization, kind="call_minutes", quantity=1, source="call:after",
                     occurred_at=timezone.now())  # fmt: skip
        wait_until(lambda: cap_checks_received(log_path) == 2, process, log_path, timeout=60)
    finally:
        _stop(process)
