"""An organization's own provider accounts: verified by the provider's SDK before anything is saved,
stored encrypted, shown and audited only as their last four characters (C1, C37)."""

from __future__ import annotations

import logging
import secrets

import pytest
from django.db import connection

from accounts.principals import Principal
from accounts.tests.factories import MembershipFactory
from compliance.models import AuditEvent
from integrations import selectors, services
from integrations.models import Provider, ProviderCredential
from jagcall.kernel.errors import ApplicationError, PermissionDenied
from jagcall.kernel.standins.twilio.records import Account, new_sid

pytestmark = pytest.mark.django_db


def own_twilio_account(standin) -> tuple[str, str]:
    """A customer's own (top-level) Twilio account at the stand-in."""
    sid, token = new_sid("AC"), secrets.token_hex(16)
    standin.accounts[sid] = Account(sid, token, "Acme's own Twilio", sid)
    return sid, token


@pytest.fixture
def owner_principal(organization, owner):
    membership = organization_membership(organization, owner)
    return Principal.member(membership)


def organization_membership(organization, user):
    from accounts.models import Membership

    return Membership.objects.for_org(organization).get(user=user)


def events(organization, prefix="provider_credential."):
    return list(AuditEvent.objects.for_org(organization).filter(action__startswith=prefix).order_by("occurred_at"))


def raw_column(credential) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute("SELECT values::text, last4 FROM integrations_providercredential WHERE id = %s", [credential.id])
        values, last4 = cursor.fetchone()
    return values, last4


def test_twilio_credentials_verified_then_stored_encrypted(twilio_standin, organization, owner_principal, caplog):
    sid, token = own_twilio_account(twilio_standin)
    caplog.set_level(logging.DEBUG)
    credential = services.credential_save(
        organization=organization, actor=owner_principal, provider="twilio",
        values={"account_sid": sid, "auth_token": token},
    )  # fmt: skip
    # Twilio was asked, with those credentials, for that account.
    fetches = [r for r in twilio_standin.requests if r.path.endswith(f"/Accounts/{sid}.json") and r.method == "GET"]
    assert len(fetches) == 1
    assert credential.last4 == token[-4:] and credential.account_sid == sid
    values, last4 = raw_column(credential)
    assert token not in values and sid not in values and last4 == token[-4:]
    fresh = ProviderCredential.objects.for_org(organization).get(id=credential.id)
    assert fresh.values == {"account_sid": sid, "auth_token": token}
    # The audit event names the account, never the secret.
    (event,) = events(organization)
    assert event.action == "provider_credential.connected"
    assert token not in str(event.changes) + str(event.metadata)
    assert event.changes["last4"]["after"] == token[-4:]
    assert token not in caplog.text


def test_refused_credentials_are_a_form_error_and_nothing_is_saved(twilio_standin, organization, owner_principal, caplog):
    sid, _token = own_twilio_account(twilio_standin)
    wrong = secrets.token_hex(16)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ApplicationError) as refused:
        services.credential_save(
            organization=organization, actor=owner_principal, provider="twilio",
            values={"account_sid": sid, "auth_token": wrong},
        )  # fmt: skip
    assert refused.value.field == "auth_token" and refused.value.code == "credentials_refused"
    assert "Twilio refused these credentials" in refused.value.message
    assert not ProviderCredential.objects.for_org(organization).exists()
    assert events(organization) == []
    assert wrong not in caplog.text and wrong not in refused.value.message


def test_malformed_values_are_refused_before_the_provider_is_asked(twilio_standin, organization, owner_principal):
    with pytest.raises(ApplicationError) as refused:
        services.credential_save(
            organization=organization, actor=owner_principal, provider="twilio",
            values={"account_sid": "not-a-sid", "auth_token": "x" * 32},
        )  # fmt: skip
    assert refused.value.field == "account_sid"
    with pytest.raises(ApplicationError) as missing:
        services.credential_save(organization=organization, actor=owner_principal, provider="openai", values={})
    assert missing.value.field == "api_key"
    assert twilio_standin.requests == []


