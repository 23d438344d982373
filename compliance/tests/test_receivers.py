"""Every security event becomes an audit event, with a sensible action and outcome."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from accounts.security_events import emit
from compliance.models import ActorType, AuditEvent, Outcome
from compliance.services.sources import _security_action, _security_outcome
from compliance.tests.conftest import api_key_for

pytestmark = pytest.mark.django_db


def test_a_failed_sign_in_for_an_unknown_email_is_a_platform_event(client, events):
    response = client.post("/auth/login/", {"login": "nobody@nowhere.test", "password": "wrong password"},
                           REMOTE_ADDR="198.51.100.4", HTTP_USER_AGENT="curl/8")
    assert response.status_code in (200, 400)
    event = AuditEvent.objects.platform().get(action="user.login_failed")
    assert event.outcome == Outcome.FAILED
    assert (event.actor_type, event.actor_label, event.actor_id) == (ActorType.ANONYMOUS, "nobody@nowhere.test", None)
    assert event.ip == "198.51.100.4" and event.user_agent == "curl/8"
    assert event.request_id  # from the request id middleware
    assert "password" not in str(event.metadata).lower() or event.metadata.get("password") == "[redacted]"


def test_a_sign_in_is_recorded_for_the_person(client, owner, password):
    client.post("/auth/login/", {"login": owner.email, "password": password})
    event = AuditEvent.objects.platform().get(action="user.login")
    assert (event.actor_type, event.actor_id, event.actor_label) == (ActorType.USER, owner.id, owner.email)
    assert (event.resource_type, event.resource_id, event.outcome) == ("user", str(owner.id), Outcome.SUCCESS)


def test_api_key_events_land_in_the_organizations_chain(organization, api_client):
    api_key, raw = api_key_for(organization)
    created = AuditEvent.objects.for_org(organization).get(action="api_key.created")
    assert (created.resource_type, created.resource_id) == ("api_key", str(api_key.id))
    assert created.metadata["prefix"] == api_key.prefix
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw[:-2]}xx")  # the right prefix, a wrong secret
    assert api_client.get("/api/v1/audit-events").status_code == 401
    rejected = AuditEvent.objects.platform().get(action="api_key.rejected")
    assert rejected.outcome == Outcome.DENIED
    assert (rejected.actor_type, rejected.api_key_prefix, rejected.actor_label) == (
        ActorType.API_KEY, api_key.prefix, f"jc_live_{api_key.prefix}",
    )
    assert raw not in str(rejected.metadata)


def test_an_account_disabled_by_support(organization, member):
    from accounts.services import user_disable
    from accounts.tests.factories import UserFactory

    staff = UserFactory(email="support@jagcall.test", is_staff=True)
    user_disable(user=member, actor=staff)
    event = AuditEvent.objects.platform().get(action="user.disabled")
    assert (event.actor_type, event.actor_id) == (ActorType.SUPPORT, staff.id)
    assert (event.resource_type, event.resource_id) == ("user", str(member.id))
    assert event.metadata["email"] == member.email


def test_secrets_in_event_details_are_redacted(organization):
    emit("user.password_changed", organization=organization, new_password="hunter2", token="abc", reason="forgot")
    event = AuditEvent.objects.for_org(organization).get(action="user.password_changed")
    assert event.metadata == {"new_password": "[redacted]", "token": "[redacted]", "reason": "forgot"}


@pytest.mark.parametrize(
    "kind,outcome",
    [
        ("user.login", Outcome.SUCCESS),
        ("user.login_failed", Outcome.FAILED),
        ("sso.login_failed", Outcome.FAILED),
        ("user.login_refused", Outcome.DENIED),
        ("api.token_refused", Outcome.DENIED),
        ("api_key.rejected", Outcome.DENIED),
        ("audit.chain_broken", Outcome.FAILED),
        ("user.mfa_enabled", Outcome.SUCCESS),
        ("user.session_revoked", Outcome.SUCCESS),
    ],
)
def test_outcomes(kind, outcome):
    assert _security_outcome(kind) == outcome


def test_every_event_the_product_emits_is_recorded_under_its_own_name():
    """Scan the code for emit("…") names: each must be a valid action as it is."""
    kinds = set()
    for path in Path(settings.BASE_DIR).glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        kinds.update(re.findall(r'emit\(\s*"([^"]+)"', path.read_text(encoding="utf-8", errors="replace")))
    assert {"user.login_failed", "api_key.rejected", "sso.login", "user.mfa_enabled"} <= kinds
    for kind in kinds:
        assert _security_action(kind) == kind, kind


def test_odd_event_names_still_record(organization):
    emit("Weird Event!", organization=organization)
    assert AuditEvent.objects.for_org(organization).get().action == "security.weird_event"
