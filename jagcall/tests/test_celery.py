"""The Celery app: its configuration, and real round trips through a worker process.

The worker is a separate process on the same test database and the same Redis
databases as this test process, so a task sees exactly the rows the test committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.models import Invitation
from accounts.tests.factories import InvitationFactory
from jagcall.celery import app, ping

BASE_DIR = Path(__file__).resolve().parent.parent.parent
QUEUES = {"default", "transcription", "embeddings", "webhooks"}


def test_the_app_is_configured_for_safe_delivery():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert {queue.name for queue in conf.task_queues} == QUEUES
    assert conf.task_default_queue == "default"
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    # A message is redelivered only after the longest task could have finished.
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.broker_url == settings.REDIS_BROKER_URL
    for route in conf.task_routes.values():
        assert route["queue"] in QUEUES


def test_the_beat_schedule_names_a_registered_task():
    app.loader.import_default_modules()  # what a worker or beat does at start: autodiscovery
    schedule = app.conf.beat_schedule
    assert "invitations-purge-expired" in schedule
    for entry in schedule.values():
        assert entry["task"] in app.tasks, f"{entry['task']} is not a registered task"
    assert app.tasks["accounts.tasks.invitation_purge_expired_task"].acks_late is True


def _database_url() -> str:
    db = connection.settings_dict
    assert db["NAME"].startswith("test_"), db["NAME"]
    credentials = quote(db["USER"], safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'], safe='')}"


def _worker_env(data_dir: Path) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "DJANGO_", "CELERY_")) and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        DATABASE_URL=_database_url(),  # NAME is this worker's test database
        REDIS_URL=settings.REDIS_URL,
        REDIS_DB_OFFSET=str(settings.REDIS_DB_OFFSET),
        JAGCALL_TESTING="1",
        JAGCALL_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="jagcall.settings",  # real settings, no embedded server: both URLs are set
        DB_CONN_MAX_AGE="0",
        LOG_FORMAT="text",
    )
    return env


def _stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@pytest.fixture
def worker(transactional_db, tmp_path):
    """A real `celery worker` on the default queue, on this test's database; yields it and its log file."""
    data_dir = tmp_path / "data"
    log_path = tmp_path / "worker.log"
    command = [
        sys.executable, "-m", "celery", "-A", "jagcall", "worker",
        "-Q", "default", "--pool=solo", "--concurrency=1", "--without-mingle", "--without-gossip",
        "--loglevel=INFO", "-n", f"test-{uuid.uuid4().hex}@%h",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=_worker_env(data_dir), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield process, log_path
    finally:
        _stop(process)
        assert not (data_dir / "pg").exists(), "the worker started an embedded PostgreSQL"
        assert not (data_dir / "redis").exists(), "the worker started an embedded Redis"


def _result(async_result, worker_process, log_path: Path, timeout: float = 30):
    try:
        return async_result.get(timeout=timeout)
    except Exception:
        state = "running" if worker_process.poll() is None else f"exited {worker_process.returncode}"
        pytest.fail(f"task {async_result.id} failed (worker {state}):\n{log_path.read_text()[-4000:]}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_tasks_run_in_a_real_worker_on_the_test_database(worker):
    process, log_path = worker

    assert _result(ping.delay("hello"), process, log_path) == "hello"

    now = timezone.now()
    old = InvitationFactory(expires_at=now - timedelta(days=40))
    fresh = InvitationFactory()
    recently_expired = InvitationFactory(expires_at=now - timedelta(days=2))  # kept until 30 days have passed

    from accounts.tasks import invitation_purge_expired_task

    assert _result(invitation_purge_expired_task.delay(), process, log_path) == 1

    remaining = set(Invitation.objects.unscoped("test: reads across organizations").values_list("pk", flat=True))
    assert old.pk not in remaining
    assert remaining == {fresh.pk, recently_expired.pk}

    log = log_path.read_text()
    assert "jagcall.ping" in log and "accounts.tasks.invitation_purge_expired_task" in log
