"""Writes of the webhook base: the dedupe record and its purge."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from jagcall.kernel.webhooks.models import ReceivedWebhook

# Longest event id kept; a longer one is hashed down to this (the column is bounded, ids are the provider's).
MAX_EVENT_ID_LENGTH = 200


def _bounded(event_id: str) -> str:
    if len(event_id) <= MAX_EVENT_ID_LENGTH:
        return event_id
    import hashlib

    return "sha256:" + hashlib.sha256(event_id.encode()).hexdigest()


def received_webhook_record(*, provider: str, event_id: str, organization_id=None) -> bool:
    """Record that ``provider``'s event ``event_id`` arrived; False when it had arrived before.

    Runs inside the caller's transaction, as one statement: INSERT ... ON
    CONFLICT DO NOTHING on the (provider, event_id) unique constraint, so a
    duplicate raises nothing and leaves that transaction usable without a
    savepoint. Two deliveries of one event at once: the second waits on the
    unique index until the first commits (then it is a duplicate) or rolls
    back (then it is the one that counts).
    """
    meta = ReceivedWebhook._meta
    connection = connections[router.db_for_write(ReceivedWebhook)]
    quote = connection.ops.quote_name
    fields = [meta.get_field(name) for name in ("provider", "event_id", "received_at", "organization_id")]
    values = [provider, _bounded(event_id), timezone.now(), organization_id]
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
            f"VALUES (%s, %s, %s, %s) ON CONFLICT ({quote(fields[0].column)}, {quote(fields[1].column)}) DO NOTHING "
            f"RETURNING {quote(meta.pk.column)}",
            params,
        )
        return cursor.fetchone() is not None


@transaction.atomic
def received_webhooks_purge(*, older_than_days: int | None = None) -> int:
    """Delete dedupe records older than ``older_than_days`` (WEBHOOK_DEDUPE_DAYS); how many were deleted."""
    days = settings.WEBHOOK_DEDUPE_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=int(days))
    deleted, _ = ReceivedWebhook.objects.filter(received_at__lt=cutoff).delete()
    return deleted
