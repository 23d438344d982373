"""Who a customer's identity provider may sign in, and what the sign-in records on the session.

Real signed SAML responses from the pysaml2 IdP of test_sso.py.
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime, timedelta

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings

from accounts.access import sign_in_of
from accounts.models import Membership, User
from accounts.sso.models import SamlIdentity
from accounts.tests.factories import MembershipFactory, UserFactory
from accounts.tests.test_sso import IDP_ENTITY_ID, post_response, signed_in_user, start_login
from accounts.tests.test_sso import configured, enterprise, idp  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

REFUSED = "cannot sign you in through single sign-on with this identity"


def _refusals(events):
    return [(e["reason"], e.get("email")) for e in events if e["event"] == "sso.login_refused"]


def _sign_in(client, organization, idp, **kwargs):
    return post_response(client, organization, idp.respond(start_login(client, organization), organization, **kwargs))


# --- verified domains only ------------------------------------------------------------------


def test_email_outside_the_verified_domains_is_refused_and_nothing_is_created(client, configured, idp, events):
    response = _sign_in(client, configured, idp, name_id="okta|x1", email="mallory@globex.test")

    assert response.status_code == 403
    page = response.content.decode()
    assert "has not verified the domain of mallory@globex.test" in page and "globex.test" in page
    assert not signed_in_user(client).is_authenticated
    assert not User.objects.filter(email="mallory@globex.test").exists()
    assert not EmailAddress.objects.filter(email="mallory@globex.test").exists()  # never marked verified
    assert not SamlIdentity.objects.unscoped("test: inspects rows directly").exists()
    assert _refusals(events) == [("domain_not_verified", "mallory@globex.test")]
    assert not [e for e in events if e["event"] == "sso.login_failed"]  # one event per refusal
    from compliance.models import AuditEvent

    recorded = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="sso.login_refused")
    assert recorded.organization_id == configured.id and recorded.outcome == "denied"
    assert recorded.metadata["reason"] == "domain_not_verified"


def test_a_pending_domain_is_not_enough(client, configured, idp, owner, events):
    from accounts.sso import services as sso

    sso.sso_domain_add(organization=configured, actor=owner, domain="globex.test")  # added, never verified
    _sign_in(client, configured, idp, name_id="okta|x2", email="ana@globex.test")
    assert not User.objects.filter(email="ana@globex.test").exists()
    assert _refusals(events) == [("domain_not_verified", "ana@globex.test")]


def test_a_subdomain_or_lookalike_of_a_verified_domain_is_refused(client, configured, idp, events):
    for index, email in enumerate(("ana@eu.acme.test", "ana@evilacme.test", "ana@acme.test.evil.test")):
        client.logout()
        _sign_in(client, configured, idp, name_id=f"okta|l{index}", email=email)
        assert not User.objects.filter(email=email).exists()
    assert [reason for reason, _ in _refusals(events)] == ["domain_not_verified"] * 3


def test_existing_member_outside_the_verified_domains_is_not_linked_by_email(client, configured, idp, events):
    outsider = MembershipFactory(organization=configured, user=UserFactory(email="contractor@globex.test")).user
    response = _sign_in(client, configured, idp, name_id="okta|c1", email=outsider.email)
    assert response.status_code == 403
    assert not signed_in_user(client).is_authenticated
    assert not SamlIdentity.objects.unscoped("test: inspects rows directly").filter(user=outsider).exists()


def test_a_link_made_before_keeps_working_outside_the_verified_domains(client, configured, idp, owner):
    """Existing SamlIdentity rows are keyed by NameID: they do not depend on the email's domain."""
    person = MembershipFactory(organization=configured, user=UserFactory(email="old@globex.test")).user
    SamlIdentity.objects.create(organization=configured, user=person, idp_entity_id=IDP_ENTITY_ID, name_id="okta|old")
    response = _sign_in(client, configured, idp, name_id="okta|old", email="old@globex.test")
    assert response.status_code == 302, response.content.decode()[:500]
    assert signed_in_user(client) == person


def test_removing_the_domain_stops_provisioning(client, configured, idp, owner, events):
    from accounts.sso import services as sso
    from accounts.sso.models import SsoDomain

    row = SsoDomain.objects.unscoped("test: inspects rows directly").get(organization=configured)
    sso.sso_domain_remove(organization=configured, actor=owner, domain_id=row.id)
    _sign_in(client, configured, idp, name_id="okta|n1", email="new@acme.test")
    assert not User.objects.filter(email="new@acme.test").exists()
    assert _refusals(events) == [("domain_not_verified", "new@acme.test")]


# --- every refusal reads the same -----------------------------------------------------------


