"""SAML 2.0 single sign-on, end to end against a real pysaml2 identity provider.

The IdP below runs inside the test: it has its own RSA key and certificate
(made with openssl), publishes metadata that an owner pastes into JagCall,
reads the AuthnRequest our login view redirects to, and signs its responses
with xmlsec1, as a real IdP does.
"""

from __future__ import annotations

import base64
import subprocess
from urllib.parse import parse_qs, urlparse

import pytest
from django.conf import settings
from django.contrib.sessions.backends.cache import SessionStore
from django.urls import reverse
from django.utils.html import escape
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server

from accounts.sso import saml as sso_saml, services as sso
from accounts.adapter import SSO_REQUIRED_MESSAGE
from accounts.entitlements import PLAN_ENTITLEMENTS, has_entitlement
from accounts.models import Membership, User
from accounts.sso.models import SamlConfiguration, SamlIdentity
from accounts.permissions import Role
from accounts.activity import audit
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory
from jagcall.kernel.errors import ApplicationError

pytestmark = pytest.mark.django_db

IDP_ENTITY_ID = "https://idp.example.test/saml/metadata"
AUTHN = {"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport", "authn_auth": IDP_ENTITY_ID}


def _key_and_cert(directory, name):
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", f"/CN={name}.example.test"],
        check=True,
        capture_output=True,
    )
    return key, cert


def _idp_config(key, cert, sp_metadata=(), lifetime=None) -> IdPConfig:
    conf = IdPConfig()
    conf.load(
        {
            "entityid": IDP_ENTITY_ID,
            "xmlsec_binary": settings.SAML_XMLSEC_BINARY,
            "key_file": str(key),
            "cert_file": str(cert),
            "accepted_time_diff": 60,
            "metadata": {"inline": list(sp_metadata)} if sp_metadata else {},
            "service": {
                "idp": {
                    "name": "Test IdP",
                    "endpoints": {
                        "single_sign_on_service": [
                            ("https://idp.example.test/sso/redirect", BINDING_HTTP_REDIRECT),
                            ("https://idp.example.test/sso/post", BINDING_HTTP_POST),
                        ]
                    },
                    "policy": {
                        "default": {
                            "lifetime": lifetime or {"minutes": 5},
                            "attribute_restrictions": None,
                            "name_form": NAME_FORMAT_URI,
                        }
                    },
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                }
            },
        }
    )
    return conf


class TestIdP:
    """A pysaml2 IdP that knows our SP from the metadata our endpoint serves."""

    __test__ = False

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.key, self.cert = _key_and_cert(tmp_path, "idp")
        self.metadata_xml = create_metadata_string(None, config=_idp_config(self.key, self.cert), sign=False).decode()
        self.sp_metadata: list[str] = []

    def learn_sp(self, client, organization, *, extra_sp_entity_id=None):
        response = client.get(reverse("sso:metadata", kwargs={"sso_slug": organization.slug}))
        assert response.status_code == 200, response.content[:300]
        xml = response.content.decode()
        self.sp_metadata = [xml]
        if extra_sp_entity_id:  # another SP this IdP also serves, with the same ACS
            self.sp_metadata.append(xml.replace(sso_saml.sp_urls(organization)["entity_id"], extra_sp_entity_id))

    def server(self, *, key=None, cert=None, lifetime=None) -> Server:
        return Server(config=_idp_config(key or self.key, cert or self.cert, self.sp_metadata, lifetime))

    def respond(self, saml_request, organization, *, name_id="okta|00u1", email="ana@acme.test", name="Ana Ruiz",
                sign_assertion=True, key=None, cert=None, lifetime=None, sp_entity_id=None,
                session_not_on_or_after=None) -> str:
        server = self.server(key=key, cert=cert, lifetime=lifetime)
        request = server.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT)
        urls = sso_saml.sp_urls(organization)
        response = server.create_authn_response(
            identity={"mail": [email], "displayName": [name]},
            in_response_to=request.message.id,
            destination=urls["acs"],
            sp_entity_id=sp_entity_id or urls["entity_id"],
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=name_id),
            authn=AUTHN,
            sign_assertion=sign_assertion,
            sign_response=False,
            session_not_on_or_after=session_not_on_or_after,  # the AuthnStatement's, when given
        )
        return base64.b64encode(str(response).encode()).decode()


