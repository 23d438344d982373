"""Dedupe records of signed inbound webhooks (jagcall/kernel/webhooks): one per (provider, event id), purged."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from jagcall.kernel.webhooks.models import ReceivedWebhook
from jagcall.kernel.webhooks.services import MAX_EVENT_ID_LENGTH, received_webhook_record, received_webhooks_purge

pytestmark = pytest.mark.django_db


def test_the_application_role_records_reads_and_purges_deliveries():
    """The tests connect as the restricted application role, as production does: the table's grants suffice."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT r.rolsuper, pg_has_role(current_user, c.relowner, 'USAGE')
            FROM pg_roles r, pg_class c
            WHERE r.rolname = current_user AND c.oid = 'webhooks_receivedwebhook'::regclass
            """
        )
        superuser, owner = cursor.fetchone()
    assert not superuser and not owner  # the restricted role, granted its rights after migrate

    org_id = uuid.uuid4()
    assert received_webhook_record(provider="twilio", event_id="idem-1", organization_id=org_id) is True
    row = ReceivedWebhook.objects.get(provider="twilio", event_id="idem-1")
    assert row.organization_id == org_id
    ReceivedWebhook.objects.filter(pk=row.pk).update(received_at=timezone.now() - timedelta(days=31))
    assert received_webhooks_purge() == 1


def test_a_second_delivery_is_a_duplicate_and_leaves_the_transaction_usable():
    with transaction.atomic():
        assert received_webhook_record(provider="twilio", event_id="idem-2") is True
        assert received_webhook_record(provider="twilio", event_id="idem-2") is False
        assert received_webhook_record(provider="stripe", event_id="idem-2") is True  # per provider
        assert ReceivedWebhook.objects.filter(event_id="idem-2").count() == 2


def test_an_overlong_event_id_is_kept_by_its_hash():
    long_id = "x" * (MAX_EVENT_ID_LENGTH + 50)
    assert received_webhook_record(provider="twilio", event_id=long_id) is True
    assert received_webhook_record(provider="twilio", event_id=long_id) is False
    assert ReceivedWebhook.objects.get(provider="twilio").event_id.startswith("sha256:")


def test_the_purge_keeps_what_providers_may_still_retry(settings):
    settings.WEBHOOK_DEDUPE_DAYS = 30
    now = timezone.now()
    for days, event_id in ((29, "recent"), (31, "old"), (400, "ancient")):
        ReceivedWebhook.objects.create(provider="twilio", event_id=event_id, received_at=now - timedelta(days=days))
    assert received_webhooks_purge() == 2
    assert list(ReceivedWebhook.objects.values_list("event_id", flat=True)) == ["recent"]
    assert received_webhooks_purge(older_than_days=7) == 1


def test_the_purge_runs_every_day_from_the_beat_schedule(settings):
    from jagcall.celery import app
    from jagcall.kernel.webhooks.tasks import received_webhooks_purge_task

    entry = settings.CELERY_BEAT_SCHEDULE["received-webhooks-purge"]
    assert entry["task"] == received_webhooks_purge_task.name
    assert entry["task"] in app.tasks
    ReceivedWebhook.objects.create(provider="twilio", event_id="old", received_at=timezone.now() - timedelta(days=60))
    assert received_webhooks_purge_task() == 1