def test_refusals_never_say_whether_an_account_exists(client, configured, idp, other_organization, events):
    """Disabled, removed, belonging elsewhere, staff: one message, reasons only in the security event."""
    elsewhere = MembershipFactory(organization=other_organization, user=UserFactory(email="elsewhere@acme.test")).user
    disabled = MembershipFactory(organization=configured, user=UserFactory(email="disabled@acme.test", is_active=False)).user
    removed = UserFactory(email="removed@acme.test")
    SamlIdentity.objects.create(organization=configured, user=removed, idp_entity_id=IDP_ENTITY_ID, name_id="okta|removed")
    staff = MembershipFactory(organization=configured, user=UserFactory(email="staff@acme.test", is_staff=True)).user

    pages = []
    for name_id, email in (
        ("okta|e", elsewhere.email),
        ("okta|d", disabled.email),
        ("okta|removed", removed.email),
        ("okta|s", staff.email),
    ):
        client.logout()
        response = _sign_in(client, configured, idp, name_id=name_id, email=email)
        assert response.status_code == 403
        assert not signed_in_user(client).is_authenticated
        pages.append(response.content.decode())

    assert all(REFUSED in page for page in pages)
    for word in ("exist", "disabled", "no longer", "staff", "already"):
        assert not any(word in page.lower() for page in pages), word
    assert len(set(pages)) == 1  # byte for byte the same page
    assert [reason for reason, _ in _refusals(events)] == ["not_a_member", "account_disabled", "not_a_member", "staff_account"]
    assert not SamlIdentity.objects.unscoped("test: inspects rows directly").exclude(user=removed).exists()
    assert not Membership.objects.unscoped("test: inspects rows directly").filter(organization=configured, user__in=[elsewhere, removed]).exists()


# --- staff and superusers -------------------------------------------------------------------


@pytest.mark.parametrize("flags", [{"is_staff": True}, {"is_superuser": True}], ids=["staff", "superuser"])
def test_staff_are_never_signed_in_by_an_identity_provider_linked_by_email(client, configured, idp, events, flags):
    staff = MembershipFactory(organization=configured, user=UserFactory(email="it@acme.test", **flags)).user
    response = _sign_in(client, configured, idp, name_id="okta|it", email=staff.email)
    assert response.status_code == 403 and REFUSED in response.content.decode()
    assert not signed_in_user(client).is_authenticated
    assert not SamlIdentity.objects.unscoped("test: inspects rows directly").filter(user=staff).exists()
    assert _refusals(events) == [("staff_account", "it@acme.test")]


@pytest.mark.parametrize("flags", [{"is_staff": True}, {"is_superuser": True}], ids=["staff", "superuser"])
def test_staff_are_never_signed_in_by_an_identity_provider_linked_by_name_id(client, configured, idp, events, flags):
    # Linked while an ordinary member, made staff later.
    person = MembershipFactory(organization=configured, user=UserFactory(email="later@acme.test")).user
    SamlIdentity.objects.create(organization=configured, user=person, idp_entity_id=IDP_ENTITY_ID, name_id="okta|later")
    User.objects.filter(pk=person.pk).update(**flags)
    response = _sign_in(client, configured, idp, name_id="okta|later", email="whatever@acme.test")
    assert response.status_code == 403 and REFUSED in response.content.decode()
    assert not signed_in_user(client).is_authenticated
    assert _refusals(events) == [("staff_account", "whatever@acme.test")]


# --- what the sign-in records on the session ------------------------------------------------


def test_sign_in_records_the_organization_and_the_idps_session_end(client, configured, idp, other_organization):
    ends = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
    response = _sign_in(client, configured, idp, session_not_on_or_after=ends.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert response.status_code == 302, response.content.decode()[:500]

    sign_in = sign_in_of(response.wsgi_request)
    assert sign_in.sso == {str(configured.pk): float(calendar.timegm(ends.timetuple()))}
    assert sign_in.vouched_by_sso(configured)
    assert not sign_in.vouched_by_sso(other_organization)
    assert not sign_in.own and not sign_in.password  # an IdP's word is not a JagCall password
    # The record is on the stored session, not only on the request object.
    assert sign_in_of({"session": client.session, "user": signed_in_user(client)}).sso == sign_in.sso


def test_without_session_not_on_or_after_the_sign_on_ends_with_the_session(client, configured, idp):
    before = time.time()
    response = _sign_in(client, configured, idp)
    assert response.status_code == 302
    until = sign_in_of(response.wsgi_request).sso[str(configured.pk)]
    # Not the assertion's own (minutes-long) NotOnOrAfter: the session's absolute end.
    assert before + settings.SESSION_ABSOLUTE_TIMEOUT <= until <= time.time() + settings.SESSION_ABSOLUTE_TIMEOUT


def test_session_not_on_or_after_is_read_from_the_authn_statement(client, configured, idp):
    """An IdP session end later than the session's own lifetime is capped by the session's."""
    far = datetime.now(UTC) + timedelta(seconds=settings.SESSION_ABSOLUTE_TIMEOUT + 86400)
    response = _sign_in(client, configured, idp, session_not_on_or_after=far.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert response.status_code == 302
    until = sign_in_of(response.wsgi_request).sso[str(configured.pk)]
    assert until <= time.time() + settings.SESSION_ABSOLUTE_TIMEOUT