@pytest.fixture
def idp(tmp_path):
    return TestIdP(tmp_path)


@pytest.fixture
def enterprise(organization):
    organization.plan_code = "enterprise"
    organization.save(update_fields=["plan_code"])
    return organization


def verify_domain(organization, owner, domain="acme.test"):
    """The organization has verified ``domain`` (here through support staff's approval)."""
    staff = UserFactory(email=f"support.{organization.slug}@jagcall.test", is_staff=True)
    row = sso.sso_domain_add(organization=organization, actor=owner, domain=domain)
    return sso.sso_domain_approve(domain=row, actor=staff)


@pytest.fixture
def configured(enterprise, owner, idp, client):
    sso.sso_configure(organization=enterprise, actor=owner, metadata_xml=idp.metadata_xml, enabled=True, require_sso=False)
    verify_domain(enterprise, owner)
    idp.learn_sp(client, enterprise, extra_sp_entity_id="https://other-sp.example.test/metadata/")
    return enterprise


@pytest.fixture
def events():
    seen = []

    def record(sender, kind, event=None, **kwargs):
        if kind == "security":
            seen.append(event)

    audit.connect(record, weak=False, dispatch_uid="test-sso-events")
    yield seen
    audit.disconnect(dispatch_uid="test-sso-events")


def start_login(client, organization) -> str:
    response = client.get(reverse("sso:login", kwargs={"sso_slug": organization.slug}))
    assert response.status_code == 302, response.content[:500]
    location = urlparse(response["Location"])
    assert location.netloc == "idp.example.test"
    return parse_qs(location.query)["SAMLRequest"][0]


def post_response(client, organization, saml_response):
    return client.post(reverse("sso:acs", kwargs={"sso_slug": organization.slug}), {"SAMLResponse": saml_response})


def signed_in_user(client):
    return client.get(reverse("accounts:home")).wsgi_request.user


# --- entitlements ------------------------------------------------------------------


def test_only_enterprise_includes_sso(organization):
    assert PLAN_ENTITLEMENTS == {"starter": {"messaging"}, "pro": {"messaging"}, "enterprise": {"messaging", "sso", "hipaa"}}
    assert not has_entitlement(organization, "sso")
    organization.plan_code = "enterprise"
    assert has_entitlement(organization, "sso")
    organization.plan_code = "platinum-unknown"
    assert not has_entitlement(organization, "sso")


# --- the sign-in flow --------------------------------------------------------------


def test_valid_assertion_signs_in_and_provisions_just_in_time(client, configured, idp, events):
    saml_request = start_login(client, configured)
    response = post_response(client, configured, idp.respond(saml_request, configured))

    assert response.status_code == 302, response.content.decode()[:1000]
    assert response["Location"] == reverse("accounts:dashboard", kwargs={"org_slug": configured.slug})
    user = User.objects.get(email="ana@acme.test")
    assert user.name == "Ana Ruiz" and not user.has_usable_password()
    assert signed_in_user(client) == user
    assert Membership.objects.unscoped("test: inspects rows directly").get(organization=configured, user=user).role == Role.MEMBER
    identity = SamlIdentity.objects.unscoped("test: inspects rows directly").get(user=user)
    assert (identity.organization, identity.idp_entity_id, identity.name_id) == (configured, IDP_ENTITY_ID, "okta|00u1")
    logins = [e for e in events if e["event"] == "sso.login"]
    assert len(logins) == 1
    assert logins[0]["user_id"] == str(user.pk) and logins[0]["organization_id"] == str(configured.pk)
    assert logins[0]["provisioned"] is True
    assert client.get(response["Location"]).status_code == 200
    from compliance.models import AuditEvent

    recorded = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="sso.login")
    assert recorded.organization_id == configured.id and recorded.actor_id == user.id and recorded.outcome == "success"


def test_same_name_id_with_a_changed_email_is_the_same_person(client, configured, idp):
    post_response(client, configured, idp.respond(start_login(client, configured), configured))
    first = User.objects.get(email="ana@acme.test")
    client.logout()

    response = post_response(
        client, configured, idp.respond(start_login(client, configured), configured, email="ana.ruiz@acme.test")
    )

    assert response.status_code == 302, response.content.decode()[:1000]
    assert signed_in_user(client) == first
    assert not User.objects.filter(email="ana.ruiz@acme.test").exists()
    assert SamlIdentity.objects.unscoped("test: inspects rows directly").count() == 1


