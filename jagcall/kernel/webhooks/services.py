"""Writes of the webhook base: the dedupe record and its purge."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
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

    Runs inside the caller's transaction (in a savepoint, so a duplicate
    leaves that transaction usable). Two deliveries of one event at once:
    the second waits on the unique index until the first commits (then it is
    a duplicate) or rolls back (then it is the one that counts).
    """
    try:
        with transaction.atomic():
            ReceivedWebhook.objects.create(
                provider=provider, event_id=_bounded(event_id), organization_id=organization_id
            )
    except IntegrityError:
        return False
    return True


@transaction.atomic
def received_webhooks_purge(*, older_than_days: int | None = None) -> int:
    """Delete dedupe records older than ``older_than_days`` (WEBHOOK_DEDUPE_DAYS); how many were deleted."""
    days = settings.WEBHOOK_DEDUPE_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=int(days))
    deleted, _ = ReceivedWebhook.objects.filter(received_at__lt=cutoff).delete()
    return deleted
