"""A large CSV of contacts imported by a real Celery worker (a separate process on this test's database,
with the same keys), watched through the progress page as a member's browser polls it; a task run again
after the end, or after a run that stopped halfway, imports no row twice."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from compliance.models import AuditEvent
from jagcall.tests.test_celery import BASE_DIR, _stop, _worker_env
from messaging.models import Contact, ContactImport, ImportStatus
from messaging.services.imports import (
    IMPORT_TASK,
    _run_batch,
    contact_import_upload,
    parse_csv,
    plan_rows,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROWS = 1500
BAD_ROWS = {7: "not-a-number", 801: "12"}  # data row index -> a wrong phone


@pytest.fixture
def contacts_worker(tmp_path):
    """A real `celery worker` on the default queue (where contact_import_run goes), with this process's keys."""
    env = _worker_env(tmp_path / "data")
    env.update(
        JAGCALL_MASTER_KEYSET_FILE=str(settings.JAGCALL_MASTER_KEYSET_FILE),
        JAGCALL_BLIND_INDEX_KEYS=settings.JAGCALL_BLIND_INDEX_KEYS,
        SECRET_KEY=settings.SECRET_KEY,
    )
    log_path = tmp_path / "worker.log"
    command = [
        sys.executable, "-m", "celery", "-A", "jagcall", "worker", "-Q", "default",
        "--pool=solo", "--concurrency=1", "--without-mingle", "--without-gossip", "--loglevel=INFO",
        "-n", f"test-{uuid.uuid4().hex}@%h",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process, log_path
    finally:
        _stop(process)


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


def big_file() -> bytes:
    lines = ["phone,name,Plan"]
    for n in range(ROWS):
        phone = BAD_ROWS.get(n, f"+1212555{n:04d}")
        lines.append(f"'{phone},Person {n},=Tier {n % 3}")
    return ("\n".join(lines) + "\n").encode()


def state(job) -> ContactImport:
    return ContactImport.objects.for_org(job.organization_id).get(pk=job.pk)


def test_a_large_file_is_imported_by_the_worker_with_progress(contacts_worker, client, organization, owner, settings):
    settings.MESSAGING_IMPORT_INLINE_ROWS = 200
    Contact.objects.create(organization=organization, phone="+12125550005", name="Already here", notes="Keep")
    client.force_login(owner)
    job = contact_import_upload(organization=organization, actor=owner, file_name="big.csv", raw=big_file())
    assert job.total_rows == ROWS

    response = client.post(reverse("messaging:contact-import-confirm", kwargs={"org_slug": organization.slug, "import_id": job.id}))
    assert response.status_code == 302
    progress = reverse("messaging:contact-import-progress", kwargs={"org_slug": organization.slug, "import_id": job.id})
    first = client.get(progress).content.decode()
    assert "<progress" in first and 'hx-trigger="every 1s"' in first, "polled while it runs"

    seen_percents = set()

    def finished():
        # The state first, then the page: a page read first could predate a finish seen just after it.
        current = state(job)
        seen_percents.add(current.percent)
        html = client.get(progress).content.decode()
        return html if current.status == ImportStatus.DONE else None

    html = wait_for(finished, contacts_worker)
    assert "Import finished" in html and "hx-trigger" not in html
    done = state(job)
    assert (done.created_count, done.updated_count) == (ROWS - len(BAD_ROWS) - 1, 1)
    assert done.processed_rows == ROWS and done.content == ""
    assert [item["row"] for item in done.row_errors] == [n + 2 for n in sorted(BAD_ROWS)]
    assert Contact.objects.for_org(organization).count() == ROWS - len(BAD_ROWS)
    kept = Contact.objects.for_org(organization).get(name="Person 5")
    assert kept.notes == "Keep" and kept.custom_fields == {"Plan": "=Tier 2"}, "updated; empty cells keep values"
    (event,) = AuditEvent.objects.for_org(organization).filter(action="contact_import.completed")
    assert event.metadata == {"rows": ROWS, "created": ROWS - 3, "updated": 1, "rows_with_errors": 2}
    assert event.actor_id == owner.id
    assert max(seen_percents) == 100

    # The same task delivered again (a redelivery): nothing changes.
    from celery import current_app

    assert current_app.send_task(IMPORT_TASK, args=[str(organization.id), str(job.id)]).get(timeout=60) == "done"
    assert Contact.objects.for_org(organization).count() == ROWS - len(BAD_ROWS)
    assert AuditEvent.objects.for_org(organization).filter(action="contact_import.completed").count() == 1


def test_the_worker_resumes_an_import_stopped_halfway(contacts_worker, organization, owner):
    from celery import current_app

    job = contact_import_upload(organization=organization, actor=owner, file_name="big.csv", raw=big_file())
    # Confirmed, then one batch done by a worker that died: its progress was saved with its contacts.
    ContactImport.objects.for_org(organization).filter(pk=job.pk).update(status=ImportStatus.QUEUED)
    plans = plan_rows(parse_csv(state(job).content))
    job, finished = _run_batch(organization, job.pk, plans, 500, None)
    assert not finished and job.processed_rows == 500
    assert Contact.objects.for_org(organization).count() == 499  # row 7 of the first 500 has a wrong number

    # The message is delivered again to a new worker: it goes on at row 500.
    result = current_app.send_task(IMPORT_TASK, args=[str(organization.id), str(job.id)])
    wait_for(lambda: state(job).status == ImportStatus.DONE, contacts_worker)
    assert result.get(timeout=30) == "done"
    done = state(job)
    assert done.created_count == ROWS - len(BAD_ROWS) and done.processed_rows == ROWS
    assert Contact.objects.for_org(organization).count() == ROWS - len(BAD_ROWS)
    assert [item["row"] for item in done.row_errors] == [n + 2 for n in sorted(BAD_ROWS)]
