from django.db import models
from django.utils import timezone


class OrganizationKeyset(models.Model):
    """An organization's data keysets, wrapped (encrypted) by the master keyset.

    [!!] Key material never appears here in clear. Destroying the wrapped
    keysets (crypto-shredding) makes every ciphertext of the organization,
    in the database, in files and in backups, unreadable.

    The organization is a plain id, not a foreign key: the kernel imports no
    app. The app that owns tenants registers them
    (``jagcall.kernel.crypto.registry.register_tenant_model``); deleting a
    tenant then destroys its keys here and leaves this row as the record.
    """

    organization_id = models.UUIDField(primary_key=True, db_column="organization_id")
    aead_keyset = models.BinaryField(null=True, editable=False)
    streaming_keyset = models.BinaryField(null=True, editable=False)
    master_key_id = models.BigIntegerField(null=True, editable=False, help_text="Master key that wrapped these keysets")
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last new primary key was added (older keys stopped being primary then)"
    )
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(destroyed_at__isnull=True, aead_keyset__isnull=False, streaming_keyset__isnull=False)
                | models.Q(destroyed_at__isnull=False, aead_keyset__isnull=True, streaming_keyset__isnull=True),
                name="crypto_keyset_present_unless_destroyed",
            )
        ]

    def __str__(self) -> str:
        return f"keys of {self.organization_id}"


class ReencryptionCheckpoint(models.Model):
    """Where `manage.py reencrypt` got to, per model, so it can resume."""

    target = models.CharField(max_length=200, unique=True, help_text="app_label.model (fields) or app_label.model:files")
    last_pk = models.CharField(max_length=64, blank=True)
    done = models.PositiveBigIntegerField(default=0)
    rewritten = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.target


class PlatformKeyset(models.Model):
    """A data keyset not tied to one organization (e.g. a person's TOTP secret), wrapped by the master."""

    name = models.CharField(max_length=40, primary_key=True)
    aead_keyset = models.BinaryField(editable=False)
    master_key_id = models.BigIntegerField(null=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"platform keyset {self.name}"