def test_existing_member_is_linked_by_email(client, configured, idp, member):
    response = post_response(client, configured, idp.respond(start_login(client, configured), configured, email=member.email))
    assert response.status_code == 302
    assert signed_in_user(client) == member
    assert SamlIdentity.objects.unscoped("test: inspects rows directly").get(name_id="okta|00u1").user == member
    assert Membership.objects.unscoped("test: inspects rows directly").filter(organization=configured, user=member).count() == 1


def test_idp_cannot_take_over_an_account_of_another_organization(client, configured, idp, other_organization):
    # An address in the organization's own verified domain, whose account belongs only to another organization.
    elsewhere = MembershipFactory(organization=other_organization, user=UserFactory(email="dr.lee@acme.test")).user
    response = post_response(
        client, configured, idp.respond(start_login(client, configured), configured, email=elsewhere.email)
    )
    assert response.status_code == 403
    page = response.content.decode()
    assert "cannot sign you in through single sign-on" in page
    assert "already exists" not in page and "exists" not in page  # [!!] never says whether an account exists
    assert not signed_in_user(client).is_authenticated
    assert not SamlIdentity.objects.unscoped("test: inspects rows directly").exists()
    assert not Membership.objects.unscoped("test: inspects rows directly").filter(organization=configured, user=elsewhere).exists()


def _refusal(events):
    return [e["reason"] for e in events if e["event"] == "sso.login_failed"]


def test_unsigned_assertion_is_refused(client, configured, idp, events):
    response = post_response(
        client, configured, idp.respond(start_login(client, configured), configured, sign_assertion=False)
    )
    assert response.status_code in (400, 403)
    assert "was not signed" in response.content.decode()
    assert _refusal(events) == ["SignatureError"]
    assert not signed_in_user(client).is_authenticated
    assert not User.objects.filter(email="ana@acme.test").exists()


def test_assertion_signed_with_another_key_is_refused(client, configured, idp, tmp_path, events):
    other_key, other_cert = _key_and_cert(tmp_path, "attacker")
    response = post_response(
        client, configured, idp.respond(start_login(client, configured), configured, key=other_key, cert=other_cert)
    )
    assert response.status_code in (400, 403)
    assert "was not signed" in response.content.decode()
    assert _refusal(events) == ["SignatureError"]
    assert not signed_in_user(client).is_authenticated
    assert not User.objects.filter(email="ana@acme.test").exists()


def test_expired_assertion_is_refused(client, configured, idp, events):
    saml_response = idp.respond(start_login(client, configured), configured, lifetime={"minutes": -10})
    response = post_response(client, configured, saml_response)
    assert response.status_code in (400, 403)
    assert _refusal(events) == ["VerificationError"]  # pysaml2: "Condition not OK" (NotOnOrAfter passed)
    assert not signed_in_user(client).is_authenticated
    assert not User.objects.filter(email="ana@acme.test").exists()


def test_assertion_for_another_audience_is_refused(client, configured, idp, caplog):
    saml_response = idp.respond(
        start_login(client, configured), configured, sp_entity_id="https://other-sp.example.test/metadata/"
    )
    response = post_response(client, configured, saml_response)
    assert response.status_code in (400, 403)
    assert "AudienceRestrictions conditions not satisfied" in caplog.text
    assert not signed_in_user(client).is_authenticated
    assert not User.objects.filter(email="ana@acme.test").exists()


def test_replayed_response_is_refused(client, configured, idp, events):
    saml_response = idp.respond(start_login(client, configured), configured)
    assert post_response(client, configured, saml_response).status_code == 302
    client.logout()

    replay = post_response(client, configured, saml_response)

    assert replay.status_code in (400, 403)
    assert _refusal(events) == ["UnsolicitedResponse"]
    assert not signed_in_user(client).is_authenticated


