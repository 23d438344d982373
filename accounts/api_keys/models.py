"""API keys: credentials of one organization for the public API."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.permissions import Role
from accounts.tenancy import OrganizationOwned, OrganizationQuerySet

# [!!] Every key starts with this; the API's authentication tells keys from JWTs by it.
API_KEY_PREFIX = "jc_live_"


class ApiKey(OrganizationOwned):
    """A credential for the public API, acting as its organization only.

    Two kinds, by who stands behind the key's rights:
    - a person's key (``created_by``): it acts within its creator's *current*
      role in the organization; when they are demoted its reach shrinks with
      them, and when they are removed or demoted the person who did it
      chooses whether their keys are revoked or handed to themselves;
    - a service key (``service_role``, made by the operator's
      ``create_api_key`` command for integrations that belong to no one): it
      acts within the role it was given at creation.
    Its effective scopes are always its own scopes intersected with that
    role's (accounts.principals.Principal.for_api_key).

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
    service_role = models.CharField(
        max_length=10,
        choices=Role.choices,
        blank=True,
        default="",
        help_text="For a service key (no creator): the role whose rights it acts within.",
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
