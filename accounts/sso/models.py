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


class SsoDomainVerification(models.TextChoices):
    DNS = "dns", "DNS TXT record"
    STAFF = "staff", "Approved by JagCall support"


class SsoDomain(OrganizationOwned):
    """An email domain an organization claims for single sign-on, and whether it proved it.

    [!!] Single sign-on provisions people just in time, and links an existing
    member by email, only for addresses in a verified domain of the
    organization (``verified_at`` set). Proof is a DNS TXT record carrying this
    row's token, or approval by support staff in the back office.

    Several organizations may claim the same domain (two teams of one company
    each have their own JagCall organization); each proves it with its own
    token, so one organization's record never verifies another's claim.
    """

    audit_resource_type = "sso_domain"

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="sso_domains", db_index=True
    )
    domain = models.CharField(max_length=253, help_text="Lower case, IDNA (xn--) form, no trailing dot.")
    token = models.CharField(max_length=64, help_text="Published in DNS; proves nothing once another row holds it.")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_method = models.CharField(max_length=10, choices=SsoDomainVerification.choices, blank=True)
    verified_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_checked_at = models.DateTimeField(null=True, blank=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "domain"], name="accounts_ssodomain_unique"),
            models.UniqueConstraint(fields=["token"], name="accounts_ssodomain_token_unique"),
        ]
        ordering = ["domain"]

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None

    def __str__(self) -> str:
        state = "verified" if self.is_verified else "pending"
        return f"{self.domain} ({state}) for {self.organization}"