def test_replay_is_refused_by_the_assertion_id_cache_even_with_a_pending_request(client, configured, idp):
    saml_request = start_login(client, configured)
    saml_session_key = client.cookies[settings.SAML_SESSION_COOKIE_NAME].value
    pending = dict(SessionStore(saml_session_key)["_saml2_outstanding_queries"])
    saml_response = idp.respond(saml_request, configured)
    assert post_response(client, configured, saml_response).status_code == 302
    client.logout()
    # Put the answered request back, as if the same request id were still pending.
    saml_session = SessionStore(saml_session_key)
    saml_session["_saml2_outstanding_queries"] = pending
    saml_session.save()
    client.cookies[settings.SAML_SESSION_COOKIE_NAME] = saml_session_key

    replay = post_response(client, configured, saml_response)

    assert replay.status_code == 403
    assert "already used" in replay.content.decode()
    assert not signed_in_user(client).is_authenticated


def test_assertion_mark_used_once():
    assert sso.assertion_mark_used(assertion_id="_abc", not_on_or_after=None) is True
    assert sso.assertion_mark_used(assertion_id="_abc", not_on_or_after=None) is False
    assert sso.assertion_mark_used(assertion_id="_def", not_on_or_after=None) is True


def test_unknown_disabled_and_non_enterprise_organizations_have_no_sso(client, configured, other_organization, idp):
    for slug in ("no-such-org", other_organization.slug):
        for name in ("sso:metadata", "sso:login"):
            assert client.get(reverse(name, kwargs={"sso_slug": slug})).status_code == 403
        assert client.post(reverse("sso:acs", kwargs={"sso_slug": slug}), {"SAMLResponse": "x"}).status_code == 403
    saml_request = start_login(client, configured)
    saml_response = idp.respond(saml_request, configured)
    SamlConfiguration.objects.unscoped("test: inspects rows directly").filter(organization=configured).update(enabled=False)
    response = post_response(client, configured, saml_response)
    assert response.status_code == 403
    assert "not set up" in response.content.decode()
    assert not signed_in_user(client).is_authenticated
    SamlConfiguration.objects.unscoped("test: inspects rows directly").filter(organization=configured).update(enabled=True)
    configured.plan_code = "pro"
    configured.save(update_fields=["plan_code"])
    assert client.get(reverse("sso:login", kwargs={"sso_slug": configured.slug})).status_code == 403


def test_garbage_response_is_a_clear_refusal_not_a_server_error(client, configured):
    start_login(client, configured)
    for body in ({"SAMLResponse": "not base64 at all"}, {"SAMLResponse": base64.b64encode(b"<x/>").decode()}, {}):
        response = client.post(reverse("sso:acs", kwargs={"sso_slug": configured.slug}), body)
        assert response.status_code in (400, 403)


def test_sp_metadata_names_our_entity_and_acs(client, configured):
    response = client.get(reverse("sso:metadata", kwargs={"sso_slug": configured.slug}))
    body = response.content.decode()
    urls = sso_saml.sp_urls(configured)
    assert f'entityID="{urls["entity_id"]}"' in body
    assert urls["acs"] in body and BINDING_HTTP_POST in body
    assert 'WantAssertionsSigned="true"' in body


# --- configuration -----------------------------------------------------------------


def test_owner_configures_sso(enterprise, owner, idp, events):
    configuration = sso.sso_configure(
        organization=enterprise,
        actor=owner,
        metadata_xml=idp.metadata_xml,
        metadata_url="https://idp.example.test/saml/metadata",
        enabled=True,
        require_sso=True,
    )
    assert configuration.idp_entity_id == IDP_ENTITY_ID
    assert configuration.enabled and configuration.require_sso
    assert [e["event"] for e in events] == ["sso.configured"]


def test_admins_cannot_configure_sso(enterprise, admin_user, idp):
    with pytest.raises(ApplicationError) as error:
        sso.sso_configure(organization=enterprise, actor=admin_user, metadata_xml=idp.metadata_xml, enabled=True, require_sso=False)
    assert error.value.status == 403
    assert not SamlConfiguration.objects.unscoped("test: inspects rows directly").exists()


def test_non_enterprise_organization_cannot_configure_sso(organization, owner, idp):
    with pytest.raises(ApplicationError) as error:
        sso.sso_configure(organization=organization, actor=owner, metadata_xml=idp.metadata_xml, enabled=True, require_sso=False)
    assert "Single sign-on is part of the Enterprise plan" in error.value.message
    assert not SamlConfiguration.objects.unscoped("test: inspects rows directly").exists()


