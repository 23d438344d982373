"""Concurrent writers never fork a chain: real PostgreSQL, one connection per thread and per process."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from django.db import connections, transaction

from compliance.models import AuditEvent
from compliance.selectors import audit_chain_verify

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 8
EVENTS_EACH = 25


def _write(organization_id, count, errors, barrier):
    from accounts.models import Organization
    from compliance.services import audit_record

    try:
        organization = Organization.objects.get(pk=organization_id) if organization_id else None
        barrier.wait(timeout=30)
        for n in range(count):
            if n % 3 == 0:
                # Inside a caller's transaction, with other work after the event.
                with transaction.atomic():
                    audit_record(action="member.invited", organization=organization, metadata={"n": n})
                    Organization.objects.filter(pk=organization_id).exists()
            else:
                audit_record(action="member.invited", organization=organization, metadata={"n": n})
    except Exception as exc:  # reported by the test
        errors.append(exc)
    finally:
        connections.close_all()


@pytest.mark.parametrize("chain", ["organization", "platform"])
def test_threads_writing_one_chain_never_fork_it(organization, other_organization, chain):
    organization_id = organization.id if chain == "organization" else None
    errors: list = []
    barrier = threading.Barrier(WRITERS + 1)
    threads = [
        threading.Thread(target=_write, args=(organization_id, EVENTS_EACH, errors, barrier)) for _ in range(WRITERS)
    ]
    # A writer of another chain at the same time: chains do not wait for each other.
    other = threading.Thread(target=_write, args=(other_organization.id, EVENTS_EACH, errors, threading.Barrier(1)))
    for thread in threads:
        thread.start()
    other.start()
    barrier.wait(timeout=30)
    for thread in [*threads, other]:
        thread.join(timeout=120)
    assert not errors, errors
    seqs = list(AuditEvent.objects.for_chain(organization_id).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, WRITERS * EVENTS_EACH + 1))
    report = audit_chain_verify(organization_id=organization_id)
    assert report.ok, report.broken
    assert audit_chain_verify(organization_id=other_organization.id).ok


def _process_writer(organization_id, count, start_event):
    errors: list = []
    start_event.wait(timeout=60)
    _write(organization_id, count, errors, threading.Barrier(1))
    if errors:
        raise SystemExit(f"writer failed: {errors[0]!r}")


def test_processes_writing_one_chain_never_fork_it(organization):
    """Separate processes (as web and worker containers are), each with its own connection."""
    context = multiprocessing.get_context("fork")
    connections.close_all()  # each child opens its own connection (to this test database)
    start = context.Event()
    processes = [context.Process(target=_process_writer, args=(organization.id, 20, start)) for _ in range(4)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * len(processes)
    seqs = list(AuditEvent.objects.for_org(organization).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 81))
    assert audit_chain_verify(organization_id=organization.id).ok


class _Undo(Exception):
    pass


def _write_several_per_transaction(organization_id, transactions, errors, barrier):
    """Each transaction: an event, one rolled back with its savepoint, then two more (read from the cached head)."""
    from accounts.models import Organization
    from compliance.services import audit_record

    try:
        organization = Organization.objects.get(pk=organization_id)
        barrier.wait(timeout=30)
        for n in range(transactions):
            with transaction.atomic():
                audit_record(action="member.invited", organization=organization, metadata={"n": n, "step": 1})
                try:
                    with transaction.atomic():
                        audit_record(action="member.removed", organization=organization, metadata={"n": n})
                        raise _Undo
                except _Undo:
                    pass
                audit_record(action="member.invited", organization=organization, metadata={"n": n, "step": 2})
                audit_record(action="member.invited", organization=organization, metadata={"n": n, "step": 3})
    except Exception as exc:  # reported by the test
        errors.append(exc)
    finally:
        connections.close_all()


def test_writers_of_several_events_per_transaction_never_fork_the_chain(organization):
    """The head a transaction remembers is its own: other transactions, before and after, are read afresh."""
    errors: list = []
    barrier = threading.Barrier(WRITERS + 1)
    threads = [
        threading.Thread(target=_write_several_per_transaction, args=(organization.id, 10, errors, barrier))
        for _ in range(WRITERS // 2)
    ] + [
        threading.Thread(target=_write, args=(organization.id, 10, errors, barrier)) for _ in range(WRITERS // 2)
    ]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=30)
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    events = AuditEvent.objects.for_org(organization)
    assert not events.filter(action="member.removed").exists()  # rolled back with their savepoints
    seqs = list(events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, (WRITERS // 2) * 10 * 3 + (WRITERS // 2) * 10 + 1))
    report = audit_chain_verify(organization_id=organization.id)
    assert report.ok, report.broken
