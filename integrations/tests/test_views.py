"""The "Provider accounts" page: connect, replace and disconnect an own account; secrets never shown again."""

from __future__ import annotations

import secrets

import pytest
from django.urls import reverse

from integrations.models import ProviderCredential

pytestmark = pytest.mark.django_db


def url(organization, name="integrations:provider-list"):
    return reverse(name, kwargs={"org_slug": organization.slug})


def test_page_lists_every_provider_on_jagcalls_account(owner_client, organization):
    page = owner_client.get(url(organization))
    assert page.status_code == 200
    html = page.content.decode()
    for label in ("Twilio", "OpenAI", "Anthropic", "Deepgram", "ElevenLabs"):
        assert label in html
    assert html.count("Using JagCall&#x27;s account") == 5 or html.count("Using JagCall's account") == 5


def test_connect_verifies_and_shows_only_the_last_four(owner_client, organization, openai_standin):
    key = openai_standin.api_key
    response = owner_client.post(url(organization), {"provider": "openai", "api_key": key}, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert f"…{key[-4:]}" in html and "verified" in html
    assert key not in html
    assert ProviderCredential.objects.for_org(organization).get().provider == "openai"


def test_refused_key_is_a_form_error(owner_client, organization, openai_standin):
    wrong = "sk-wrong-" + secrets.token_hex(20)
    response = owner_client.post(url(organization), {"provider": "openai", "api_key": wrong})
    assert response.status_code == 400
    html = response.content.decode()
    assert "OpenAI refused these credentials" in html
    assert wrong not in html  # not even rendered back into the field
    assert not ProviderCredential.objects.for_org(organization).exists()


def test_unknown_provider_is_404(owner_client, organization):
    assert owner_client.post(url(organization), {"provider": "nope", "api_key": "x"}).status_code == 404


def test_disconnect(owner_client, organization, openai_standin):
    owner_client.post(url(organization), {"provider": "openai", "api_key": openai_standin.api_key})
    response = owner_client.post(url(organization, "integrations:provider-disconnect"), {"provider": "openai"}, follow=True)
    assert "JagCall&#x27;s account is used from now on" in response.content.decode()
    assert not ProviderCredential.objects.for_org(organization).exists()


def test_members_cannot_open_the_page(client, organization, member):
    client.force_login(member)
    assert client.get(url(organization)).status_code == 403
    assert client.post(url(organization), {"provider": "openai", "api_key": "sk-x"}).status_code == 403


def test_other_organizations_page_is_404(owner_client, other_organization):
    assert owner_client.get(url(other_organization)).status_code == 404


def test_back_office_shows_credentials_without_their_secret(staff_client, organization, openai_standin):
    from django.conf import settings

    from integrations.services import credential_save
    from accounts.principals import Principal

    credential = credential_save(
        organization=organization, actor=Principal.system("test"), provider="openai", values={"api_key": openai_standin.api_key}
    )
    page = staff_client.get(f"/{settings.ADMIN_URL}integrations/providercredential/{credential.id}/change/")
    assert page.status_code == 200
    assert credential.last4 in page.content.decode() and openai_standin.api_key not in page.content.decode()
