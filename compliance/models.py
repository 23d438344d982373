"""The audit log: one append-only table of events, hash-chained per organization.

Rows are written only by ``compliance.services.audit_record`` and removed only by
the retention purge (``compliance.services.audit_purge_expired``). The database
refuses every other UPDATE, DELETE and TRUNCATE (migration 0002's trigger);
see docs/security/audit.md.

Why ``organization`` may be NULL: some events belong to no organization, e.g.
a failed sign-in for an email nobody has, a person's own sign-in or password
change, a refused API token. They form the platform chain, visible to support
staff in the back office and never on an organization's pages. Every event
that concerns an organization carries it.

Not an ``OrganizationOwned`` model for that reason (its ``organization`` is
required); it keeps the same scoped queryset (``for_org`` / ``unscoped``) and
the same PROTECT rule.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.utils import timezone

from accounts.tenancy import OrganizationOwned, OrganizationQuerySet
from compliance.chain import uuid7
from jagcall.kernel.crypto.blind_index import BlindIndexField
from jagcall.kernel.crypto.fields import EncryptedTextField
from jagcall.kernel.phone import normalize_for_index


class ActorType(models.TextChoices):
    USER = "user", "Person"
    API_KEY = "api_key", "API key"
    OAUTH_APPLICATION = "oauth_application", "OAuth application"
    SUPPORT = "support", "JagCall support"
    SYSTEM = "system", "System"
    # Nobody signed in, e.g. a sign-in attempt for an unknown email.
    ANONYMOUS = "anonymous", "Anonymous"


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    DENIED = "denied", "Denied"
    FAILED = "failed", "Failed"


class AuditEventQuerySet(OrganizationQuerySet):
    def platform(self) -> "AuditEventQuerySet":
        """Events that belong to no organization (back office only)."""
        return self.filter(organization__isnull=True)

    def for_chain(self, organization_id) -> "AuditEventQuerySet":
        """One chain: an organization's events, or the platform's when ``organization_id`` is None."""
        if organization_id is None:
            return self.filter(organization__isnull=True)
        return self.filter(organization_id=organization_id)


class AuditEvent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    occurred_at = models.DateTimeField(default=timezone.now, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # every index below starts with it
    )
    seq = models.BigIntegerField(help_text="Position in the organization's chain (the platform's when none).")
    actor_type = models.CharField(max_length=20, choices=ActorType.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The person, while their account exists. actor_key keeps who it was.",
    )
    # Stable identity at write time, hashed: "user:<id>", "api_key:<prefix>", "oauth_application:<id>", "system".
    actor_key = models.CharField(max_length=100, blank=True)
    # What people read: the email, jc_live_<prefix> or the application's name, as it was then.
    actor_label = models.CharField(max_length=254, blank=True)
    api_key_prefix = models.CharField(max_length=16, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    action = models.CharField(max_length=100, help_text="resource.verb, e.g. member.role_changed")
    resource_type = models.CharField(max_length=60, blank=True)
    resource_id = models.CharField(max_length=100, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)
    # {"field": {"before": …, "after": …}}, redacted (compliance.services.audit_changes).
    changes = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "seq"], name="audit_event_org_seq_uniq"),
            models.UniqueConstraint(
                fields=["seq"], condition=Q(organization__isnull=True), name="audit_event_platform_seq_uniq"
            ),
            models.CheckConstraint(condition=Q(outcome__in=Outcome.values), name="audit_event_outcome_valid"),
            models.CheckConstraint(condition=Q(actor_type__in=ActorType.values), name="audit_event_actor_type_valid"),
        ]
        indexes = [
            # The listing and date ranges: newest first, keyset on (occurred_at, id).
            models.Index(fields=["organization", "-occurred_at", "-id"], name="audit_evt_org_time_idx"),
            # action = 'member.removed' and action LIKE 'member.%' (pattern ops: any collation).
            models.Index(
                fields=["organization", "action", "-occurred_at"],
                opclasses=["", "varchar_pattern_ops", ""],
                name="audit_evt_org_action_idx",
            ),
            models.Index(
                fields=["organization", "resource_type", "resource_id", "-occurred_at"], name="audit_evt_org_resource_idx"
            ),
            models.Index(fields=["organization", "actor_key", "-occurred_at"], name="audit_evt_org_actor_idx"),
            models.Index(fields=["organization", "ip", "-occurred_at"], name="audit_evt_org_ip_idx"),
            # "What went wrong": denied and failed events are few, so a small partial index.
            models.Index(
                fields=["organization", "-occurred_at", "-id"],
                condition=~Q(outcome="success"),
                name="audit_evt_org_unsuccessful_idx",
            ),
            # The back office lists every organization's events newest first.
            models.Index(fields=["-occurred_at", "-id"], name="audit_evt_time_idx"),
            # Free text on who: ILIKE '%acme.test%' (Django's icontains is UPPER(…) LIKE UPPER(…)).
            GinIndex(OpClass(Upper("actor_label"), name="gin_trgm_ops"), name="audit_evt_actor_label_trgm"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label or self.actor_type} at {self.occurred_at:%Y-%m-%d %H:%M:%S} UTC"


class AuditChainCheckpoint(models.Model):
    """Where a purged segment of a chain ended: verification resumes from here.

    Written by the retention purge in the same transaction as the DELETE,
    before it; never changed or deleted afterwards (the same trigger guards it).
    """

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    seq = models.BigIntegerField(help_text="seq of the last purged event")
    hash = models.CharField(max_length=64, help_text="hash of the last purged event")
    occurred_at = models.DateTimeField(help_text="when the last purged event happened")
    events_purged = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "seq"], name="audit_checkpoint_org_seq_uniq"),
            models.UniqueConstraint(
                fields=["seq"], condition=Q(organization__isnull=True), name="audit_checkpoint_platform_seq_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"checkpoint at seq {self.seq}"


# --- do-not-call ----------------------------------------------------------------------------


class DoNotCallReason(models.TextChoices):
    REQUESTED = "requested", "The person asked not to be called"
    CONSENT_REVOKED = "consent_revoked", "Consent was revoked"
    COMPLAINT = "complaint", "Complaint"
    WRONG_NUMBER = "wrong_number", "Wrong number"
    LEGAL = "legal", "Legal or regulatory request"
    OTHER = "other", "Other"


class DoNotCallSource(models.TextChoices):
    PORTAL = "portal", "Portal"
    API = "api", "API"
    CALL = "call", "During a call"
    SMS = "sms", "By text message"
    BACK_OFFICE = "back_office", "JagCall support"


class DoNotCallEntry(OrganizationOwned):
    """A number the organization must not call or text (its internal do-not-call list, 47 CFR 64.1200(d)).

    The number is personal data: encrypted, found by its blind index in the
    form ``jagcall.kernel.phone.normalize_for_index`` gives, so
    ``+1 (415) 555-0100`` and ``+14155550100`` are one entry. Written only by
    ``compliance.services.do_not_call_add`` / ``do_not_call_remove`` (audited).
    """

    number = EncryptedTextField()
    number_index = BlindIndexField(source="number", purpose="compliance.do_not_call", normalize=normalize_for_index)
    reason = models.CharField(max_length=20, choices=DoNotCallReason.choices, default=DoNotCallReason.REQUESTED)
    source = models.CharField(max_length=20, choices=DoNotCallSource.choices, default=DoNotCallSource.PORTAL)
    # Who added it: the actor's audit label as it was then (an email, jc_live_<prefix>, "twilio webhook").
    added_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "do-not-call entry"
        verbose_name_plural = "do-not-call entries"
        constraints = [
            models.UniqueConstraint(fields=["organization", "number_index"], name="compliance_dnc_number_once"),
        ]
        indexes = [models.Index(fields=["organization", "-created_at", "-id"], name="compliance_dnc_org_recent")]

    def __str__(self) -> str:
        return f"do-not-call entry {self.id}"
