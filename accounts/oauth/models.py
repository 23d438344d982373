"""OAuth 2.0 models: django-oauth-toolkit's, swapped to carry the organization.

Contract:
- An ``Application`` belongs to the organization that registered it
  (``organization``). It may be authorized by a person for any organization
  they belong to; that choice is made on the consent screen and travels on
  the ``Grant``, every ``AccessToken`` and every ``RefreshToken`` as their
  own ``organization``. A token acts for that organization only.
- [!!] No usable secret is stored: client secrets are hashed by the toolkit
  (``hash_client_secret`` stays on); authorization codes are stored as their
  SHA-256 (``Grant.code``); access and refresh tokens as the SHA-256 in
  ``token_checksum`` with the ``token`` column left empty
  (``COMPLIANT_BCP_RFC9700_TOKEN_STORAGE``).
- A refresh token chain ends at ``RefreshToken.expires_at``, set once when
  the code is exchanged and carried unchanged through every rotation.
- Writes go through oauth/services.py and the toolkit's endpoints
  (oauth/validators.py); reads through oauth/selectors.py.
"""

from __future__ import annotations

from django.db import models
from django.urls import reverse
from oauth2_provider.models import (
    AbstractAccessToken,
    AbstractApplication,
    AbstractGrant,
    AbstractIDToken,
    AbstractRefreshToken,
)

from accounts.models import OrganizationStatus
from accounts.tenancy import LibraryLookupManager, OrganizationOwned, OrganizationQuerySet

# Hosts an http:// redirect URI may name (RFC 8252 loopback redirects for native apps).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


TOOLKIT_LOOKUPS = (
    "django-oauth-toolkit finds these rows by the client id, code or token hash it was handed; each names its own organization"
)


class ApplicationQuerySet(OrganizationQuerySet):
    def get_by_natural_key(self, client_id):
        return self.get(client_id=client_id)


class Application(OrganizationOwned, AbstractApplication):
    """A client registered by an organization's owner or admin (oauth/services.py)."""

    created_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = LibraryLookupManager.from_queryset(ApplicationQuerySet)(TOOLKIT_LOOKUPS)

    class Meta:
        verbose_name = "OAuth application"
        ordering = ["name"]

    def natural_key(self):
        return (self.client_id,)

    def get_absolute_url(self):
        return reverse(
            "oauth:application-detail", kwargs={"org_slug": self.organization.slug, "application_id": self.id}
        )

    def get_allowed_schemes(self):
        # http is accepted for loopback addresses only; oauth_application_create refuses any other http URI.
        return ["https", "http"]

    def redirect_uri_allowed(self, uri: str) -> bool:
        """[!!] Exact string comparison with a registered URI: no prefix, port or query leeway."""
        return uri in self.redirect_uris.split()

    def is_usable(self, request) -> bool:
        # An application of a terminated organization neither issues nor honours tokens.
        return self.organization.status == OrganizationStatus.ACTIVE

    @property
    def is_confidential(self) -> bool:
        return self.client_type == self.CLIENT_CONFIDENTIAL

    @property
    def redirect_uri_list(self) -> list[str]:
        return self.redirect_uris.split()


class Grant(OrganizationOwned, AbstractGrant):
    """An authorization code (stored as its SHA-256), for the organization chosen at consent.

    An exchanged code is kept (``used_at``) until it expires, so a second
    exchange is recognised as reuse and the tokens it produced are revoked
    (RFC 6749, 4.1.2).
    """

    code = models.CharField("code (SHA-256)", max_length=64, unique=True, editable=False)
    used_at = models.DateTimeField(null=True, blank=True)
    token_family = models.UUIDField(null=True, blank=True, editable=False)

    objects = LibraryLookupManager(TOOLKIT_LOOKUPS)

    class Meta:
        verbose_name = "OAuth authorization code"


class AccessToken(OrganizationOwned, AbstractAccessToken):
    """An access token (``jc_oat_…``), known here only by its SHA-256."""

    objects = LibraryLookupManager(TOOLKIT_LOOKUPS)

    class Meta:
        verbose_name = "OAuth access token"


class RefreshToken(OrganizationOwned, AbstractRefreshToken):
    """A refresh token (``jc_ort_…``), known here only by its SHA-256; rotated on every use."""

    expires_at = models.DateTimeField(
        help_text="End of the refresh chain: set when the code is exchanged, never extended by rotation."
    )

    objects = LibraryLookupManager(TOOLKIT_LOOKUPS)

    class Meta(AbstractRefreshToken.Meta):
        verbose_name = "OAuth refresh token"


class IDToken(AbstractIDToken):
    """Swapped with the others so the toolkit's models live in one app; OpenID Connect is off, so none is made."""

    class Meta:
        verbose_name = "OAuth ID token"
