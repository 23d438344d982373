"""GET /api/v1/audit-events: scope audit:read, the portal's filters, cursor pages, reading recorded."""

from __future__ import annotations

import pytest

from compliance.models import AuditEvent
from compliance.tests.conftest import api_key_for, jwt_for, record

pytestmark = pytest.mark.django_db

URL = "/api/v1/audit-events"


def bearer(api_client, token):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client


def test_owner_and_admin_jwts_read_the_log(api_client, organization, owner, admin_user):
    record(organization, action="member.removed", actor=owner, resource_type="membership", resource_id="m-9",
           changes={"role": {"before": "admin", "after": None}})
    for person in (owner, admin_user):
        response = bearer(api_client, jwt_for(person, organization)).get(URL, {"action": "member.removed"})
        assert response.status_code == 200, response.content
        item = response.json()["results"][0]
        assert item["action"] == "member.removed"
        assert item["actor"] == {"type": "user", "label": "owner@acme.test", "user_id": str(owner.id), "api_key_prefix": None}
        assert item["resource"] == {"type": "membership", "id": "m-9"}
        assert item["changes"] == {"role": {"before": "admin", "after": None}}
        assert len(item["hash"]) == 64 and item["seq"] == 1


def test_members_are_refused(api_client, organization, member):
    response = bearer(api_client, jwt_for(member, organization)).get(URL)
    assert response.status_code == 403
    assert "audit:read" in response.content.decode()


def test_api_keys_need_the_scope(api_client, organization):
    _key, without = api_key_for(organization, scopes=("members:read",))
    assert bearer(api_client, without).get(URL).status_code == 403
    api_key, raw = api_key_for(organization, scopes=("audit:read",))
    response = bearer(api_client, raw).get(URL)
    assert response.status_code == 200
    viewed = AuditEvent.objects.for_org(organization).get(action="audit.viewed")
    assert (viewed.actor_type, viewed.api_key_prefix) == ("api_key", api_key.prefix)
    assert viewed.metadata == {"filters": {}, "via": "api"}


def test_a_key_sees_only_its_own_organizations_events(api_client, organization, other_organization):
    record(other_organization, action="member.removed", resource_id="theirs")
    record(organization, action="member.invited", resource_id="mine")
    _key, raw = api_key_for(organization)
    results = bearer(api_client, raw).get(URL).json()["results"]
    assert {r["resource"]["id"] for r in results} >= {"mine"}
    assert "theirs" not in str(results) and str(other_organization.id) not in str(results)


def test_filters_and_errors(api_client, organization, owner):
    record(organization, action="member.invited", outcome="success")
    record(organization, action="member.removed", outcome="denied")
    record(organization, action="api_key.created")
    client = bearer(api_client, jwt_for(owner, organization))

    def actions(**query):
        response = client.get(URL, query)
        assert response.status_code == 200, response.content
        return [r["action"] for r in response.json()["results"] if r["action"] != "audit.viewed"]

    assert actions(action="member.*") == ["member.removed", "member.invited"]
    assert actions(outcome="denied") == ["member.removed"]
    assert actions(actor="system") == ["api_key.created", "member.removed", "member.invited"]
    response = client.get(URL, {"outcome": "maybe", "since": "yesterday"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] and "outcome" in str(error) and "since" in str(error)


def test_far_time_zone_offsets_are_read_in_utc_not_a_500(api_client, organization, owner):
    record(organization, action="member.invited")
    client = bearer(api_client, jwt_for(owner, organization))
    # Valid ISO 8601, but beyond the ±15:59 offsets PostgreSQL accepts.
    assert client.get(URL, {"since": "2001-01-05T20:28:40-18:09"}).status_code == 200
    response = client.get(URL, {"until": "0001-01-01T00:30:00+23:00"})
    assert response.status_code == 400
    assert "until" in response.json()["error"]["details"]


def test_cursor_pages(api_client, organization, owner):
    for n in range(7):
        record(organization, resource_type="thing", resource_id=str(n))
    client = bearer(api_client, jwt_for(owner, organization))
    first = client.get(URL, {"resource_type": "thing", "limit": 3}).json()
    assert [r["resource"]["id"] for r in first["results"]] == ["6", "5", "4"]
    second = client.get(first["next"]).json()
    assert [r["resource"]["id"] for r in second["results"]] == ["3", "2", "1"]
    third = client.get(second["next"]).json()
    assert [r["resource"]["id"] for r in third["results"]] == ["0"] and third["next"] is None
    # Paging through one filter set records one read.
    assert AuditEvent.objects.for_org(organization).filter(action="audit.viewed").count() == 1
