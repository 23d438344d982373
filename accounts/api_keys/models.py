"""API keys: credentials of one organization for the public API."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.tenancy import OrganizationOwned, OrganizationQuerySet

# [!!] Every key starts with this; the API's authentication tells keys from JWTs by it.
API_KEY_PREFIX = "jc_live_"


class ApiKey(OrganizationOwned):
    """A credential for the public API, acting as its organization only.

    [!!] The secret (``jc_live_<prefix>_<secret>``) is shown once, when the
    key is created; only ``prefix`` (to find the row) and a SHA-256 of the
    whole key are stored. Revocation takes effect on the next request.
    """

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="api_keys", db_index=True
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({API_KEY_PREFIX}{self.prefix}_…)"

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"