def test_openai_key_verified_by_listing_models_and_replaced(openai_standin, organization, owner_principal):
    first = services.credential_save(
        organization=organization, actor=owner_principal, provider="openai", values={"api_key": openai_standin.api_key}
    )
    assert any(r.path == "/v1/models" for r in openai_standin.requests)
    values, _ = raw_column(first)
    assert openai_standin.api_key not in values
    with pytest.raises(ApplicationError):
        services.credential_save(
            organization=organization, actor=owner_principal, provider="openai", values={"api_key": "sk-wrong-" + "a1" * 20}
        )
    # The refused replacement left the verified key in place.
    assert selectors.credential_get(organization=organization, provider="openai").values["api_key"] == openai_standin.api_key
    openai_standin.api_key = "sk-rotated-" + secrets.token_hex(20)
    services.credential_save(
        organization=organization, actor=owner_principal, provider="openai", values={"api_key": openai_standin.api_key}
    )
    assert ProviderCredential.objects.for_org(organization).count() == 1
    actions = [e.action for e in events(organization)]
    assert actions == ["provider_credential.connected", "provider_credential.replaced"]
    assert "rotated" not in str([e.changes for e in events(organization)])


def test_elevenlabs_key_verified(elevenlabs_standin, organization, owner_principal):
    services.credential_save(
        organization=organization, actor=owner_principal, provider="elevenlabs",
        values={"api_key": elevenlabs_standin.api_key},
    )  # fmt: skip
    assert any(r.path == "/v2/voices" for r in elevenlabs_standin.requests)


def test_disconnect_removes_the_credential_and_is_audited(openai_standin, organization, owner_principal):
    services.credential_save(
        organization=organization, actor=owner_principal, provider="openai", values={"api_key": openai_standin.api_key}
    )
    services.credential_delete(organization=organization, actor=owner_principal, provider="openai")
    assert selectors.credential_get(organization=organization, provider="openai") is None
    assert events(organization)[-1].action == "provider_credential.disconnected"
    with pytest.raises(ApplicationError) as again:
        services.credential_delete(organization=organization, actor=owner_principal, provider="openai")
    assert again.value.status == 404


def test_members_may_not_connect_accounts(openai_standin, organization, member):
    principal = Principal.member(organization_membership(organization, member))
    with pytest.raises(PermissionDenied):
        services.credential_save(
            organization=organization, actor=principal, provider="openai", values={"api_key": openai_standin.api_key}
        )
    assert openai_standin.requests == []


def test_provider_accounts_list_every_provider(openai_standin, organization, owner_principal):
    services.credential_save(
        organization=organization, actor=owner_principal, provider="openai", values={"api_key": openai_standin.api_key}
    )
    accounts = selectors.provider_account_list(organization=organization)
    assert [a.provider for a in accounts] == list(Provider.values)
    assert [a.provider for a in accounts if a.is_own] == ["openai"]


def test_anthropic_key_verified_by_listing_models(anthropic_standin, organization, owner_principal):
    services.credential_save(
        organization=organization, actor=owner_principal, provider="anthropic",
        values={"api_key": anthropic_standin.api_key},
    )  # fmt: skip
    assert any(r.path == "/v1/models" for r in anthropic_standin.requests)
    with pytest.raises(ApplicationError) as refused:
        services.credential_save(
            organization=organization, actor=owner_principal, provider="anthropic",
            values={"api_key": "sk-ant-wrong-" + secrets.token_hex(16)},
        )  # fmt: skip
    assert refused.value.code == "credentials_refused"


def test_deepgram_key_verified_by_listing_projects(deepgram_standin, organization, owner_principal):
    services.credential_save(
        organization=organization, actor=owner_principal, provider="deepgram", values={"api_key": deepgram_standin.api_key}
    )
    assert any(r.path == "/v1/projects" for r in deepgram_standin.requests)
    with pytest.raises(ApplicationError):
        services.credential_save(
            organization=organization, actor=owner_principal, provider="deepgram",
            values={"api_key": secrets.token_hex(20)},
        )  # fmt: skip
