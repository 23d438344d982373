"""An organization's own provider accounts ("bring your own account"): connect, replace, disconnect.

A credential is saved only after the provider accepted it in a cheap call
made through the official SDK (jagcall.kernel.providers): Twilio fetches the
account, OpenAI and Anthropic list models, Deepgram lists projects,
ElevenLabs lists one voice. A refusal is an ApplicationError naming the
field to fix, and nothing is written.

[!!] The secret is stored only encrypted with the organization's keys
(ProviderCredential.values); afterwards it is shown, logged and audited
only as its last four characters. The audit events name the provider, the
last four characters and, for Twilio, the account SID (an identifier, not a
secret), never the secret itself.

Other apps that depend on a provider account (telephony's numbers live in a
Twilio account) may refuse a disconnection or a switch to another account
through the ``credential_changing`` signal: a receiver raises
ApplicationError with what to do first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from accounts.principals import as_principal
from compliance.services.audit import audit_record
from integrations.models import Provider, ProviderCredential
from jagcall.kernel import providers
from jagcall.kernel.errors import ApplicationError

# Sent inside the transaction before a credential is removed or points at another account.
# kwargs: organization, provider, account_sid (the current one), new_account_sid (None on removal).
credential_changing = Signal()

PERMISSION = "organization.update"
_TWILIO_ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")
_MAX_SECRET_LENGTH = 500


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    secret: bool


# What each provider needs; the secret's last four characters are what the portal shows.
FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    Provider.TWILIO: (
        FieldSpec("account_sid", "Account SID", secret=False),
        FieldSpec("auth_token", "Auth token", secret=True),
    ),
    Provider.OPENAI: (FieldSpec("api_key", "API key", secret=True),),
    Provider.ANTHROPIC: (FieldSpec("api_key", "API key", secret=True),),
    Provider.DEEPGRAM: (FieldSpec("api_key", "API key", secret=True),),
    Provider.ELEVENLABS: (FieldSpec("api_key", "API key", secret=True),),
}


def _secret_field(provider: str) -> str:
    return next(spec.name for spec in FIELDS[provider] if spec.secret)


def _clean_values(provider: str, values: dict) -> dict[str, str]:
    if provider not in FIELDS:
        raise ApplicationError(
            f"Unknown provider {provider!r}: choose one of {', '.join(Provider.values)}.", field="provider"
        )
    cleaned = {}
    for spec in FIELDS[provider]:
        value = str((values or {}).get(spec.name) or "").strip()
        if not value:
            raise ApplicationError(f"Enter the {spec.label}.", code="required", field=spec.name)
        if len(value) > _MAX_SECRET_LENGTH or any(ch.isspace() for ch in value):
            raise ApplicationError(
                f"This {spec.label} cannot be right: copy it again from the provider's console.", field=spec.name
            )
        cleaned[spec.name] = value
    if provider == Provider.TWILIO and not _TWILIO_ACCOUNT_SID.match(cleaned["account_sid"]):
        raise ApplicationError(
            "A Twilio account SID is AC followed by 32 hexadecimal characters (see the Twilio console's home page).",
            field="account_sid",
        )
    # From now on the secret is redacted from every log line and provider message.
    providers.register_secret(cleaned[_secret_field(provider)])
    return cleaned


def _verify(provider: str, values: dict[str, str]) -> None:
    """One cheap call with these credentials; ProviderError when the provider refuses them."""
    operation = "verify credentials"
    with providers.provider_operation(provider, operation):
        if provider == Provider.TWILIO:
            client = providers.twilio_client(values["account_sid"], values["auth_token"])
            account = client.api.v2010.accounts(values["account_sid"]).fetch()
            if account.status != "active":
                raise providers.ProviderError(
                    provider, operation, f"the account is {account.status}: reactivate it in the Twilio console first"
                )
        elif provider == Provider.OPENAI:
            providers.openai_client(values["api_key"]).models.list()
        elif provider == Provider.ANTHROPIC:
            providers.anthropic_client(values["api_key"]).models.list(limit=1)
        elif provider == Provider.DEEPGRAM:
            providers.deepgram_client(values["api_key"]).manage.v1.projects.list()
        elif provider == Provider.ELEVENLABS:
            client = providers.elevenlabs_client(values["api_key"])
            client.voices.search(page_size=1, request_options=providers.elevenlabs_request_options())


def _refusal(provider: str, error: providers.ProviderError) -> ApplicationError:
    label = Provider(provider).label
    if error.status in (401, 403):
        what = "the account SID and auth token" if provider == Provider.TWILIO else "the API key"
        message = f"{label} refused these credentials: check {what} and paste them again. Nothing was saved."
        return ApplicationError(message, code="credentials_refused", field=_secret_field(provider))
    return ApplicationError(
        f"{label} could not confirm these credentials ({error.message}). Nothing was saved.",
        code="provider_unavailable" if error.retryable else "credentials_refused",
        status=503 if error.retryable else 400,
    )


def credential_save(*, organization, actor, provider: str, values: dict) -> ProviderCredential:
    """Connect (or replace) the organization's own account at ``provider``, once the provider accepted it."""
    principal = as_principal(actor, organization)
    principal.require(PERMISSION)
    cleaned = _clean_values(provider, values)
    try:
        # Outside any transaction: no row is locked while the provider answers.
        _verify(provider, cleaned)
    except providers.ProviderError as error:
        raise _refusal(provider, error) from None
    return _store(organization=organization, principal=principal, provider=provider, values=cleaned)


