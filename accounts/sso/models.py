"""Single sign-on's rows: an organization's identity provider, and the people it names."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.tenancy import OrganizationOwned, OrganizationQuerySet


class SamlConfiguration(OrganizationOwned):
    """An organization's SAML 2.0 identity provider (Enterprise plan): at most one.

    The IdP metadata is pasted by an owner and stored as is; ``idp_metadata_url``
    is kept for reference only (nothing fetches it).
    """

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.PROTECT, related_name="saml_configuration"
    )
    idp_entity_id = models.CharField(max_length=1024)
    idp_metadata_xml = models.TextField()
    idp_metadata_url = models.URLField(max_length=1024, blank=True)
    enabled = models.BooleanField(default=False)
    require_sso = models.BooleanField(
        default=False, help_text="Members other than owners must sign in through single sign-on."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrganizationQuerySet.as_manager()

    def __str__(self) -> str:
        return f"SAML for {self.organization}"


class SamlIdentity(OrganizationOwned):
    """A person as an organization's identity provider names them.

    Keyed on (IdP entityID, NameID), never on email; the key is scoped to the
    organization too (style rule 8), so two organizations that point at the
    same IdP never share an identity.
    """

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="saml_identities", db_index=True
    )
    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="saml_identities")
    idp_entity_id = models.CharField(max_length=1024)
    name_id = models.CharField(max_length=1024)
    created_at = models.DateTimeField(default=timezone.now)
    last_login_at = models.DateTimeField(null=True, blank=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idp_entity_id", "name_id"], name="accounts_samlidentity_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name_id} at {self.idp_entity_id}"
