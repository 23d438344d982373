from django.db import models
from django.utils import timezone


class ReceivedWebhook(models.Model):
    """One delivery of a provider's event, kept to answer its retries without acting twice.

    Written in the same transaction as the event's handling
    (``SignedWebhookView``): a handler that fails rolls this row back too, so
    the provider's retry is processed. Rows older than WEBHOOK_DEDUPE_DAYS are
    purged every day (``received_webhooks_purge``); providers retry for far
    less long (Twilio: minutes; Stripe: three days).

    The organization is a plain id, not a foreign key: the kernel imports no
    app. It is null when the event names none (or before one is known).
    """

    provider = models.CharField(max_length=40)
    event_id = models.CharField(max_length=200)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    organization_id = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="webhooks_received_provider_event_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_id}"