@transaction.atomic
def _store(*, organization, principal, provider: str, values: dict[str, str]) -> ProviderCredential:
    secret = values[_secret_field(provider)]
    account_sid = values.get("account_sid", "")
    credential = (
        ProviderCredential.objects.for_org(organization).select_for_update().filter(provider=provider).first()
    )
    before = None if credential is None else {"last4": credential.last4, "account_sid": credential.account_sid}
    if credential is not None and credential.account_sid != account_sid:
        credential_changing.send(
            sender=ProviderCredential, organization=organization, provider=provider,
            account_sid=credential.account_sid, new_account_sid=account_sid,
        )  # fmt: skip
    if credential is None:
        credential = ProviderCredential(organization=organization, provider=provider)
    credential.values = values
    credential.last4 = secret[-4:]
    credential.account_sid = account_sid
    credential.verified_at = timezone.now()
    try:
        with transaction.atomic():
            credential.save()
    except IntegrityError:  # the same provider connected at the same moment by another request
        raise ApplicationError(
            f"{Provider(provider).label} was just connected by someone else: reload the page.",
            code="conflict", status=409,
        ) from None  # fmt: skip
    after = {"last4": credential.last4, "account_sid": account_sid}
    audit_record(
        action="provider_credential.replaced" if before else "provider_credential.connected",
        organization=organization,
        actor=principal,
        resource=credential,
        changes={
            name: {"before": (before or {}).get(name), "after": after[name]}
            for name in after
            if (before or {}).get(name) != after[name]
        },
        metadata={"provider": provider},
    )
    return credential


@transaction.atomic
def credential_delete(*, organization, actor, provider: str) -> None:
    """Disconnect the organization's own account: JagCall's account is used from now on.

    Refused (by a ``credential_changing`` receiver) while something still lives in
    that account, e.g. phone numbers: they must be released or removed first.
    """
    principal = as_principal(actor, organization)
    principal.require(PERMISSION)
    credential = ProviderCredential.objects.for_org(organization).select_for_update().filter(provider=provider).first()
    if credential is None:
        raise ApplicationError(
            f"{Provider(provider).label if provider in Provider.values else provider} is not connected.",
            code="not_found", status=404,
        )  # fmt: skip
    credential_changing.send(
        sender=ProviderCredential, organization=organization, provider=provider,
        account_sid=credential.account_sid, new_account_sid=None,
    )  # fmt: skip
    credential_id, last4, account_sid = credential.id, credential.last4, credential.account_sid
    ProviderCredential.objects.for_org(organization).filter(id=credential_id).delete()
    audit_record(
        action="provider_credential.disconnected",
        organization=organization,
        actor=principal,
        resource_type="provider_credential",
        resource_id=str(credential_id),
        changes={"last4": {"before": last4, "after": None}},
        metadata={"provider": provider, **({"account_sid": account_sid} if account_sid else {})},
    )
