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