@pytest.mark.parametrize(
    "xml,expected",
    [
        ("", "Paste your identity provider"),
        ("<not-metadata", "not valid SAML metadata"),
        ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "not valid SAML metadata"),
        (
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.example.test">'
            '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example.test/acs" index="0"/>'
            "</md:SPSSODescriptor></md:EntityDescriptor>",
            "exactly one identity provider",
        ),
        (
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.test">'
            '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/sso"/>'
            "</md:IDPSSODescriptor></md:EntityDescriptor>",
            "no signing certificate",
        ),
    ],
    ids=["empty", "malformed", "xxe", "sp-only", "no-certificate"],
)
def test_bad_metadata_is_a_clear_error_and_saves_nothing(enterprise, owner, xml, expected):
    with pytest.raises(ApplicationError) as error:
        sso.sso_configure(organization=enterprise, actor=owner, metadata_xml=xml, enabled=True, require_sso=False)
    assert expected in error.value.message
    assert error.value.status == 400 and error.value.field == "metadata_xml"
    assert not SamlConfiguration.objects.unscoped("test: inspects rows directly").exists()


def test_bad_metadata_keeps_the_previous_configuration(enterprise, owner, idp):
    sso.sso_configure(organization=enterprise, actor=owner, metadata_xml=idp.metadata_xml, enabled=True, require_sso=False)
    with pytest.raises(ApplicationError):
        sso.sso_configure(organization=enterprise, actor=owner, metadata_xml="<broken", enabled=False, require_sso=True)
    configuration = SamlConfiguration.objects.unscoped("test: inspects rows directly").get()
    assert configuration.enabled and not configuration.require_sso
    assert configuration.idp_metadata_xml == idp.metadata_xml.strip()


# --- the settings page -------------------------------------------------------------


def test_settings_page_links_owners_to_sso(owner_client, organization):
    page = owner_client.get(reverse("accounts:organization-settings", kwargs={"org_slug": organization.slug}))
    assert reverse("accounts:organization-sso", kwargs={"org_slug": organization.slug}) in page.content.decode()


def test_sso_page_for_a_non_enterprise_plan_explains_and_refuses(owner_client, organization, idp):
    url = reverse("accounts:organization-sso", kwargs={"org_slug": organization.slug})
    page = owner_client.get(url)
    assert page.status_code == 200
    assert "Single sign-on is part of the Enterprise plan" in page.content.decode()
    response = owner_client.post(url, {"metadata_xml": idp.metadata_xml, "enabled": "on"})
    assert response.status_code == 403
    assert "Single sign-on is part of the Enterprise plan" in response.content.decode()
    assert not SamlConfiguration.objects.unscoped("test: inspects rows directly").exists()


def test_owner_saves_sso_on_the_page(owner_client, enterprise, idp):
    url = reverse("accounts:organization-sso", kwargs={"org_slug": enterprise.slug})
    page = owner_client.get(url).content.decode()
    urls = sso_saml.sp_urls(enterprise)
    assert urls["entity_id"] in page and urls["acs"] in page
    response = owner_client.post(url, {"metadata_xml": idp.metadata_xml, "enabled": "on", "require_sso": "on"})
    assert response.status_code == 302
    configuration = SamlConfiguration.objects.unscoped("test: inspects rows directly").get(organization=enterprise)
    assert configuration.enabled and configuration.require_sso and configuration.idp_entity_id == IDP_ENTITY_ID
    from compliance.models import AuditEvent

    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="sso.configured")
    assert event.organization_id == enterprise.id and event.actor_type == "user" and event.ip == "127.0.0.1"


def test_bad_metadata_on_the_page_is_a_400_and_saves_nothing(owner_client, enterprise):
    url = reverse("accounts:organization-sso", kwargs={"org_slug": enterprise.slug})
    response = owner_client.post(url, {"metadata_xml": "<nope", "enabled": "on"})
    assert response.status_code == 400
    assert "not valid SAML metadata" in response.content.decode()
    assert not SamlConfiguration.objects.unscoped("test: inspects rows directly").exists()


# --- require SSO -------------------------------------------------------------------


@pytest.fixture
def sso_required(enterprise, owner, idp):
    sso.sso_configure(organization=enterprise, actor=owner, metadata_xml=idp.metadata_xml, enabled=True, require_sso=True)
    verify_domain(enterprise, owner)
    return enterprise


def _password_login(client, email):
    return client.post(reverse("account_login"), {"login": email, "password": DEFAULT_PASSWORD}, follow=True)


