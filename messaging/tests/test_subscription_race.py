"""Two opt-outs of one pair at once (a STOP and a carrier's refusal, say): one row, one change, no error.

Real PostgreSQL, one connection per thread: the second writer finds no row, its insert waits on the
first one's uncommitted row, and once that commits it reads the row, locked, and has nothing to change.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections, transaction

from messaging.models import ChangeVia, Subscription, SubscriptionChange
from messaging.services.subscriptions import subscription_set, webhook_actor
from telephony.tests.factories import PhoneNumberFactory

pytestmark = pytest.mark.django_db(transaction=True)

TEXTER = "+12129870188"


def test_two_opt_outs_of_one_pair_at_once_leave_one_row_and_one_change(organization):
    number = PhoneNumberFactory(organization=organization, sms_enabled=True)
    first_wrote = threading.Event()
    results: dict[str, object] = {}

    def opt_out(name: str, hold: float) -> None:
        try:
            with transaction.atomic():
                results[name] = subscription_set(
                    phone_number=number, recipient=TEXTER, subscribed=False, via=ChangeVia.KEYWORD,
                    actor=webhook_actor(organization), keyword="STOP",
                )  # fmt: skip
                if hold:
                    first_wrote.set()
                    time.sleep(hold)  # the second writer starts while this row is not committed
        except Exception as error:  # reported by the test
            results[name] = error
        finally:
            connections.close_all()

    first = threading.Thread(target=opt_out, args=("first", 0.5))
    first.start()
    assert first_wrote.wait(timeout=30)
    started = time.monotonic()
    second = threading.Thread(target=opt_out, args=("second", 0))
    second.start()
    first.join(timeout=60)
    second.join(timeout=60)

    assert isinstance(results["first"], SubscriptionChange), results
    assert results["second"] is None, results  # nothing left to change, and no IntegrityError
    assert time.monotonic() - started >= 0.3  # the second did wait for the first to commit
    rows = Subscription.objects.for_org(organization).filter(phone_number=number)
    assert [(row.recipient, row.subscribed) for row in rows] == [(TEXTER, False)]
    assert SubscriptionChange.objects.for_org(organization).count() == 1


def _texts_at_once(number, first_body: str, second_body: str, hold: float = 0.5) -> dict:
    """Two texts of one returning sender to ``number``, each in its own transaction and connection: the second
    arrives while the first, done, has not committed yet."""
    from messaging.services.inbound import message_receive
    from messaging.tests.support import message_sid

    first_done = threading.Event()
    results: dict[str, object] = {}

    def receive(name: str, body: str, hold: float) -> None:
        try:
            with transaction.atomic():
                results[name] = message_receive(
                    phone_number=number, from_number=TEXTER, body=body, message_sid=message_sid()
                )
                if hold:
                    first_done.set()
                    time.sleep(hold)
        except Exception as error:  # reported by the test
            results[name] = error
        finally:
            connections.close_all()

    first = threading.Thread(target=receive, args=("first", first_body, hold))
    first.start()
    assert first_done.wait(timeout=30)
    second = threading.Thread(target=receive, args=("second", second_body, 0))
    second.start()
    first.join(timeout=60)
    second.join(timeout=60)
    assert not first.is_alive() and not second.is_alive(), "the two texts deadlocked"
    return results


@pytest.fixture
def returning(organization):
    from messaging.tests.support import make_conversation

    number = PhoneNumberFactory(organization=organization, sms_enabled=True)
    make_conversation(organization, phone_number=number, contact_number=TEXTER)
    return number


def test_a_first_stop_and_another_stop_at_once_opt_out_and_list_the_sender_once(organization, returning):
    from compliance.models import DoNotCallEntry

    results = _texts_at_once(returning, "STOP", "stop please")
    assert "unsubscribed" in results["first"].twiml, results
    assert "<Message>" not in results["second"].twiml, results  # nothing left to change: no second confirmation
    assert [row.subscribed for row in Subscription.objects.for_org(organization)] == [False]
    assert SubscriptionChange.objects.for_org(organization).count() == 1
    assert DoNotCallEntry.objects.for_org(organization).count() == 1


def test_a_start_that_waited_on_a_first_stop_subscribes_again(organization, returning):
    results = _texts_at_once(returning, "STOP", "START")
    assert "unsubscribed" in results["first"].twiml, results
    assert "subscribed again" in results["second"].twiml, results  # it saw the STOP that committed meanwhile
    assert [row.subscribed for row in Subscription.objects.for_org(organization)] == [True]
    assert SubscriptionChange.objects.for_org(organization).count() == 2


def test_stopall_and_stop_to_the_same_number_at_once_neither_deadlock_nor_fail(organization, returning):
    other = PhoneNumberFactory(organization=organization, sms_enabled=True)
    results = _texts_at_once(returning, "STOPALL", "STOP")
    assert "any of our numbers" in results["first"].twiml, results
    assert not isinstance(results["second"], Exception), results
    assert {(row.phone_number_id, row.subscribed) for row in Subscription.objects.for_org(organization)} == {
        (returning.pk, False), (other.pk, False)
    }


def test_a_stop_waiting_on_its_conversation_holds_no_lock_on_the_subscription_yet(organization, returning):
    """Every text takes the conversation's lock before the subscription's (STOPALL then locks each number's): a
    STOP that reads its subscription with the conversation must not lock it first, or a STOPALL holding the
    conversation and a STOP holding the subscription would wait on each other."""
    from django.db import connection

    from messaging.models import Conversation
    from messaging.services.inbound import message_receive
    from messaging.tests.support import message_sid

    subscription_set(phone_number=returning, recipient=TEXTER, subscribed=False, via=ChangeVia.KEYWORD,
                     actor=webhook_actor(organization), keyword="STOP")  # fmt: skip
    subscription_set(phone_number=returning, recipient=TEXTER, subscribed=True, via=ChangeVia.KEYWORD,
                     actor=webhook_actor(organization), keyword="START")  # fmt: skip
    row = Subscription.objects.for_org(organization).get()
    held, checked = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def hold_conversation() -> None:
        try:
            with transaction.atomic():
                list(Conversation.objects.for_org(organization).select_for_update())
                held.set()
                checked.wait(timeout=30)
        finally:
            connections.close_all()

    def stop() -> None:
        try:
            results["stop"] = message_receive(
                phone_number=returning, from_number=TEXTER, body="STOP", message_sid=message_sid()
            )
        except Exception as error:  # reported by the test
            results["stop"] = error
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_conversation)
    holder.start()
    assert held.wait(timeout=30)
    stopper = threading.Thread(target=stop)
    stopper.start()
    try:
        deadline = time.monotonic() + 30
        while True:  # until the STOP waits for a lock
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if cursor.fetchone()[0]:
                    break
            assert time.monotonic() < deadline, "the STOP never waited on the conversation"
            time.sleep(0.01)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT id FROM messaging_subscription WHERE id = %s FOR UPDATE NOWAIT", [row.pk])
            assert cursor.fetchone() is not None  # not locked by the waiting STOP
    finally:
        checked.set()
        holder.join(timeout=60)
        stopper.join(timeout=60)
    assert "unsubscribed" in results["stop"].twiml, results
    row.refresh_from_db()
    assert row.subscribed is False
