"""Changing a registered application: its name and redirect URIs, and its client secret."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.hashers import check_password, identify_hasher
from django.urls import reverse

from compliance.models import AuditEvent
from jagcall.kernel.errors import ApplicationError
from accounts.oauth.models import Application, Grant
from accounts.oauth.services import oauth_application_rotate_secret, oauth_application_update
from accounts.oauth.tests.factories import (
    REDIRECT_URI,
    Client,
    authorize_params,
    authorize_url,
    consent_post,
    exchange,
    obtain_code,
    pkce_pair,
    query,
    refresh,
    register,
    tokens_for,
)

pytestmark = pytest.mark.django_db

NEW_URI = "https://client.example/v2/callback"


def _url(name, organization, application):
    return reverse(f"oauth:{name}", kwargs={"org_slug": organization.slug, "application_id": application.id})


def _events(events, kind):
    return [e for e in events if e["event"] == kind]


# --- editing ------------------------------------------------------------------------------------


def test_detail_page_has_the_edit_form_with_the_current_values(owner_client, organization, app_client):
    page = owner_client.get(_url("application-detail", organization, app_client.application)).content.decode()
    assert _url("application-update", organization, app_client.application) in page
    assert 'value="Acme CRM"' in page and f">\n{REDIRECT_URI}</textarea>" in page


def test_owner_renames_and_replaces_the_redirect_uris(owner_client, organization, owner, app_client, events):
    application = app_client.application
    stored_secret = application.client_secret
    response = owner_client.post(
        _url("application-update", organization, application),
        {"name": "  Acme CRM v2 ", "redirect_uris": f"{NEW_URI}\nhttp://127.0.0.1:8765/cb\n{NEW_URI}"},
    )
    assert response.status_code == 302 and response["Location"] == _url("application-detail", organization, application)
    application.refresh_from_db()
    assert application.name == "Acme CRM v2"
    assert application.redirect_uri_list == [NEW_URI, "http://127.0.0.1:8765/cb"]
    assert application.client_secret == stored_secret and application.client_id == app_client.client_id
    page = owner_client.get(response["Location"]).content.decode()
    assert "“Acme CRM v2” is saved." in page and f"<code>{NEW_URI}</code>" in page

    (updated,) = _events(events, "oauth.application_updated")
    assert updated["organization_id"] == str(organization.id) and updated["user_id"] == str(owner.id)
    assert updated["changes"] == {
        "name": {"before": "Acme CRM", "after": "Acme CRM v2"},
        "redirect_uris": {"before": [REDIRECT_URI], "after": [NEW_URI, "http://127.0.0.1:8765/cb"]},
    }
    audit = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="oauth.application_updated")
    assert audit.organization_id == organization.id and audit.resource_id == str(application.id)
    recorded = json.dumps([updated, audit.metadata], default=str)
    assert "secret" not in recorded and stored_secret not in recorded


def test_only_what_changed_is_recorded_and_nothing_when_nothing_changed(owner_client, organization, app_client, events):
    url = _url("application-update", organization, app_client.application)
    assert owner_client.post(url, {"name": "Acme CRM", "redirect_uris": REDIRECT_URI}).status_code == 302
    assert not _events(events, "oauth.application_updated")
    assert owner_client.post(url, {"name": "Renamed", "redirect_uris": REDIRECT_URI}).status_code == 302
    (updated,) = _events(events, "oauth.application_updated")
    assert updated["changes"] == {"name": {"before": "Acme CRM", "after": "Renamed"}}


@pytest.mark.parametrize(
    "data,message",
    [
        ({"name": "", "redirect_uris": NEW_URI}, "Give the application a name"),
        ({"name": "   ", "redirect_uris": NEW_URI}, "Give the application a name"),
        ({"name": "x" * 101, "redirect_uris": NEW_URI}, "at most 100 characters"),
        ({"name": "Acme CRM v2", "redirect_uris": ""}, "Add at least one redirect URI"),
        ({"name": "Acme CRM v2", "redirect_uris": "http://crm.example/cb"}, "use https"),
        ({"name": "Acme CRM v2", "redirect_uris": f"{NEW_URI}\nhttps://crm.example/cb#frag"}, "fragment"),
        ({"name": "Acme CRM v2", "redirect_uris": "https://user:pw@crm.example/cb"}, "user name or password"),
        ({"name": "Acme CRM v2", "redirect_uris": "https://*.example/cb"}, "wildcards"),
        ({"name": "Acme CRM v2", "redirect_uris": "crm-app://callback"}, "use an https address"),
        ({"name": "Acme CRM v2", "redirect_uris": "https:///cb"}, "full address"),
        (
            {"name": "Acme CRM v2", "redirect_uris": "\n".join(f"https://crm.example/{i}" for i in range(11))},
            "at most 10 redirect URIs",
        ),
    ],
)
def test_edit_errors_are_clear_400s_that_change_nothing(owner_client, organization, app_client, events, data, message):
    application = app_client.application
    response = owner_client.post(_url("application-update", organization, application), data)
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body and "data-error-summary" in body
    # The page still shows what is stored, and the form keeps what was typed.
    assert f"<code>{REDIRECT_URI}</code>" in body and "<h1>Acme CRM</h1>" in body
    application.refresh_from_db()
    assert application.name == "Acme CRM" and application.redirect_uri_list == [REDIRECT_URI]
    assert not _events(events, "oauth.application_updated")


def test_live_tokens_survive_a_redirect_uri_change_and_new_authorizations_use_the_new_uris(
    client, organization, owner, app_client, bearer
):
    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=organization)
    response = client.post(
        _url("application-update", organization, app_client.application), {"name": "Acme CRM", "redirect_uris": NEW_URI}
    )
    assert response.status_code == 302

    # What was issued keeps working: the API, and refreshing.
    assert bearer(tokens["access_token"]).get("/api/v1/me").status_code == 200
    renewed = refresh(client, app_client, tokens["refresh_token"])
    assert renewed.status_code == 200
    assert bearer(renewed.json()["access_token"]).get("/api/v1/me").status_code == 200

    # A new authorization to the old address is refused without redirecting...
    verifier, challenge = pkce_pair()
    old = client.get(authorize_url(authorize_params(app_client, challenge=challenge)))
    assert old.status_code == 400 and "Location" not in old
    old_params = authorize_params(app_client, challenge=challenge)
    refused = consent_post(client, old_params, organization=organization, scopes=["organization:read"])
    assert refused.status_code == 400 and "Location" not in refused
    # ...and one to the new address goes through, code to token.
    params = authorize_params(app_client, challenge=challenge, redirect_uri=NEW_URI)
    assert client.get(authorize_url(params)).status_code == 200
    response = consent_post(client, params, organization=organization, scopes=["organization:read"])
    assert response.status_code == 302 and response["Location"].startswith(NEW_URI + "?")
    code = query(response["Location"])["code"]
    assert exchange(client, app_client, code, verifier, redirect_uri=NEW_URI).status_code == 200


def test_a_code_sent_to_a_removed_redirect_uri_can_no_longer_be_exchanged(client, organization, owner):
    two = register(organization, redirect_uris=f"{REDIRECT_URI}\n{NEW_URI}")
    client.force_login(owner)
    removed_code, removed_verifier = obtain_code(client, two, organization=organization)  # sent to REDIRECT_URI
    verifier, challenge = pkce_pair()
    params = authorize_params(two, challenge=challenge, redirect_uri=NEW_URI)
    sent = consent_post(client, params, organization=organization, scopes=["organization:read"])
    kept_code = query(sent["Location"])["code"]

    oauth_application_update(
        organization=organization, application=two.application, actor=owner, name="Acme CRM", redirect_uris=NEW_URI
    )
    assert Grant.objects.unscoped("test: reads across organizations").count() == 1
    refused = exchange(client, two, removed_code, removed_verifier)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert exchange(client, two, kept_code, verifier, redirect_uri=NEW_URI).status_code == 200


def test_service_refuses_another_organizations_application(organization, other_organization):
    theirs = register(other_organization, name="Their app").application
    with pytest.raises(ApplicationError) as raised:
        oauth_application_update(
            organization=organization, application=theirs, actor=None, name="Mine now", redirect_uris=NEW_URI
        )
    assert raised.value.status == 404
    with pytest.raises(ApplicationError) as raised:
        oauth_application_rotate_secret(organization=organization, application=theirs, actor=None)
    assert raised.value.status == 404
    theirs.refresh_from_db()
    assert theirs.name == "Their app" and theirs.redirect_uri_list == [REDIRECT_URI]


# --- rotating the client secret ------------------------------------------------------------------


def _revoke(http, client: Client, token: str):
    return http.post(reverse("oauth:revoke-token"), {"token": token}, **client.basic_auth())


def test_rotating_shows_the_new_secret_once_and_the_old_one_is_refused(
    client, organization, owner, app_client, bearer, events
):
    client.force_login(owner)
    tokens = tokens_for(client, app_client, organization=organization)
    code, verifier = obtain_code(client, app_client, organization=organization)
    old_secret = app_client.secret
    detail = _url("application-detail", organization, app_client.application)
    assert "Rotate client secret" in client.get(detail).content.decode()

    response = client.post(_url("application-rotate-secret", organization, app_client.application))
    assert response.status_code == 302 and response["Location"] == detail
    first = client.get(detail)
    assert first["Cache-Control"] == "no-store"
    body = first.content.decode()
    assert "has a new client secret. The previous one no longer works." in body and "shown only this once" in body
    new_secret = body.split('id="client-secret-value" value="')[1].split('"')[0]
    assert new_secret.startswith("jc_ocs_") and new_secret != old_secret
    assert new_secret not in client.get(detail).content.decode()  # once

    application = Application.objects.unscoped("test: reads across organizations").get(pk=app_client.application.pk)
    identify_hasher(application.client_secret)
    assert check_password(new_secret, application.client_secret)
    assert not check_password(old_secret, application.client_secret)

    # [!!] The old secret is refused at the token and the revocation endpoints, for every grant.
    with_old = Client(app_client.application, old_secret)
    refused = exchange(client, with_old, code, verifier)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    refused = refresh(client, with_old, tokens["refresh_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    refused = _revoke(client, with_old, tokens["access_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert bearer(tokens["access_token"]).get("/api/v1/me").status_code == 200  # not revoked by that

    # The new one works, and people stay connected.
    with_new = Client(app_client.application, new_secret)
    assert exchange(client, with_new, code, verifier).status_code == 200
    renewed = refresh(client, with_new, tokens["refresh_token"])
    assert renewed.status_code == 200
    assert _revoke(client, with_new, renewed.json()["access_token"]).status_code == 200

    (rotated,) = _events(events, "oauth.application_secret_rotated")
    assert rotated["organization_id"] == str(organization.id) and rotated["user_id"] == str(owner.id)
    audit = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="oauth.application_secret_rotated")
    recorded = json.dumps([rotated, audit.metadata], default=str)
    assert new_secret not in recorded and old_secret not in recorded and application.client_secret not in recorded


def test_a_public_application_has_no_secret_to_rotate(owner_client, organization, public_client, events):
    application = public_client.application
    stored = application.client_secret
    detail = owner_client.get(_url("application-detail", organization, application)).content.decode()
    assert "Rotate client secret" not in detail
    response = owner_client.post(_url("application-rotate-secret", organization, application))
    assert response.status_code == 400
    assert "A public application has no client secret to rotate" in response.content.decode()
    assert "client-secret-value" not in response.content.decode()
    application.refresh_from_db()
    assert application.client_secret == stored
    assert not _events(events, "oauth.application_secret_rotated")


# --- who may ----------------------------------------------------------------------------------------


def test_members_cannot_edit_or_rotate(client, organization, member, app_client, events):
    client.force_login(member)
    application = app_client.application
    stored = (application.name, application.redirect_uris, application.client_secret)
    update = client.post(_url("application-update", organization, application), {"name": "X", "redirect_uris": NEW_URI})
    assert update.status_code == 403
    assert client.post(_url("application-rotate-secret", organization, application)).status_code == 403
    application.refresh_from_db()
    assert (application.name, application.redirect_uris, application.client_secret) == stored
    assert not _events(events, "oauth.application_updated") and not _events(events, "oauth.application_secret_rotated")


def test_another_organizations_application_is_404(owner_client, organization, other_organization):
    theirs = register(other_organization, name="Their app")
    application = theirs.application
    stored = (application.name, application.redirect_uris, application.client_secret)
    for name in ("application-update", "application-rotate-secret"):
        data = {"name": "Mine now", "redirect_uris": NEW_URI}
        assert owner_client.post(_url(name, organization, application), data).status_code == 404
        assert owner_client.post(_url(name, other_organization, application), data).status_code == 404
        assert owner_client.get(_url(name, organization, application)).status_code == 405  # POST only
    application.refresh_from_db()
    assert (application.name, application.redirect_uris, application.client_secret) == stored
