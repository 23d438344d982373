"""Verified email domains for single sign-on: DNS TXT proof through a stand-in DNS server, or staff approval.

The resolver is the real one (dnspython) asking the stand-in of
tests/fakes/dns_server.py over UDP on 127.0.0.1, as production asks the
system's resolver.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.sso import domains as sso_domains, services as sso
from accounts.sso.models import SsoDomain
from accounts.tests.factories import MembershipFactory, UserFactory
from jagcall.kernel.errors import ApplicationError

pytestmark = pytest.mark.django_db


@pytest.fixture
def enterprise(organization):
    organization.plan_code = "enterprise"
    organization.save(update_fields=["plan_code"])
    return organization


def _add(organization, owner, domain="acme.test"):
    return sso.sso_domain_add(organization=organization, actor=owner, domain=domain)


def _page(client, organization):
    return reverse("accounts:organization-sso", kwargs={"org_slug": organization.slug})


# --- the domain's normal form ---------------------------------------------------------------


@pytest.mark.parametrize(
    "typed,expected",
    [("Acme.Test", "acme.test"), ("@acme.test", "acme.test"), ("acme.test.", "acme.test"), ("bücher.example", "xn--bcher-kva.example")],
)
def test_domains_are_stored_in_one_normal_form(typed, expected):
    assert sso_domains.domain_normalize(typed) == expected


@pytest.mark.parametrize("typed", ["", "acme", "ana@acme.test", "https://acme.test/", "acme..test", "-acme.test", "10.0.0.1", "a b.test", "x" * 300 + ".test"])
def test_what_is_not_a_domain_is_a_clear_error(typed):
    with pytest.raises(ApplicationError) as error:
        sso_domains.domain_normalize(typed)
    assert error.value.field == "domain" and "Enter a domain name" in error.value.message


def test_email_domain_is_compared_in_the_same_form():
    assert sso_domains.domain_of_email("Ana@ACME.test") == "acme.test"
    assert sso_domains.domain_of_email("no-at-sign") == ""


# --- DNS proof ------------------------------------------------------------------------------


def test_adding_a_domain_gives_a_txt_record_to_publish(enterprise, owner):
    row = _add(enterprise, owner, "Acme.Test")
    assert row.domain == "acme.test" and not row.is_verified
    assert len(row.token) >= 32
    assert sso_domains.txt_record_value(row.token) == f"jagcall-verification={row.token}"
    assert sso_domains.txt_record_names(row.domain) == ["_jagcall.acme.test", "acme.test"]


@pytest.mark.parametrize("name", ["_jagcall.acme.test", "acme.test"])
def test_published_txt_record_verifies_the_domain(enterprise, owner, dns_server, name):
    row = _add(enterprise, owner)
    dns_server.publish("acme.test", "v=spf1 -all")  # unrelated records are ignored
    dns_server.publish(name, sso_domains.txt_record_value(row.token))

    verified = sso.sso_domain_verify(organization=enterprise, actor=owner, domain_id=row.id)

    assert verified.is_verified and verified.verification_method == "dns" and verified.verified_by == owner
    assert ("_jagcall.acme.test", "TXT") in dns_server.questions  # it really asked the stand-in
    from compliance.models import AuditEvent

    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="sso_domain.verified")
    assert event.organization_id == enterprise.id and event.resource_type == "sso_domain"


def test_missing_record_says_what_to_publish_and_keeps_the_domain_unverified(enterprise, owner, dns_server):
    row = _add(enterprise, owner)
    with pytest.raises(ApplicationError) as error:
        sso.sso_domain_verify(organization=enterprise, actor=owner, domain_id=row.id)
    assert error.value.status == 400
    assert f"jagcall-verification={row.token}" in error.value.message and "_jagcall.acme.test" in error.value.message
    row.refresh_from_db()
    assert not row.is_verified and row.last_checked_at is not None


def test_another_organizations_token_does_not_verify_ours(enterprise, owner, other_organization, other_owner, dns_server):
    """Two organizations may claim one domain; each proves it with its own token."""
    other_organization.plan_code = "enterprise"
    other_organization.save(update_fields=["plan_code"])
    ours = _add(enterprise, owner)
    theirs = _add(other_organization, other_owner)
    assert ours.token != theirs.token
    dns_server.publish("_jagcall.acme.test", sso_domains.txt_record_value(theirs.token))
    dns_server.publish("_jagcall.acme.test", f"jagcall-verification={ours.token[:-1]}")  # a prefix of ours proves nothing

    assert sso.sso_domain_verify(organization=other_organization, actor=other_owner, domain_id=theirs.id).is_verified
    with pytest.raises(ApplicationError):
        sso.sso_domain_verify(organization=enterprise, actor=owner, domain_id=ours.id)
    ours.refresh_from_db()
    assert not ours.is_verified


@pytest.mark.parametrize("mode", ["servfail", "silent"])
def test_dns_failure_is_a_clear_try_again_not_a_500(enterprise, owner, dns_server, settings, mode):
    settings.SSO_DNS_TIMEOUT_SECONDS = 1
    row = _add(enterprise, owner)
    dns_server.publish("_jagcall.acme.test", sso_domains.txt_record_value(row.token))
    dns_server.mode = mode
    with pytest.raises(ApplicationError) as error:
        sso.sso_domain_verify(organization=enterprise, actor=owner, domain_id=row.id)
    assert error.value.status == 503 and "Try again in a few minutes" in error.value.message
    row.refresh_from_db()
    assert not row.is_verified


def test_resolver_uses_the_configured_nameserver(settings):
    settings.SSO_DNS_NAMESERVERS = ["127.0.0.1:5353", "[::1]:53", "10.0.0.2"]
    resolver = sso_domains.resolver()
    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [("127.0.0.1", 5353), ("::1", 53), ("10.0.0.2", 53)]
    from django.core.exceptions import ImproperlyConfigured

    settings.SSO_DNS_NAMESERVERS = ["dns.example.test"]
    with pytest.raises(ImproperlyConfigured):
        sso_domains.resolver()


# --- who may manage domains -----------------------------------------------------------------


def test_only_owners_of_enterprise_organizations_manage_domains(organization, owner, admin_user):
    with pytest.raises(ApplicationError) as error:
        _add(organization, owner)
    assert error.value.status == 403 and "Enterprise plan" in error.value.message
    organization.plan_code = "enterprise"
    organization.save(update_fields=["plan_code"])
    with pytest.raises(ApplicationError) as error:
        _add(organization, admin_user)
    assert error.value.status == 403
    assert not SsoDomain.objects.unscoped("test: inspects rows directly").exists()


def test_a_domain_is_listed_once(enterprise, owner):
    _add(enterprise, owner)
    with pytest.raises(ApplicationError) as error:
        _add(enterprise, owner, "ACME.test")
    assert error.value.field == "domain" and "already" in error.value.message


# --- the settings page ----------------------------------------------------------------------


def test_owner_adds_and_verifies_a_domain_on_the_page(owner_client, enterprise, dns_server):
    url = _page(owner_client, enterprise)
    response = owner_client.post(url, {"action": "domain_add", "domain": "acme.test"})
    assert response.status_code == 302
    row = SsoDomain.objects.unscoped("test: inspects rows directly").get(organization=enterprise)
    page = owner_client.get(url).content.decode()
    assert "_jagcall.acme.test" in page and f"jagcall-verification={row.token}" in page
    assert "Verify acme.test" in page

    missing = owner_client.post(url, {"action": "domain_verify", "domain_id": str(row.id)})
    assert missing.status_code == 400 and "No TXT record" in missing.content.decode()

    dns_server.publish("_jagcall.acme.test", f"jagcall-verification={row.token}")
    assert owner_client.post(url, {"action": "domain_verify", "domain_id": str(row.id)}).status_code == 302
    row.refresh_from_db()
    assert row.is_verified
    page = owner_client.get(url).content.decode()
    assert "Verified" in page and "Verify acme.test" not in page


def test_bad_domain_on_the_page_is_a_400(owner_client, enterprise):
    response = owner_client.post(_page(owner_client, enterprise), {"action": "domain_add", "domain": "not a domain"})
    assert response.status_code == 400 and "Enter a domain name" in response.content.decode()
    for garbage in ("", "x" * 100000, "acme\x00.test"):
        response = owner_client.post(_page(owner_client, enterprise), {"action": "domain_add", "domain": garbage})
        assert response.status_code == 400
    for garbage in ("", "not-a-uuid", "\x00"):
        response = owner_client.post(_page(owner_client, enterprise), {"action": "domain_verify", "domain_id": garbage})
        assert response.status_code == 400
    assert not SsoDomain.objects.unscoped("test: inspects rows directly").exists()


def test_another_organizations_domain_is_a_404(owner_client, enterprise, other_organization, other_owner):
    other_organization.plan_code = "enterprise"
    other_organization.save(update_fields=["plan_code"])
    theirs = _add(other_organization, other_owner)
    for action in ("domain_verify", "domain_remove"):
        response = owner_client.post(_page(owner_client, enterprise), {"action": action, "domain_id": str(theirs.id)})
        assert response.status_code == 404
    assert SsoDomain.objects.unscoped("test: inspects rows directly").filter(pk=theirs.pk).exists()


def test_members_and_admins_cannot_change_domains(client, enterprise, owner, admin_user, member):
    row = _add(enterprise, owner)
    for person in (admin_user, member):
        client.force_login(person)
        response = client.post(_page(client, enterprise), {"action": "domain_remove", "domain_id": str(row.id)})
        assert response.status_code == 403
        response = client.post(_page(client, enterprise), {"action": "domain_add", "domain": "globex.test"})
        assert response.status_code == 403
    assert list(SsoDomain.objects.unscoped("test: inspects rows directly").values_list("domain", flat=True)) == ["acme.test"]


def test_owner_removes_a_domain(owner_client, enterprise, owner):
    row = _add(enterprise, owner)
    response = owner_client.post(_page(owner_client, enterprise), {"action": "domain_remove", "domain_id": str(row.id)})
    assert response.status_code == 302
    assert not SsoDomain.objects.unscoped("test: inspects rows directly").exists()
    from compliance.models import AuditEvent

    assert AuditEvent.objects.unscoped("test: inspects rows directly").filter(action="sso_domain.removed", organization=enterprise).count() == 1


# --- staff approval in the back office ------------------------------------------------------


def test_support_staff_approve_a_domain_in_the_back_office(staff_client, staff_user, enterprise, owner):
    row = _add(enterprise, owner, "globex-dental.test")
    response = staff_client.post(
        reverse("admin:accounts_ssodomain_changelist"), {"action": "approve", "_selected_action": [str(row.pk)]}
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.is_verified and row.verification_method == "staff" and row.verified_by == staff_user
    from compliance.models import AuditEvent

    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="sso_domain.verified")
    assert event.organization_id == enterprise.id and event.actor_type == "support"
    assert event.resource_type == "sso_domain" and event.resource_id == str(row.pk)


def test_approval_is_for_staff_only(enterprise, owner):
    row = _add(enterprise, owner)
    with pytest.raises(ApplicationError) as error:
        sso.sso_domain_approve(domain=row, actor=owner)
    assert error.value.status == 403
    row.refresh_from_db()
    assert not row.is_verified


def test_back_office_domain_pages_are_read_only(staff_client, enterprise, owner):
    row = _add(enterprise, owner)
    page = staff_client.get(reverse("admin:accounts_ssodomain_change", args=[row.pk]))
    assert page.status_code == 200
    staff_client.post(reverse("admin:accounts_ssodomain_change", args=[row.pk]), {"domain": "evil.test"})
    row.refresh_from_db()
    assert row.domain == "acme.test"


def test_a_person_who_is_not_staff_cannot_reach_the_approval(client, enterprise, owner):
    row = _add(enterprise, owner)
    client.force_login(MembershipFactory(organization=enterprise, user=UserFactory(email="x@acme.test")).user)
    client.post(reverse("admin:accounts_ssodomain_changelist"), {"action": "approve", "_selected_action": [str(row.pk)]})
    row.refresh_from_db()
    assert not row.is_verified
