"""The portal session as an API credential: CSRF on writes, the organization named per request."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Membership
from accounts.tests.factories import enable_totp
from accounts.tests.test_jwt import access_for

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"
ORGANIZATION = "/api/v1/organization"
API_KEYS = "/api/v1/api-keys"


@pytest.fixture
def browser(owner):
    """A signed-in browser: Django's test client with CSRF checks on, as a real browser gets them."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    client.get("/o/acme-dental/team/")  # a page with forms sets the csrftoken cookie
    return client


def csrf(client) -> dict:
    return {"X-CSRFToken": client.cookies[settings.CSRF_COOKIE_NAME].value}


def test_a_signed_in_session_reads_the_organization_it_names(browser, owner, organization):
    for name in (organization.slug, str(organization.id)):
        response = browser.get(ME, headers={"X-Organization": name})
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["organization"]["id"] == str(organization.id)
        assert body["user"]["email"] == owner.email
        assert "api_keys:write" in body["scopes"]


def test_without_the_organization_header_the_answer_says_what_to_send(browser):
    response = browser.get(ME)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "organization_required"
    assert "X-Organization" in error["message"]


def test_an_organization_the_person_is_not_in_looks_like_one_that_does_not_exist(browser, other_organization):
    answers = [
        browser.get(ME, headers={"X-Organization": name}) for name in (other_organization.slug, "no-such-organization")
    ]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["error"]["code"] == "organization_unavailable"


def test_a_malformed_organization_header_is_a_401_not_an_error(browser):
    for value in ("a\x00b", "x" * 500, "Robert'); DROP TABLE--", "ünïcode"):
        response = browser.get(ME, headers={"X-Organization": value})
        assert response.status_code == 401, value
        assert response.json()["error"]["code"] == "organization_unavailable"


def test_a_write_without_the_csrf_token_is_refused_and_changes_nothing(browser, organization):
    response = browser.patch(
        ORGANIZATION,
        data={"name": "Renamed"},
        content_type="application/json",
        headers={"X-Organization": organization.slug},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    organization.refresh_from_db()
    assert organization.name == "Acme Dental"


def test_a_write_with_the_csrf_token_goes_through(browser, organization):
    response = browser.patch(
        ORGANIZATION,
        data={"name": "Acme Dental Group"},
        content_type="application/json",
        headers={"X-Organization": organization.slug, **csrf(browser)},
    )
    assert response.status_code == 200, response.content
    organization.refresh_from_db()
    assert organization.name == "Acme Dental Group"


def test_the_session_carries_the_scopes_of_the_members_role(member, organization):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    response = client.get(API_KEYS, headers={"X-Organization": organization.slug})
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This request needs the scope api_keys:read."
    assert client.get(ME, headers={"X-Organization": organization.slug}).status_code == 200


def test_removing_the_membership_stops_the_session_at_once(browser, owner, organization):
    assert browser.get(ME, headers={"X-Organization": organization.slug}).status_code == 200
    Membership.objects.unscoped("test: inspects rows directly").filter(user=owner, organization=organization).delete()
    assert browser.get(ME, headers={"X-Organization": organization.slug}).status_code == 401


def test_the_organizations_two_factor_rule_applies(browser, owner, organization):
    organization.require_two_factor = True
    organization.save(update_fields=["require_two_factor"])
    response = browser.get(ME, headers={"X-Organization": organization.slug})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "two_factor_required"
    enable_totp(owner)
    # [!!] Enrolling a factor elsewhere does not make this session one that passed it.
    assert browser.get(ME, headers={"X-Organization": organization.slug}).status_code == 403
    browser.force_login(owner)  # signed in again, with the password and the code
    assert browser.get(ME, headers={"X-Organization": organization.slug}).status_code == 200


def test_a_bearer_token_wins_over_the_session_cookie(browser, organization, other_organization, other_owner):
    token = access_for(APIClient(), other_owner, other_organization)
    response = browser.get(ME, headers={"Authorization": f"Bearer {token}", "X-Organization": organization.slug})
    assert response.status_code == 200
    assert response.json()["organization"]["id"] == str(other_organization.id)


def test_session_and_token_share_one_persons_read_budget(browser, owner, organization, settings):
    settings.API_RATE_LIMIT_READS = 3
    token = access_for(APIClient(), owner, organization)
    statuses = [
        browser.get(ME, headers={"X-Organization": organization.slug}).status_code,
        browser.get(ME, headers={"X-Organization": organization.slug}).status_code,
        Client().get(ME, headers={"Authorization": f"Bearer {token}"}).status_code,
        browser.get(ME, headers={"X-Organization": organization.slug}).status_code,
    ]
    assert statuses == [200, 200, 200, 429]


def test_a_signed_out_request_is_asked_to_authenticate(organization):
    response = Client().get(ME, headers={"X-Organization": organization.slug})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
