"""Reads of an organization's own provider credentials (never their secrets, unless a client needs them)."""

from __future__ import annotations

from dataclasses import dataclass

from integrations.models import Provider, ProviderCredential


@dataclass(frozen=True)
class ProviderAccount:
    """What the "Provider accounts" page shows of one provider: JagCall's account or the organization's own."""

    provider: str
    label: str
    credential: ProviderCredential | None

    @property
    def is_own(self) -> bool:
        return self.credential is not None


def credential_get(*, organization, provider: str) -> ProviderCredential | None:
    """The organization's own credential for ``provider``, or None when it uses JagCall's account."""
    return ProviderCredential.objects.for_org(organization).filter(provider=provider).first()


def provider_account_list(*, organization) -> list[ProviderAccount]:
    """Every provider, in the order of ``Provider``, with the organization's credential where it has one."""
    # Values decrypt lazily, on access: listing the credentials decrypts none of them.
    credentials = {c.provider: c for c in ProviderCredential.objects.for_org(organization)}
    return [ProviderAccount(provider=value, label=label, credential=credentials.get(value)) for value, label in Provider.choices]