def test_require_sso_refuses_a_members_password_sign_in(client, sso_required, member):
    response = _password_login(client, member.email)
    assert response.status_code == 403
    page = response.content.decode()
    assert escape(SSO_REQUIRED_MESSAGE) in page
    assert reverse("sso:login", kwargs={"sso_slug": sso_required.slug}) in page
    assert not signed_in_user(client).is_authenticated


def test_require_sso_keeps_the_owners_password_sign_in(client, sso_required, owner):
    _password_login(client, owner.email)
    assert signed_in_user(client) == owner


def test_password_sign_in_works_when_sso_is_not_required(client, configured, member):
    _password_login(client, member.email)
    assert signed_in_user(client) == member


def test_require_sso_applies_to_members_of_other_organizations_only_where_required(client, sso_required, other_organization):
    """A password still opens the person's other organizations; the one that requires its sign-on refuses it."""
    person = UserFactory(email="both@example.test")
    MembershipFactory(organization=other_organization, user=person, role=Role.MEMBER)
    MembershipFactory(organization=sso_required, user=person, role=Role.ADMIN)
    _password_login(client, person.email)
    assert signed_in_user(client) == person
    assert client.get(f"/o/{other_organization.slug}/").status_code == 200
    response = client.get(f"/o/{sso_required.slug}/")
    assert response.status_code == 302 and response["Location"].startswith(f"/sso/{sso_required.slug}/login/")


def test_a_password_sign_in_that_would_open_nothing_is_refused(client, sso_required):
    """Every organization of this person requires its single sign-on of them: the password sign-in says so."""
    person = UserFactory(email="only-sso@example.test")
    MembershipFactory(organization=sso_required, user=person, role=Role.MEMBER)
    _password_login(client, person.email)
    assert not signed_in_user(client).is_authenticated


def test_require_sso_member_can_still_sign_in_through_sso(client, sso_required, idp, member):
    idp.learn_sp(client, sso_required)
    response = post_response(client, sso_required, idp.respond(start_login(client, sso_required), sso_required, email=member.email))
    assert response.status_code == 302
    assert signed_in_user(client) == member


def test_require_sso_also_closes_the_api_password_exchange(api_client, sso_required, member, owner):
    def token_for(user):
        return api_client.post(
            "/api/v1/auth/token",
            {"email": user.email, "password": DEFAULT_PASSWORD, "organization": sso_required.slug},
            format="json",
        )

    refused = token_for(member)
    assert refused.status_code == 403 and "single sign-on" in refused.content.decode()
    assert token_for(owner).status_code == 200  # the break-glass owner keeps password access


def test_a_full_organization_provisions_no_one_and_says_why(client, configured, idp, events, monkeypatch, owner):
    from accounts.entitlements import PLANS

    # One seat, the owner's: no room for a newcomer.
    monkeypatch.setitem(PLANS["enterprise"].limits, "seats", 1)
    response = post_response(client, configured, idp.respond(start_login(client, configured), configured))
    assert response.status_code == 403
    page = response.content.decode()
    assert "has used all 1 team member seats of its Enterprise plan" in page
    assert "free a seat or upgrade the plan" in page
    assert not signed_in_user(client).is_authenticated
    assert not User.objects.filter(email="ana@acme.test").exists()
    assert not SamlIdentity.objects.unscoped("test: inspects rows directly").exists()
    assert [e["reason"] for e in events if e["event"] == "sso.login_refused"] == ["seats_full"]
    # An account that belongs elsewhere reads the same: the page never says whether an account exists.
    client.logout()
    UserFactory(email="dr.lee@acme.test")
    other = post_response(client, configured, idp.respond(start_login(client, configured), configured,
                                                          name_id="okta|00u2", email="dr.lee@acme.test"))  # fmt: skip
    assert other.status_code == 403 and "has used all 1 team member seats" in other.content.decode()


def test_a_member_already_in_signs_in_when_the_organization_is_full(client, configured, idp, member, monkeypatch):
    from accounts.entitlements import PLANS

    monkeypatch.setitem(PLANS["enterprise"].limits, "seats", 2)  # the owner and this member
    response = post_response(client, configured, idp.respond(start_login(client, configured), configured, email=member.email))
    assert response.status_code == 302
    assert signed_in_user(client) == member
