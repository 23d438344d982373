"""Processing in a real Celery worker on the "embeddings" queue: live progress, and a worker killed mid-document.

The worker is a separate process on this test's database, with the same keys and files as this process.
Progress reaches the organization's websocket group through the real Redis channel layer.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.events import org_group_name
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from jagcall.tests.test_celery import BASE_DIR, _stop, _worker_env
from knowledge.models import Chunk, Document, DocumentStatus
from knowledge.scope import organization_scope
from knowledge.selectors import search
from knowledge.services import document_add, documents_requeue_stalled, knowledge_base_create
from knowledge.tests.handbook import handbook_pages

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def start_worker(tmp_path: Path, name: str):
    env = _worker_env(tmp_path / "data")
    env.update(
        JAGCALL_MASTER_KEYSET_FILE=str(settings.JAGCALL_MASTER_KEYSET_FILE),
        JAGCALL_BLIND_INDEX_KEYS=settings.JAGCALL_BLIND_INDEX_KEYS,
        SECRET_KEY=settings.SECRET_KEY,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
    )
    log_path = tmp_path / f"{name}.log"
    command = [
        sys.executable, "-m", "celery", "-A", "jagcall", "worker", "-Q", "embeddings",
        "--pool=solo", "--concurrency=1", "--without-mingle", "--without-gossip", "--loglevel=INFO",
        "-n", f"test-{uuid.uuid4().hex}@%h",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, log_path


def wait_for(condition, worker, timeout: float = 120.0):
    process, log_path = worker
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            break
        time.sleep(0.1)
    state = "running" if process.poll() is None else "exited"
    pytest.fail(f"timed out (worker {state}):\n{Path(log_path).read_text()[-6000:]}")


def document_state(document) -> Document:
    return Document.objects.for_org(document.organization_id).get(pk=document.pk)


def visible_chunks(document) -> int:
    with organization_scope(document.organization_id):
        return Chunk.objects.for_org(document.organization_id).filter(document_id=document.pk).count()


class GroupListener:
    """Listens to an organization's websocket group, as a member's open page does."""

    def __init__(self, organization_id):
        self.layer = get_channel_layer()
        self.group = org_group_name(organization_id)
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(self.group, self.channel)

    def drain(self, until, timeout: float = 120.0) -> list[dict]:
        async def run():
            seen = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    message = await asyncio.wait_for(self.layer.receive(self.channel), timeout=1)
                except asyncio.TimeoutError:
                    continue
                seen.append(message)
                if until(message):
                    return seen
            raise AssertionError(f"the awaited event never came; got {[m['payload'] for m in seen][-5:]}")

        return async_to_sync(run)()


@pytest.fixture
def knowledge_base():
    organization = OrganizationFactory()
    owner = MembershipFactory(organization=organization, role="owner").user
    return knowledge_base_create(organization=organization, actor=owner, name="Handbook"), owner


def handbook_text(pages: int) -> bytes:
    return "\n\n".join(text for _, text in handbook_pages(pages)).encode()


def test_a_worker_processes_an_upload_and_the_organization_sees_its_progress_live(knowledge_base, tmp_path):
    base, owner = knowledge_base
    listener = GroupListener(base.organization_id)
    worker = start_worker(tmp_path, "worker")
    try:
        document = document_add(
            organization=base.organization, actor=owner, knowledge_base=base, name="handbook.md",
            content=handbook_text(8),
        )  # fmt: skip
        events = listener.drain(lambda m: m["payload"].get("status") == DocumentStatus.READY)
    finally:
        _stop(worker[0])
    payloads = [m["payload"] for m in events if m["event"] == "knowledge.document" and m["payload"]["id"] == str(document.pk)]
    statuses = [p["status"] for p in payloads]
    assert statuses[0] == DocumentStatus.QUEUED and statuses[-1] == DocumentStatus.READY
    assert DocumentStatus.PROCESSING in statuses
    done = [p["chunks_done"] for p in payloads if p["status"] == DocumentStatus.PROCESSING]
    assert done == sorted(done) and len(set(done)) >= 2  # embedding progress, step by step
    progress = [p["progress"] for p in payloads]
    assert progress == sorted(progress) and progress[-1] == 100
    final = document_state(document)
    assert final.status == DocumentStatus.READY and visible_chunks(document) == final.chunks_total > 0
    assert search(base.organization, [base], "What does the handbook say?", k=3)


def test_a_worker_killed_mid_document_leaves_it_invisible_and_it_is_processed_again(knowledge_base, tmp_path):
    base, owner = knowledge_base
    worker = start_worker(tmp_path, "first")
    try:
        document = document_add(
            organization=base.organization, actor=owner, knowledge_base=base, name="long.md",
            content=handbook_text(16),
        )  # fmt: skip
        wait_for(lambda: document_state(document).chunks_done >= 16, worker)
        worker[0].send_signal(signal.SIGKILL)  # no goodbye: as an out-of-memory kill or a lost machine
        worker[0].wait(timeout=15)
    finally:
        _stop(worker[0])

    killed = document_state(document)
    assert killed.status == DocumentStatus.PROCESSING and 0 < killed.chunks_done < killed.chunks_total
    assert visible_chunks(document) == 0  # nothing half indexed
    assert search(base.organization, [base], "opening hours", k=5) == []

    # Nothing is requeued while it might still be running...
    assert documents_requeue_stalled() == 0
    # ...but once it has been still for longer than a task may live, the sweeper queues it again.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_document SET updated_at = %s WHERE id = %s",
            [timezone.now() - timezone.timedelta(seconds=settings.KNOWLEDGE_TASK_TIME_LIMIT + 61), document.pk],
        )
    assert documents_requeue_stalled() == 1
    assert document_state(document).status == DocumentStatus.QUEUED

    second = start_worker(tmp_path, "second")
    try:
        wait_for(lambda: document_state(document).status == DocumentStatus.READY, second, timeout=180)
    finally:
        _stop(second[0])
    final = document_state(document)
    assert final.attempts == 2
    assert visible_chunks(document) == final.chunks_total == killed.chunks_total
    with organization_scope(base.organization_id), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT ordinal) FROM knowledge_chunk WHERE document_id = %s", [document.pk]
        )
        assert cursor.fetchone() == (final.chunks_total, final.chunks_total)  # each chunk once
