"""Every mutating URL pattern records its audit event (C7).

``MUTATING_ROUTES`` is computed from the URLconf: every route whose view
handles POST, PUT, PATCH or DELETE, outside the back office (covered by the
LogEntry tests below). Each must have a RECIPE here that makes the change
the way a user does and names the audit action it must produce, or be
listed in RECORDED_ELSEWHERE with the test that proves it. A route added
later without either fails ``test_every_mutating_route_is_covered``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from django.contrib.admin.models import LogEntry
from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.api_keys.services import api_key_create
from accounts.models import ApiKey, Invitation, Membership
from accounts.permissions import Role
from accounts.scopes import ALL_SCOPES
from accounts.services import invitation_create
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory, enable_totp
from accounts.tests.test_identity import link_in, reset_link, signup_data
from accounts.tests.test_jwt import pair_for
from accounts.tests.test_mfa import code_at, second_factor, sign_in
from accounts.tests.urlwalk import all_routes
from compliance.models import AuditEvent

pytestmark = pytest.mark.django_db

MUTATING_METHODS = ("post", "put", "patch", "delete")


def mutating_routes() -> set[str]:
    names = set()
    for route in all_routes():
        view = route.view_class
        if view is None or route.route.startswith("admin/") or route.name.startswith("django.views.generic"):
            continue
        if any(hasattr(view, method) for method in MUTATING_METHODS):
            names.add(route.name)
    return names


@dataclass
class World:
    organization: object
    owner: object
    admin: object
    member: object
    turnstile: object
    before: set | None = None

    def mark(self) -> None:
        """Setup is done: only events recorded from here on count for the recipe."""
        self.before = set(AuditEvent.objects.unscoped("test: inspects rows directly").values_list("id", flat=True))

    def client_for(self, user, *, real_login: bool = False) -> Client:
        client = Client()
        if real_login:
            sign_in(client, user)
        else:
            client.force_login(user)
        return client

    def bearer(self, raw: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    def key(self, *scopes) -> str:
        _key, raw = api_key_create(
            organization=self.organization, actor=self.owner, name="Walk",
            scopes=list(scopes or ALL_SCOPES),
        )
        return raw

    def url(self, name: str, **kwargs) -> str:
        return reverse(name, kwargs=kwargs)

    @property
    def slug(self) -> str:
        return self.organization.slug


def _ok(response, *statuses):
    assert response.status_code in (statuses or (200, 201, 204, 302)), (response.status_code, response.content[:500])
    return response


# --- recipes: route name -> does it as a user would, returns the action(s) it must record ---


def _invite(world, email="new@example.test"):
    # Starter's three seats are taken by the fixtures' members: Pro has room for one more.
    world.organization.plan_code = "pro"
    world.organization.save(update_fields=["plan_code"])
    return invitation_create(organization=world.organization, actor=world.owner, email=email)


def _app(world):
    from accounts.oauth.tests.factories import register

    return register(world.organization)


def _oauth_tokens(world):
    from accounts.oauth.tests.factories import tokens_for

    client = world.client_for(world.owner)
    app = _app(world)
    return client, app, tokens_for(client, app, organization=world.organization)


def recipe_organization_create(world):
    _ok(world.client_for(world.owner).post("/orgs/new/", {"name": "Second Clinic"}))
    return "organization.created"


def recipe_invitation_accept(world):
    _invitation, token = _invite(world, "joiner@example.test")
    joiner = UserFactory(email="joiner@example.test")
    _ok(world.client_for(joiner).post(f"/invitations/{token}/"))
    return "invitation.accepted"


def recipe_organization_settings(world):
    _ok(world.client_for(world.owner).post(world.url("accounts:organization-settings", org_slug=world.slug), {"name": "Renamed"}))
    return "organization.updated"


def recipe_organization_security(world):
    enable_totp(world.owner)
    url = world.url("accounts:organization-security", org_slug=world.slug)
    _ok(world.client_for(world.owner).post(url, {"require_two_factor": "on"}))
    return "organization.security_changed"


def recipe_organization_leave(world):
    _ok(world.client_for(world.member).post(world.url("accounts:organization-leave", org_slug=world.slug)))
    return "member.left"


def recipe_invitation_create(world):
    world.organization.plan_code = "pro"  # a seat free for the invitation
    world.organization.save(update_fields=["plan_code"])
    url = world.url("accounts:invitation-create", org_slug=world.slug)
    _ok(world.client_for(world.owner).post(url, {"email": "invitee@example.test", "role": Role.MEMBER}))
    return "invitation.created"


def recipe_invitation_revoke(world):
    invitation, _token = _invite(world)
    url = world.url("accounts:invitation-revoke", org_slug=world.slug, invitation_id=invitation.id)
    _ok(world.client_for(world.owner).post(url))
    return "invitation.revoked"


def recipe_membership_role(world):
    membership = Membership.objects.unscoped("test: inspects rows directly").get(user=world.member, organization=world.organization)
    url = world.url("accounts:membership-role", org_slug=world.slug, membership_id=membership.id)
    _ok(world.client_for(world.owner).post(url, {"role": Role.ADMIN}))
    return "member.role_changed"


def recipe_membership_remove(world):
    membership = Membership.objects.unscoped("test: inspects rows directly").get(user=world.member, organization=world.organization)
    url = world.url("accounts:membership-remove", org_slug=world.slug, membership_id=membership.id)
    _ok(world.client_for(world.owner).post(url))
    return "member.removed"


def recipe_portal_api_key_create(world):
    url = world.url("accounts:api-key-list", org_slug=world.slug)
    _ok(world.client_for(world.owner).post(url, {"name": "CRM", "scopes": ["members:read"], "expires_in_days": ""}))
    return "api_key.created"


def recipe_portal_api_key_revoke(world):
    world.key("members:read")
    key = ApiKey.objects.unscoped("test: inspects rows directly").get(name="Walk")
    url = world.url("accounts:api-key-revoke", org_slug=world.slug, api_key_id=key.id)
    _ok(world.client_for(world.owner).post(url))
    return "api_key.revoked"


def recipe_oauth_application_create(world):
    url = world.url("oauth:application-create", org_slug=world.slug)
    data = {"name": "CRM", "client_type": "confidential", "redirect_uris": "https://crm.example/cb"}
    _ok(world.client_for(world.owner).post(url, data), 200, 302)
    return "oauth.application_created"


def recipe_oauth_application_revoke_tokens(world):
    app = _app(world)
    url = world.url("oauth:application-revoke-tokens", org_slug=world.slug, application_id=app.application.id)
    _ok(world.client_for(world.owner).post(url))
    return "oauth.application_tokens_revoked"


def recipe_oauth_application_delete(world):
    app = _app(world)
    url = world.url("oauth:application-delete", org_slug=world.slug, application_id=app.application.id)
    _ok(world.client_for(world.owner).post(url))
    return "oauth.application_deleted"


def recipe_oauth_application_update(world):
    app = _app(world)
    url = world.url("oauth:application-update", org_slug=world.slug, application_id=app.application.id)
    _ok(world.client_for(world.owner).post(url, {"name": "CRM v2", "redirect_uris": "https://crm.example/v2/cb"}))
    return "oauth.application_updated"


def recipe_oauth_application_rotate_secret(world):
    app = _app(world)
    url = world.url("oauth:application-rotate-secret", org_slug=world.slug, application_id=app.application.id)
    _ok(world.client_for(world.owner).post(url))
    return "oauth.application_secret_rotated"


def recipe_oauth_organization_connection_revoke(world):
    from accounts.oauth.tests.factories import register, tokens_for
    from accounts.tests.factories import OrganizationFactory

    # An application registered by another organization, connected here by a member; an admin disconnects it.
    partner = register(OrganizationFactory(name="Partner Co", slug="partner-co"), name="Partner CRM")
    tokens_for(world.client_for(world.member), partner, organization=world.organization)
    url = world.url(
        "oauth:organization-connection-revoke", org_slug=world.slug, application_id=partner.application.id
    )
    _ok(world.client_for(world.admin).post(url))
    return "oauth.organization_connection_revoked"


def recipe_oauth_connection_revoke(world):
    client, app, _tokens = _oauth_tokens(world)
    _ok(client.post(world.url("oauth:connection-revoke", application_id=app.application.id)))
    return "oauth.authorization_revoked"


def recipe_oauth_authorize(world):
    from accounts.oauth.tests.factories import obtain_code

    obtain_code(world.client_for(world.owner), _app(world), organization=world.organization)
    return "oauth.authorized"


def recipe_oauth_token(world):
    _oauth_tokens(world)
    return "oauth.token_issued"


def recipe_oauth_revoke_token(world):
    client, app, tokens = _oauth_tokens(world)
    _ok(client.post("/oauth/revoke_token", {"token": tokens["access_token"]}, **app.basic_auth()))
    return "oauth.token_revoked"


def recipe_api_token_obtain(world):
    pair_for(APIClient(), world.owner, world.organization)
    return "api.token_issued"


def recipe_api_token_refresh(world):
    pair = pair_for(APIClient(), world.owner, world.organization)
    _ok(APIClient().post("/api/v1/auth/token/refresh", {"refresh": pair["refresh"]}, format="json"))
    return "api.token_refreshed"


def recipe_api_token_revoke(world):
    pair = pair_for(APIClient(), world.owner, world.organization)
    _ok(APIClient().post("/api/v1/auth/token/revoke", {"refresh": pair["refresh"]}, format="json"))
    return "api.token_revoked"


def recipe_api_key_create(world):
    client = world.bearer(world.key())
    world.mark()  # the acting key's own creation is setup
    _ok(client.post("/api/v1/api-keys", {"name": "Sync", "scopes": ["members:read"]}, format="json"))
    return "api_key.created"


def recipe_api_key_revoke(world):
    raw = world.key()
    target = ApiKey.objects.create(organization=world.organization, name="Old", prefix="oldkey01", key_hash="0" * 64, scopes=[])
    _ok(world.bearer(raw).delete(f"/api/v1/api-keys/{target.id}"))
    return "api_key.revoked"


def recipe_api_organization_update(world):
    _ok(world.bearer(world.key()).patch("/api/v1/organization", {"name": "Via API"}, format="json"))
    return "organization.updated"


def recipe_api_member_update_and_remove(world):
    membership = Membership.objects.unscoped("test: inspects rows directly").get(user=world.member, organization=world.organization)
    client = world.bearer(world.key())
    _ok(client.patch(f"/api/v1/members/{membership.id}", {"role": Role.ADMIN}, format="json"))
    _ok(client.delete(f"/api/v1/members/{membership.id}"))
    return ["member.role_changed", "member.removed"]


def recipe_login(world):
    sign_in(Client(), world.owner)
    return "user.login"


def recipe_logout(world):
    client = world.client_for(world.owner, real_login=True)
    _ok(client.post("/auth/logout/"))
    return "user.logout"


def recipe_signup(world):
    _ok(Client().post("/auth/signup/", signup_data(world.turnstile.issue_token(action="signup"))))
    return "user.registered"


def recipe_reauthenticate(world):
    client = world.client_for(world.owner, real_login=True)
    _ok(client.post("/auth/reauthenticate/", {"password": DEFAULT_PASSWORD}))
    return "user.reauthenticated"


def recipe_email(world):
    client = world.client_for(world.owner, real_login=True)
    _ok(client.post("/auth/email/", {"email": "second@acme.test", "action_add": ""}))
    return "user.email_added"


def recipe_change_password(world):
    client = world.client_for(world.owner, real_login=True)
    new = "quartz harbour lantern 42"
    _ok(client.post("/auth/password/change/", {"oldpassword": DEFAULT_PASSWORD, "password1": new, "password2": new}))
    return "user.password_changed"


def recipe_set_password(world):
    person = UserFactory(email="sso-only@acme.test")
    person.set_unusable_password()
    person.save()
    client = world.client_for(person)
    new = "quartz harbour lantern 42"
    _ok(client.post("/auth/password/set/", {"password1": new, "password2": new}))
    return "user.password_set"


def recipe_reset_password(world):
    _ok(Client().post("/auth/password/reset/", {"email": world.owner.email}))
    return "user.password_reset_requested"


def recipe_reset_password_from_key(world):
    client = Client()
    client.post("/auth/password/reset/", {"email": world.owner.email})
    page = client.get(reset_link(world.owner.email))
    new = "quartz harbour lantern 42"
    _ok(client.post(page["Location"], {"password1": new, "password2": new}))
    return "user.password_reset_completed"


def recipe_confirm_email(world):
    client = world.client_for(world.owner, real_login=True)
    mail.outbox.clear()
    client.post("/auth/email/", {"email": "second@acme.test", "action_add": ""})
    link = link_in(mail.outbox[-1], r"/auth/confirm-email/[^\s/]+/")
    _ok(client.post(link))
    return "user.email_verified"


def recipe_mfa_authenticate(world):
    secret = enable_totp(world.owner)
    client = Client()
    sign_in(client, world.owner)
    _ok(second_factor(client, code_at(secret)))
    return "user.mfa_used"


def recipe_mfa_reauthenticate(world):
    secret = enable_totp(world.owner)
    client = Client()
    sign_in(client, world.owner)
    second_factor(client, code_at(secret))
    _ok(client.post("/auth/2fa/reauthenticate/", {"code": code_at(secret, 1)}))
    return "user.reauthenticated"


def recipe_mfa_activate_totp(world):
    client = world.client_for(world.owner, real_login=True)
    client.post("/auth/reauthenticate/", {"password": DEFAULT_PASSWORD})
    page = client.get("/auth/2fa/totp/activate/")
    _ok(client.post("/auth/2fa/totp/activate/", {"code": code_at(page.context["form"].secret)}))
    factors = AuditEvent.objects.unscoped("test: inspects rows directly").filter(action="user.mfa_enabled").values_list("metadata__factor", flat=True)
    assert sorted(factors) == ["recovery_codes", "totp"]
    return ["user.mfa_enabled", "user.mfa_enabled"]  # the authenticator app, and the recovery codes made with it


def _signed_in_with_totp(world, page: str) -> Client:
    """Signed in with password and code, and confirmed again if ``page`` asks for it."""
    secret = enable_totp(world.owner)
    client = Client()
    sign_in(client, world.owner)
    second_factor(client, code_at(secret))
    response = client.get(page)
    if response.status_code == 302 and "reauthenticate" in response["Location"]:
        client.post(response["Location"], {"password": DEFAULT_PASSWORD, "code": code_at(secret, 1)})
    return client


def recipe_mfa_deactivate_totp(world):
    client = _signed_in_with_totp(world, "/auth/2fa/totp/deactivate/")
    _ok(client.post("/auth/2fa/totp/deactivate/"))
    return "user.mfa_disabled"


def recipe_mfa_generate_recovery_codes(world):
    client = _signed_in_with_totp(world, "/auth/2fa/recovery-codes/generate/")
    _ok(client.post("/auth/2fa/recovery-codes/generate/"))
    return "user.mfa_recovery_codes_regenerated"


def recipe_usersessions(world):
    other_device = world.client_for(world.owner, real_login=True)
    this_device = world.client_for(world.owner, real_login=True)
    _ok(this_device.post("/auth/sessions/", {"action": "end"}))  # "sign out everywhere else"
    assert other_device.get(f"/o/{world.slug}/").status_code == 302
    return "user.session_revoked"


def _agent_form(name="Front desk"):
    return {
        "name": name, "system_prompt": "You answer the phone.", "llm_provider": "openai", "llm_model": "gpt-4o-mini",
        "temperature": "0.7", "stt_language": "en-US", "stt_model": "nova-3", "max_call_seconds": "600",
        "voicemail_action": "hang_up", "ai_disclosure_enabled": "on", "ai_disclosure": "You are speaking with an AI.",
        "recording_disclosure_enabled": "on", "recording_disclosure": "This call is recorded.",
        "analysis-0-name": "appointment_requested", "analysis-0-type": "boolean",
    }  # fmt: skip


def _agent(world):
    from telephony.tests.factories import AgentFactory

    return AgentFactory(organization=world.organization)


def recipe_agent_create(world):
    _ok(world.client_for(world.admin).post(world.url("telephony:agent-create", org_slug=world.slug), _agent_form()))
    return "agent.created"


def recipe_agent_update(world):
    agent = _agent(world)
    url = world.url("telephony:agent-update", org_slug=world.slug, agent_id=agent.id)
    _ok(world.client_for(world.owner).post(url, _agent_form("Renamed")))
    return "agent.updated"


def recipe_agent_delete(world):
    agent = _agent(world)
    _ok(world.client_for(world.owner).post(world.url("telephony:agent-delete", org_slug=world.slug, agent_id=agent.id)))
    return "agent.deleted"


def recipe_api_agent_create(world):
    body = {"name": "Via API", "system_prompt": "You answer the phone.", "tools": [{"type": "end_call"}]}
    _ok(world.bearer(world.key("agents:write")).post("/api/v1/agents", body, format="json"))
    return "agent.created"


def recipe_api_agent_update_and_delete(world):
    agent = _agent(world)
    client = world.bearer(world.key("agents:write"))
    _ok(client.patch(f"/api/v1/agents/{agent.id}", {"temperature": 0.3}, format="json"))
    _ok(client.delete(f"/api/v1/agents/{agent.id}"))
    return ["agent.updated", "agent.deleted"]


# --- knowledge bases: portal and API ---


KNOWLEDGE_TEXT = b"Acme Dental opens at 8 am on weekdays. Parking is behind the building on Elm Street."


def _knowledge_base(world, name="Handbook"):
    from knowledge.services import knowledge_base_create

    return knowledge_base_create(organization=world.organization, actor=world.owner, name=name)


def _knowledge_document(world, base=None, *, failed=False):
    from knowledge.services import document_add, document_fail

    base = base or _knowledge_base(world)
    document = document_add(
        organization=world.organization, actor=world.owner, knowledge_base=base, name="hours.txt",
        content=KNOWLEDGE_TEXT,
    )  # fmt: skip
    if failed:
        document_fail(document, "timeout", "Reading this document took too long.")
    return base, document


def _upload(name="hours.txt", content=KNOWLEDGE_TEXT):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="text/plain")


def recipe_knowledge_base_create(world):
    url = world.url("knowledge:base-list", org_slug=world.slug)
    _ok(world.client_for(world.member).post(url, {"name": "Price list", "description": "What things cost"}))
    return "knowledge.base_created"


def recipe_knowledge_base_update(world):
    base = _knowledge_base(world)
    url = world.url("knowledge:base-update", org_slug=world.slug, knowledge_base_id=base.id)
    _ok(world.client_for(world.member).post(url, {"name": "Renamed", "description": ""}))
    return "knowledge.base_updated"


def recipe_knowledge_base_delete(world):
    base = _knowledge_base(world)
    url = world.url("knowledge:base-delete", org_slug=world.slug, knowledge_base_id=base.id)
    _ok(world.client_for(world.owner).post(url))
    return "knowledge.base_deleted"


def recipe_knowledge_document_upload(world):
    base = _knowledge_base(world)
    url = world.url("knowledge:document-upload", org_slug=world.slug, knowledge_base_id=base.id)
    _ok(world.client_for(world.member).post(url, {"file": _upload()}))
    return "knowledge.document_added"


def recipe_knowledge_document_reprocess(world):
    base, document = _knowledge_document(world, failed=True)
    url = world.url(
        "knowledge:document-reprocess", org_slug=world.slug, knowledge_base_id=base.id, document_id=document.id
    )
    _ok(world.client_for(world.member).post(url))
    return "knowledge.document_reprocessed"


def recipe_knowledge_document_delete(world):
    base, document = _knowledge_document(world)
    url = world.url("knowledge:document-delete", org_slug=world.slug, knowledge_base_id=base.id, document_id=document.id)
    _ok(world.client_for(world.member).post(url))
    return "knowledge.document_deleted"


def recipe_api_knowledge_base_create(world):
    _ok(world.bearer(world.key("knowledge:write")).post("/api/v1/knowledge-bases", {"name": "Via API"}, format="json"))
    return "knowledge.base_created"


def recipe_api_knowledge_base_update_and_delete(world):
    base = _knowledge_base(world)
    client = world.bearer(world.key("knowledge:write"))
    _ok(client.patch(f"/api/v1/knowledge-bases/{base.id}", {"name": "Renamed"}, format="json"))
    _ok(client.delete(f"/api/v1/knowledge-bases/{base.id}"))
    return ["knowledge.base_updated", "knowledge.base_deleted"]


def recipe_api_knowledge_document_upload(world):
    base = _knowledge_base(world)
    client = world.bearer(world.key("knowledge:write"))
    _ok(client.post(f"/api/v1/knowledge-bases/{base.id}/documents", {"file": _upload()}, format="multipart"))
    return "knowledge.document_added"


def recipe_api_knowledge_document_delete(world):
    base, document = _knowledge_document(world)
    client = world.bearer(world.key("knowledge:write"))
    _ok(client.delete(f"/api/v1/knowledge-bases/{base.id}/documents/{document.id}"))
    return "knowledge.document_deleted"


def recipe_api_knowledge_document_reprocess(world):
    base, document = _knowledge_document(world, failed=True)
    client = world.bearer(world.key("knowledge:write"))
    _ok(client.post(f"/api/v1/knowledge-bases/{base.id}/documents/{document.id}/reprocess"), 202)
    return "knowledge.document_reprocessed"


# --- provider accounts and phone numbers: the provider answers from its stand-in ---


@contextmanager
def _standin(name: str):
    """A provider stand-in with the settings pointing at it (as tests/fakes/plugin.py's fixtures do)."""
    from django.conf import settings
    from django.test import override_settings

    if name == "twilio":
        from jagcall.kernel.standins.twilio import TwilioStandIn

        standin = TwilioStandIn().start()
        extra = {"TWILIO_ACCOUNT_SID": standin.account_sid, "TWILIO_AUTH_TOKEN": standin.auth_token}
    elif name == "stripe":
        from jagcall.kernel.standins.stripe import StripeStandIn

        standin = StripeStandIn().start()
        extra = {"STRIPE_SECRET_KEY": standin.api_key, "STRIPE_WEBHOOK_SECRET": standin.webhook_secret}
    else:
        from jagcall.kernel.standins.openai import OpenAIStandIn

        standin = OpenAIStandIn(api_key="sk-coverage-key-0123456789abcdef").start()
        extra = {"OPENAI_API_KEY": standin.api_key}
    urls = {**(getattr(settings, "PROVIDER_BASE_URLS", None) or {}), name: standin.base_url}
    try:
        with override_settings(PROVIDER_BASE_URLS=urls, **extra):
            yield standin
    finally:
        standin.stop()


def _own_twilio_account(world, standin):
    import secrets as _secrets

    from jagcall.kernel.standins.twilio.records import Account, new_sid
    from integrations.services import credential_save

    sid, token = new_sid("AC"), _secrets.token_hex(16)
    standin.accounts[sid] = Account(sid, token, "Own", sid)
    credential_save(organization=world.organization, actor=world.owner, provider="twilio",
                    values={"account_sid": sid, "auth_token": token})
    return sid, token


def _bought(world):
    from telephony.services.numbers import number_buy

    return number_buy(organization=world.organization, actor=world.owner, area_code="415")


def recipe_provider_connect(world):
    with _standin("openai") as standin:
        _ok(world.client_for(world.owner).post(
            world.url("integrations:provider-list", org_slug=world.slug), {"provider": "openai", "api_key": standin.api_key}
        ))
    return "provider_credential.connected"


def recipe_provider_disconnect(world):
    with _standin("openai") as standin:
        from integrations.services import credential_save

        credential_save(organization=world.organization, actor=world.owner, provider="openai", values={"api_key": standin.api_key})
    _ok(world.client_for(world.owner).post(
        world.url("integrations:provider-disconnect", org_slug=world.slug), {"provider": "openai"}
    ))
    return "provider_credential.disconnected"


def recipe_number_buy(world):
    with _standin("twilio"):
        _ok(world.client_for(world.owner).post(world.url("telephony:number-buy", org_slug=world.slug), {"area_code": "415"}))
    return "phone_number.purchased"


def recipe_number_assign(world):
    from telephony.tests.factories import AgentFactory

    with _standin("twilio"):
        number = _bought(world)
    agent = AgentFactory(organization=world.organization)
    url = world.url("telephony:number-assign", org_slug=world.slug, number_id=number.id)
    _ok(world.client_for(world.owner).post(url, {"agent": agent.id}))
    return "phone_number.assigned"


def recipe_number_release(world):
    with _standin("twilio"):
        number = _bought(world)
        _ok(world.client_for(world.owner).post(world.url("telephony:number-release", org_slug=world.slug, number_id=number.id)))
    return "phone_number.released"


def recipe_number_import(world):
    from jagcall.kernel.providers import twilio_client

    with _standin("twilio") as standin:
        sid, token = _own_twilio_account(world, standin)
        theirs = twilio_client(sid, token).api.v2010.accounts(sid).incoming_phone_numbers.create(area_code="512")
        _ok(world.client_for(world.owner).post(world.url("telephony:number-import", org_slug=world.slug), {"twilio_sid": theirs.sid}))
    return "phone_number.imported"


def recipe_api_number_buy(world):
    with _standin("twilio"):
        _ok(world.bearer(world.key()).post("/api/v1/numbers", {"area_code": "415"}, format="json"))
    return "phone_number.purchased"


def recipe_api_number_assign_and_release(world):
    from telephony.tests.factories import AgentFactory

    client = world.bearer(world.key())
    with _standin("twilio"):
        number = _bought(world)
        agent = AgentFactory(organization=world.organization)
        _ok(client.patch(f"/api/v1/numbers/{number.id}", {"agent_id": str(agent.id)}, format="json"))
        _ok(client.delete(f"/api/v1/numbers/{number.id}"))
    return ["phone_number.assigned", "phone_number.released"]


def recipe_api_number_import(world):
    from jagcall.kernel.providers import twilio_client

    with _standin("twilio") as standin:
        sid, token = _own_twilio_account(world, standin)
        theirs = twilio_client(sid, token).api.v2010.accounts(sid).incoming_phone_numbers.create(area_code="512")
        _ok(world.bearer(world.key()).post("/api/v1/numbers/import", {"twilio_sid": theirs.sid}, format="json"))
    return "phone_number.imported"


def recipe_messaging_help_text(world):
    url = world.url("messaging:settings", org_slug=world.slug)
    answer = "Acme Dental: call us at 415 555 0100. Reply STOP to unsubscribe."
    _ok(world.client_for(world.owner).post(url, {"help_text": answer}))
    return "messaging_profile.help_text_changed"


def recipe_messaging_agent_replies(world):
    from telephony.tests.factories import AgentFactory, PhoneNumberFactory

    agent = AgentFactory(organization=world.organization)
    number = PhoneNumberFactory(organization=world.organization, sms_enabled=True, agent=agent)
    url = world.url("messaging:settings-agent-replies", org_slug=world.slug, number_id=number.id)
    _ok(world.client_for(world.owner).post(url, {"agent_replies": "on"}))
    return "phone_number.agent_replies_enabled"


def recipe_messaging_a2p_check(world):
    with _standin("twilio") as standin:
        number = _bought(world)
        standin.register_a2p(number.account_sid, number.number, "VERIFIED")
        url = world.url("messaging:settings-a2p-check", org_slug=world.slug, number_id=number.id)
        _ok(world.client_for(world.owner).post(url))
    return "phone_number.a2p_checked"


RECIPES: dict[str, Callable] = {
    "integrations:provider-list": recipe_provider_connect,
    "integrations:provider-disconnect": recipe_provider_disconnect,
    "telephony:number-buy": recipe_number_buy,
    "telephony:number-assign": recipe_number_assign,
    "telephony:number-release": recipe_number_release,
    "telephony:number-import": recipe_number_import,
    "api:number-list": recipe_api_number_buy,
    "api:number-detail": recipe_api_number_assign_and_release,
    "api:number-import": recipe_api_number_import,
    "messaging:settings": recipe_messaging_help_text,
    "messaging:settings-agent-replies": recipe_messaging_agent_replies,
    "messaging:settings-a2p-check": recipe_messaging_a2p_check,
    "accounts:organization-create": recipe_organization_create,
    "accounts:invitation-accept": recipe_invitation_accept,
    "accounts:organization-settings": recipe_organization_settings,
    "accounts:organization-security": recipe_organization_security,
    "accounts:organization-leave": recipe_organization_leave,
    "accounts:invitation-create": recipe_invitation_create,
    "accounts:invitation-revoke": recipe_invitation_revoke,
    "accounts:membership-role": recipe_membership_role,
    "accounts:membership-remove": recipe_membership_remove,
    "accounts:api-key-list": recipe_portal_api_key_create,
    "accounts:api-key-revoke": recipe_portal_api_key_revoke,
    "oauth:application-create": recipe_oauth_application_create,
    "oauth:application-revoke-tokens": recipe_oauth_application_revoke_tokens,
    "oauth:application-delete": recipe_oauth_application_delete,
    "oauth:application-update": recipe_oauth_application_update,
    "oauth:application-rotate-secret": recipe_oauth_application_rotate_secret,
    "oauth:organization-connection-revoke": recipe_oauth_organization_connection_revoke,
    "oauth:connection-revoke": recipe_oauth_connection_revoke,
    "oauth:authorize": recipe_oauth_authorize,
    "oauth:token": recipe_oauth_token,
    "oauth:revoke-token": recipe_oauth_revoke_token,
    "api:token-obtain": recipe_api_token_obtain,
    "api:token-refresh": recipe_api_token_refresh,
    "api:token-revoke": recipe_api_token_revoke,
    "api:api-key-list": recipe_api_key_create,
    "api:api-key-detail": recipe_api_key_revoke,
    "api:organization-detail": recipe_api_organization_update,
    "api:member-detail": recipe_api_member_update_and_remove,
    "account_login": recipe_login,
    "account_logout": recipe_logout,
    "account_signup": recipe_signup,
    "account_reauthenticate": recipe_reauthenticate,
    "account_email": recipe_email,
    "account_change_password": recipe_change_password,
    "account_set_password": recipe_set_password,
    "account_reset_password": recipe_reset_password,
    "account_reset_password_from_key": recipe_reset_password_from_key,
    "account_confirm_email": recipe_confirm_email,
    "mfa_authenticate": recipe_mfa_authenticate,
    "mfa_reauthenticate": recipe_mfa_reauthenticate,
    "mfa_activate_totp": recipe_mfa_activate_totp,
    "mfa_deactivate_totp": recipe_mfa_deactivate_totp,
    "mfa_generate_recovery_codes": recipe_mfa_generate_recovery_codes,
    "usersessions_list": recipe_usersessions,
    "knowledge:base-list": recipe_knowledge_base_create,
    "knowledge:base-update": recipe_knowledge_base_update,
    "knowledge:base-delete": recipe_knowledge_base_delete,
    "knowledge:document-upload": recipe_knowledge_document_upload,
    "knowledge:document-reprocess": recipe_knowledge_document_reprocess,
    "knowledge:document-delete": recipe_knowledge_document_delete,
    "api:knowledge-base-list": recipe_api_knowledge_base_create,
    "api:knowledge-base-detail": recipe_api_knowledge_base_update_and_delete,
    "api:knowledge-document-list": recipe_api_knowledge_document_upload,
    "api:knowledge-document-detail": recipe_api_knowledge_document_delete,
    "api:knowledge-document-reprocess": recipe_api_knowledge_document_reprocess,
    "telephony:agent-create": recipe_agent_create,
    "telephony:agent-update": recipe_agent_update,
    "telephony:agent-delete": recipe_agent_delete,
    "api:agent-list": recipe_api_agent_create,
    "api:agent-detail": recipe_api_agent_update_and_delete,
}

# --- contacts: portal pages, CSV import, API ---

CONTACTS_CSV = b"phone,name,Plan\n+14155550171,Ada,Gold\n+14155550172,Bob,\n"


def _contact(world, phone="+14155550170"):
    from messaging.services.contacts import contact_create

    return contact_create(organization=world.organization, actor=world.owner, data={"phone": phone, "name": "Walk"})


def _contact_import(world):
    from messaging.services.imports import contact_import_upload

    return contact_import_upload(
        organization=world.organization, actor=world.member, file_name="contacts.csv", raw=CONTACTS_CSV
    )


def recipe_contact_create(world):
    url = world.url("messaging:contact-create", org_slug=world.slug)
    _ok(world.client_for(world.member).post(url, {"phone": "+14155550170", "name": "Ada"}))
    return "contact.created"


def recipe_contact_update(world):
    contact = _contact(world)
    url = world.url("messaging:contact-update", org_slug=world.slug, contact_id=contact.id)
    _ok(world.client_for(world.member).post(url, {"phone": contact.phone, "name": "Renamed"}))
    return "contact.updated"


def recipe_contact_delete(world):
    contact = _contact(world)
    _ok(world.client_for(world.member).post(world.url("messaging:contact-delete", org_slug=world.slug, contact_id=contact.id)))
    return "contact.deleted"


def recipe_contact_import_upload(world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = world.url("messaging:contact-import", org_slug=world.slug)
    _ok(world.client_for(world.member).post(url, {"file": SimpleUploadedFile("contacts.csv", CONTACTS_CSV)}))
    return "contact_import.uploaded"


def recipe_contact_import_confirm(world):
    job = _contact_import(world)
    url = world.url("messaging:contact-import-confirm", org_slug=world.slug, import_id=job.id)
    _ok(world.client_for(world.member).post(url))
    return "contact_import.completed"


def recipe_contact_import_discard(world):
    job = _contact_import(world)
    _ok(world.client_for(world.member).post(world.url("messaging:contact-import-discard", org_slug=world.slug, import_id=job.id)))
    return "contact_import.discarded"


def recipe_api_contact_create(world):
    _ok(world.bearer(world.key("contacts:write")).post("/api/v1/contacts", {"phone": "+14155550170"}, format="json"))
    return "contact.created"


def recipe_api_contact_update_and_delete(world):
    contact = _contact(world)
    client = world.bearer(world.key("contacts:write"))
    _ok(client.patch(f"/api/v1/contacts/{contact.id}", {"name": "Renamed"}, format="json"))
    _ok(client.delete(f"/api/v1/contacts/{contact.id}"))
    return ["contact.updated", "contact.deleted"]


RECIPES.update(
    {
        "messaging:contact-create": recipe_contact_create,
        "messaging:contact-update": recipe_contact_update,
        "messaging:contact-delete": recipe_contact_delete,
        "messaging:contact-import": recipe_contact_import_upload,
        "messaging:contact-import-confirm": recipe_contact_import_confirm,
        "messaging:contact-import-discard": recipe_contact_import_discard,
        "api:contact-list": recipe_api_contact_create,
        "api:contact-detail": recipe_api_contact_update_and_delete,
    }
)

# --- messaging: the inbox (sending, taking a thread over, reviewing an opt-out) ---

INBOX_CONTACT = "+12129870188"


def _inbox_conversation(world, number=None):
    from messaging.tests.support import make_conversation

    return make_conversation(world.organization, phone_number=number, contact_number=INBOX_CONTACT)


def recipe_inbox_compose(world):
    with _standin("twilio") as standin:
        standin.message_autodeliver = False
        number = _bought(world)
        url = world.url("messaging:compose", org_slug=world.slug)
        _ok(world.client_for(world.member).post(url, {"from_number": number.id, "to": INBOX_CONTACT, "body": "Hi"}))
    return "message.sent"


def recipe_inbox_reply(world):
    with _standin("twilio") as standin:
        standin.message_autodeliver = False
        conversation = _inbox_conversation(world, _bought(world))
        url = world.url("messaging:thread-reply", org_slug=world.slug, conversation_id=conversation.id)
        _ok(world.client_for(world.member).post(url, {"body": "See you at 3."}))
    return "message.sent"


def _answered_conversation(world):
    from messaging.models import NumberMessaging
    from telephony.tests.factories import AgentFactory, PhoneNumberFactory

    number = PhoneNumberFactory(organization=world.organization, agent=AgentFactory(organization=world.organization))
    NumberMessaging.objects.create(organization=world.organization, phone_number=number, agent_replies=True)
    return _inbox_conversation(world, number)


def recipe_inbox_take_over(world):
    conversation = _answered_conversation(world)
    url = world.url("messaging:thread-take-over", org_slug=world.slug, conversation_id=conversation.id)
    _ok(world.client_for(world.member).post(url))
    return "conversation.taken_over"


def recipe_inbox_release(world):
    from messaging.services.conversations import conversation_take_over

    conversation = _answered_conversation(world)
    conversation_take_over(organization=world.organization, actor=world.member, conversation=conversation)
    world.mark()
    url = world.url("messaging:thread-release", org_slug=world.slug, conversation_id=conversation.id)
    _ok(world.client_for(world.member).post(url))
    return "conversation.released"


def _free_text_opt_out(world):
    from messaging.models import ChangeVia
    from messaging.services.subscriptions import subscription_set, webhook_actor
    from messaging.tests.support import make_message

    conversation = _inbox_conversation(world)
    message = make_message(world.organization, conversation=conversation, body="please stop texting me")
    subscription_set(
        phone_number=conversation.phone_number, recipient=INBOX_CONTACT, subscribed=False, via=ChangeVia.FREE_TEXT,
        actor=webhook_actor(world.organization), message=message, flagged=True,
    )  # fmt: skip
    world.mark()
    return conversation


def recipe_inbox_opt_out_undo(world):
    conversation = _free_text_opt_out(world)
    url = world.url("messaging:thread-opt-out-undo", org_slug=world.slug, conversation_id=conversation.id)
    _ok(world.client_for(world.member).post(url))
    return "sms_subscription.resubscribed"


def recipe_inbox_opt_out_keep(world):
    conversation = _free_text_opt_out(world)
    url = world.url("messaging:thread-opt-out-keep", org_slug=world.slug, conversation_id=conversation.id)
    _ok(world.client_for(world.member).post(url))
    return "sms_subscription.review_confirmed"


RECIPES.update(
    {
        "messaging:compose": recipe_inbox_compose,
        "messaging:thread-reply": recipe_inbox_reply,
        "messaging:thread-take-over": recipe_inbox_take_over,
        "messaging:thread-release": recipe_inbox_release,
        "messaging:thread-opt-out-undo": recipe_inbox_opt_out_undo,
        "messaging:thread-opt-out-keep": recipe_inbox_opt_out_keep,
    }
)

# --- billing: the owner's Billing pages and Stripe's webhook, through the Stripe stand-in ---


def _stripe_checkout(world, plan="pro"):
    """Checkout as the owner starts it on the Billing page: (the owner's client, the Checkout session's id)."""
    from billing.tests.test_portal import stripe_prices

    stripe_prices()
    client = world.client_for(world.owner)
    response = _ok(client.post(world.url("billing:checkout", org_slug=world.slug), {"plan": plan, "interval": "month"}), 303)
    return client, response["Location"].rstrip("/").rsplit("/", 1)[-1]


def _stripe_subscribed(world, standin):
    """The owner subscribed to Pro (Checkout, Subscribe on Stripe's page, back): setup, not the recipe."""
    client, session_id = _stripe_checkout(world)
    standin.complete_checkout(session_id)
    _ok(client.get(f"{world.url('billing:checkout-return', org_slug=world.slug)}?session_id={session_id}"))
    world.mark()
    return client


def recipe_billing_spend_cap(world):
    _ok(world.client_for(world.owner).post(world.url("billing:spend-cap", org_slug=world.slug), {"cap": "75"}))
    return "billing.spend_cap_changed"


def recipe_billing_checkout(world):
    with _standin("stripe"):
        _stripe_checkout(world)
    return "billing.checkout_started"


def recipe_billing_plan_change(world):
    with _standin("stripe") as standin:
        client = _stripe_subscribed(world, standin)
        url = world.url("billing:plan-change", org_slug=world.slug)
        preview = _ok(client.get(f"{url}?plan=enterprise&interval=month")).content.decode()
        proration_date = re.search(r'name="proration_date" value="(\d+)"', preview).group(1)
        _ok(client.post(url, {"plan": "enterprise", "interval": "month", "proration_date": proration_date}))
    return ["billing.plan_change_requested", "billing.subscription_changed", "organization.plan_changed"]


def recipe_billing_portal(world):
    with _standin("stripe") as standin:
        client = _stripe_subscribed(world, standin)
        _ok(client.post(world.url("billing:portal", org_slug=world.slug)), 303)
    return "billing.portal_opened"


def recipe_stripe_webhook(world):
    """Stripe tells of the subscription Checkout made: fetched back from Stripe and applied, with Stripe as the source."""
    import hashlib
    import hmac
    import json
    import time
    from unittest import mock

    from django.test import TestCase

    from billing.tasks import stripe_event_apply_task

    with _standin("stripe") as standin:
        _client, session_id = _stripe_checkout(world)
        standin.complete_checkout(session_id)  # the events are recorded (no webhook URL: not delivered)
        world.mark()
        event = next(e for e in standin.events if e["type"] == "customer.subscription.created")
        body = json.dumps(event).encode()
        timestamp = int(time.time())
        digest = hmac.new(standin.webhook_secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        run_now = mock.patch.object(stripe_event_apply_task, "delay", side_effect=lambda *args: stripe_event_apply_task.apply(args=args))
        with run_now, TestCase.captureOnCommitCallbacks(execute=True):
            _ok(Client().post(world.url("stripe-hooks:stripe"), body, content_type="application/json",
                              headers={"Stripe-Signature": f"t={timestamp},v1={digest}"}))  # fmt: skip
    return ["billing.subscription_changed", "organization.plan_changed"]


RECIPES.update(
    {
        "billing:spend-cap": recipe_billing_spend_cap,
        "billing:checkout": recipe_billing_checkout,
        "billing:plan-change": recipe_billing_plan_change,
        "billing:portal": recipe_billing_portal,
        "stripe-hooks:stripe": recipe_stripe_webhook,
    }
)


# route -> (the test that proves its audit event, why it is not a recipe here)
RECORDED_ELSEWHERE: dict[str, tuple[str, str]] = {
    "accounts:organization-sso": (
        "accounts/tests/test_sso.py::test_owner_saves_sso_on_the_page",
        "needs an Enterprise organization and an IdP's signed metadata",
    ),
    "sso:acs": (
        "accounts/tests/test_sso.py::test_valid_assertion_signs_in_and_provisions_just_in_time",
        "needs an assertion signed by a test IdP",
    ),
    "mfa_add_webauthn": ("tests/browser/test_passkey.py::test_add_a_passkey_then_sign_in_with_it", "needs a WebAuthn authenticator"),
    "mfa_reauthenticate_webauthn": ("tests/browser/test_passkey.py::test_add_a_passkey_then_sign_in_with_it", "needs a WebAuthn authenticator"),
    "mfa_edit_webauthn": ("tests/browser/test_passkey.py::test_add_a_passkey_then_sign_in_with_it", "needs a WebAuthn authenticator"),
    "mfa_remove_webauthn": ("tests/browser/test_passkey.py::test_add_a_passkey_then_sign_in_with_it", "needs a WebAuthn authenticator"),
    "telephony:browser-token": (
        "telephony/tests/test_browser_calling.py::test_set_up_is_audited_and_token_issues_once_per_member_and_hour",
        "needs the Twilio stand-in; one token_issued per member and hour by design (telephony/services/browser.py)",
    ),
    "twilio-hooks:browser-voice": (
        "telephony/tests/test_browser_calling_hook.py::test_a_members_call_is_dialled_from_the_chosen_number",
        "a request signed by the organization's Twilio account, played by the Twilio stand-in",
    ),
    "twilio-hooks:voice": (
        "telephony/tests/test_inbound_calls.py::test_an_inbound_call_is_audited_once_with_twilio_as_the_actor",
        "call.received, Twilio's webhook as actor; a request signed by the organization's Twilio account",
    ),
    "twilio-hooks:status": (
        "telephony/tests/test_status_callbacks.py::test_a_duplicate_changes_nothing_and_a_late_status_never_moves_the_call_back",
        "Twilio's progress reports: recorded in the call's own append-only timeline (CallEvent), no person acts",
    ),
    "twilio-hooks:recording": (
        "telephony/tests/test_status_callbacks.py::test_the_recording_hook_hands_a_finished_recording_to_the_pipeline_once",
        "Twilio's notice that a recording is ready: the pipeline's steps are the call's record, no person acts",
    ),
    "twilio-hooks:sms": (
        "messaging/tests/test_opt_out.py::test_every_change_is_audited_and_in_the_history_without_the_number_in_clear",
        "sms_subscription.* (and do_not_call.added for a keyword), Twilio's webhook as actor; a text itself is "
        "stored in its conversation (the organization's record of it), not audited",
    ),
    "twilio-hooks:sms-status": (
        "messaging/tests/test_sending.py::test_status_callbacks_build_the_timeline_and_move_forward_only",
        "Twilio's progress reports on a sent text: its own append-only timeline (MessageStatusEvent), no person acts",
    ),
    "api:message-list": (
        "messaging/tests/test_sending.py::test_a_text_is_sent_through_twilio_and_recorded",
        "message.sent, through the Twilio stand-in (the API calls the same service: messaging/tests/test_messages_api.py)",
    ),
    "telephony:call-post-call-retry": (
        "telephony/tests/test_pipeline.py::test_a_permanent_failure_shows_its_reason_and_the_retry_button_works",
        "call.post_call_retried; needs a step failed by a provider (a real worker and the stand-ins)",
    ),
    "compliance:do-not-call-list": (
        "compliance/tests/test_do_not_call.py::test_a_member_adds_a_number_on_the_page", "do_not_call.added, with its page's checks"
    ),
    "compliance:do-not-call-remove": (
        "compliance/tests/test_do_not_call.py::test_an_admin_removes_a_number_on_the_page", "do_not_call.removed"
    ),
    "telephony:call-place": (
        "telephony/tests/test_outbound_views.py::test_a_member_places_a_call", "call.placed, through the Twilio stand-in"
    ),
    "api:call-list": (
        "telephony/tests/test_calls_api.py::test_post_places_a_call", "call.placed, through the Twilio stand-in"
    ),
    "telephony:number-simulate-call": (
        "telephony/tests/test_simulate_caller_view.py::test_the_caller_rings_and_the_person_lands_on_the_new_calls_page",
        "call.simulated; simulated mode only, through the Twilio stand-in and a live server",
    ),
    "api:do-not-call-list": (
        "compliance/tests/test_do_not_call.py::test_api_add_list_get_and_delete_with_audit", "do_not_call.added"
    ),
    "api:do-not-call-detail": (
        "compliance/tests/test_do_not_call.py::test_api_add_list_get_and_delete_with_audit", "do_not_call.removed"
    ),
}

# route -> why posting to it changes nothing (so there is nothing to record)
NOTHING_TO_RECORD: dict[str, str] = {
    "api:knowledge-search": "a search reads passages and changes nothing (POST only to carry the question in a body)",
    "account_confirm_login_code": "sign-in by emailed code is off (ACCOUNT_LOGIN_BY_CODE_ENABLED is not set); the page only redirects",
}


# messaging: the inbox's routes that need no recipe here.
RECORDED_ELSEWHERE["messaging:simulate-text"] = (
    "messaging/tests/test_inbox_simulate.py::test_a_simulated_text_arrives_through_the_sms_hook",
    "message.simulated; simulated mode only, through the Twilio stand-in and a live server",
)
NOTHING_TO_RECORD["messaging:thread-read"] = (
    "reading a thread only sets its unread count to 0 (as opening it does): not a change of the organization's state"
)


@pytest.fixture
def world(organization, owner, admin_user, member, turnstile) -> World:
    return World(organization=organization, owner=owner, admin=admin_user, member=member, turnstile=turnstile)


def test_every_mutating_route_is_covered():
    covered = set(RECIPES) | set(RECORDED_ELSEWHERE) | set(NOTHING_TO_RECORD)
    missing = sorted(mutating_routes() - covered)
    assert not missing, f"These routes change data but prove no audit event; add a recipe in {__file__}: {missing}"
    stale = sorted(covered - mutating_routes())
    assert not stale, f"No longer routes (remove them from {__file__}): {stale}"


def test_the_tests_named_elsewhere_exist():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for node, _reason in RECORDED_ELSEWHERE.values():
        path, name = node.split("::")
        assert re.search(rf"^def {re.escape(name)}\(", (root / path).read_text(), re.MULTILINE), node


# allauth announces these once the request's transaction commits: they run with real commits.
ON_COMMIT = {"mfa_activate_totp", "mfa_deactivate_totp", "mfa_generate_recovery_codes"}


@pytest.mark.parametrize("route", sorted(set(RECIPES) - ON_COMMIT))
def test_each_mutating_route_records_its_audit_event(route, world):
    _check_recipe(route, world)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("route", sorted(ON_COMMIT))
def test_each_mutating_route_announced_on_commit_records_its_audit_event(route, world):
    _check_recipe(route, world)


def _check_recipe(route, world):
    world.before = set(AuditEvent.objects.unscoped("test: inspects rows directly").values_list("id", flat=True))
    expected = RECIPES[route](world)
    expected = [expected] if isinstance(expected, str) else expected
    new = AuditEvent.objects.unscoped("test: inspects rows directly").exclude(id__in=world.before)
    actions = list(new.values_list("action", flat=True))
    for action in expected:
        # Exactly one event per change: none missing, none doubled (e.g. by two layers recording it).
        assert actions.count(action) == expected.count(action), f"{route}: expected {action} once, recorded {actions}"
    for event in new.filter(action__in=expected):
        assert event.occurred_at is not None and event.actor_type, event
        if event.organization_id is not None:
            assert event.organization_id in {world.organization.id, *_organizations_of(world)}, event


def _organizations_of(world) -> set:
    return set(Membership.objects.unscoped("test: inspects rows directly").filter(user=world.owner).values_list("organization_id", flat=True))


def test_login_code_page_changes_nothing(world):
    client = Client()
    response = client.post("/auth/login/code/confirm/", {"code": "123456"})
    assert response.status_code in (302, 404)
    assert not AuditEvent.objects.unscoped("test: inspects rows directly").filter(action__startswith="user.").exists()


# --- the back office ------------------------------------------------------------------


def _form_fields(html: str) -> dict:
    """The values a browser would submit from the page's inputs and selects (first form on the page)."""
    fields: dict = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or re.search(r'type="(submit|checkbox|file)"', tag):
            continue
        value = re.search(r'value="([^"]*)"', tag)
        fields[name.group(1)] = value.group(1) if value else ""
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', body)
        fields[name] = chosen.group(1) if chosen else ""
    return fields


def test_back_office_changes_are_recorded_as_support(staff_client, staff_user, organization, member):
    from django.conf import settings

    client, staff = staff_client, staff_user
    url = f"/{settings.ADMIN_URL}accounts/organization/{organization.id}/change/"
    page = client.get(url)
    assert page.status_code == 200
    data = {**_form_fields(page.content.decode()), "name": "Acme Dental Group"}
    response = client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    assert LogEntry.objects.count() == 1
    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="organization.updated")
    assert event.actor_type == "support" and event.actor_id == staff.id
    assert event.organization_id == organization.id and event.resource_id == str(organization.id)
    assert event.metadata["via"] == "back_office" and "Name" in str(event.metadata["change"])


def test_back_office_actions_are_recorded(staff_client, staff_user, organization, member):
    from django.conf import settings

    client, staff = staff_client, staff_user
    response = client.post(
        f"/{settings.ADMIN_URL}accounts/user/",
        {"action": "disable", "_selected_action": [str(member.id)]},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="user.disabled")
    assert event.actor_type == "support" and event.actor_id == staff.id
    response = client.post(
        f"/{settings.ADMIN_URL}accounts/organization/",
        {"action": "terminate", "_selected_action": [str(organization.id)]},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="organization.terminated")
    assert event.actor_type == "support" and event.organization_id == organization.id


# --- refusals --------------------------------------------------------------------------


def test_another_organizations_object_is_recorded_as_denied(organization, other_organization, owner, other_owner):
    theirs = Membership.objects.unscoped("test: inspects rows directly").get(user=other_owner, organization=other_organization)
    client = Client()
    client.force_login(owner)
    url = reverse("accounts:membership-role", kwargs={"org_slug": organization.slug, "membership_id": theirs.id})
    assert client.post(url, {"role": Role.MEMBER}).status_code == 404
    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="access.denied")
    assert event.outcome == "denied" and event.organization_id == organization.id
    assert event.resource_id == str(theirs.id) and event.metadata["status"] == 404
    assert not AuditEvent.objects.unscoped("test: inspects rows directly").filter(organization=other_organization, action="access.denied").exists()


def test_a_member_refused_a_managers_page_is_recorded_in_their_organization(organization, member):
    client = Client()
    client.force_login(member)
    assert client.get(reverse("accounts:api-key-list", kwargs={"org_slug": organization.slug})).status_code == 403
    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="access.denied")
    assert event.organization_id == organization.id and event.actor_id == member.id


def test_an_api_scope_refusal_is_recorded_with_the_key_as_actor(organization, owner):
    _key, raw = api_key_create(
        organization=organization, actor=owner, name="Narrow", scopes=["organization:read"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/members").status_code == 403
    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="access.denied")
    assert event.organization_id == organization.id and event.actor_type == "api_key" and event.api_key_prefix == _key.prefix


def test_invitation_rows_are_not_touched_by_a_denied_request(organization, owner, other_owner):
    invitation, _token = invitation_create(organization=organization, actor=owner, email="x@example.test")
    client = Client()
    client.force_login(other_owner)
    url = reverse("accounts:invitation-revoke", kwargs={"org_slug": organization.slug, "invitation_id": invitation.id})
    assert client.post(url).status_code == 404
    assert Invitation.objects.unscoped("test: inspects rows directly").get(pk=invitation.pk).revoked_at is None
    assert AuditEvent.objects.unscoped("test: inspects rows directly").filter(action="access.denied", organization__isnull=True).exists()
