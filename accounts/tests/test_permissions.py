"""C3: role-based access. Every portal page, per role, against a written-down matrix.

The matrix is stated here by hand (not derived from the views), so a view
that asks the wrong permission, or a table change that widens a role,
fails. Every organization-scoped route must appear in it.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Membership
from accounts.permissions import PERMISSIONS, Role, can_manage_member, has_permission
from accounts.tests.factories import InvitationFactory, MembershipFactory, OrganizationFactory, UserFactory
from accounts.tests.urlwalk import all_routes, classify

from accounts.principals import Principal

OPERATOR = Principal.system("operator")  # service keys, as the create_api_key command makes them

pytestmark = pytest.mark.django_db

OK = "ok"  # 200 for pages, a redirect after a POST that did its work
REDIRECT = "redirect"  # a GET that sends the visitor to the page that does the work
DENIED = 403
JSON_OK = "json"  # 200 with a JSON body: an endpoint a page's script calls

# route name -> method -> role -> expected
MATRIX = {
    "accounts:dashboard": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "accounts:team": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "accounts:organization-settings": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
    },
    "accounts:organization-leave": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "accounts:organization-security": {"post": {Role.OWNER: OK, Role.ADMIN: DENIED, Role.MEMBER: DENIED}},
    # The owner's POST needs an Enterprise plan and real IdP metadata: accounts/tests/test_sso.py.
    "accounts:organization-sso": {
        "get": {Role.OWNER: OK, Role.ADMIN: DENIED, Role.MEMBER: DENIED},
        "post": {Role.ADMIN: DENIED, Role.MEMBER: DENIED},
    },
    "accounts:invitation-create": {
        "get": {Role.OWNER: REDIRECT, Role.ADMIN: REDIRECT, Role.MEMBER: DENIED},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
    },
    "accounts:invitation-revoke": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "accounts:membership-role": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "accounts:membership-remove": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "accounts:api-key-list": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
    },
    "accounts:api-key-revoke": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "oauth:application-list": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "oauth:application-create": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
    },
    "oauth:application-detail": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "oauth:application-update": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "oauth:application-rotate-secret": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "oauth:application-revoke-tokens": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "oauth:application-delete": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "oauth:organization-connection-list": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "oauth:organization-connection-revoke": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "audit:event-list": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "audit:event-export-csv": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "audit:event-export-jsonl": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "compliance:do-not-call-list": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
    },
    "compliance:do-not-call-remove": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "integrations:provider-list": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
    },
    "integrations:provider-disconnect": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "telephony:number-list": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "telephony:number-buy": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "telephony:number-assign": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "telephony:number-release": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    # A manager's page needs an own Twilio account: telephony/tests/test_numbers_views.py::test_import_page.
    "telephony:number-import": {"get": {Role.MEMBER: DENIED}, "post": {Role.MEMBER: DENIED}},
    "telephony:agent-list": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "telephony:agent-create": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
    },
    "telephony:agent-detail": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},  # members: read-only
    "telephony:agent-update": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "telephony:agent-delete": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
    },
    # Talking with an agent before it goes live is the editor's right, as editing it.
    "telephony:agent-test": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED}},
    "telephony:softphone": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "telephony:browser-token": {"post": {Role.OWNER: JSON_OK, Role.ADMIN: JSON_OK, Role.MEMBER: JSON_OK}},
    # A call's recording plays for everyone who uses the product; the retry of a failed step likewise.
    "telephony:call-recording": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "telephony:call-post-call-retry": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    # Calls: everyone who uses the product sees the list, a call's page and the live panel.
    "telephony:call-list": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "telephony:call-live-panel": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "telephony:call-detail": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    # Placing a call (POST) needs a Twilio stand-in: telephony/tests/test_outbound_views.py.
    "telephony:call-place": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    # Simulated mode only (404 otherwise), as placing a call: telephony/tests/test_simulate_caller_view.py.
    "telephony:number-simulate-call": {},
    # Knowledge bases: the whole team creates, fills, tries and deletes them.
    "knowledge:base-list": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
    },
    "knowledge:base-detail": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "knowledge:base-update": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "knowledge:base-delete": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
    },
    "knowledge:playground": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "knowledge:document-upload": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "knowledge:document-reprocess": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "knowledge:document-delete": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
    },
    "knowledge:document-file": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    # Texts: the whole team reads and writes conversations and contacts (product.use); the messaging settings
    # (HELP answer, agent replies per number, A2P checks) are the number managers' (numbers.manage).
    "messaging:inbox": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "messaging:compose": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "messaging:thread": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "messaging:thread-take-over": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "messaging:thread-release": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    # Sending needs the Twilio stand-in (messaging/tests/test_inbox_compose.py); the opt-out review needs a
    # flagged opt-out and reading a thread is what opening it does (messaging/tests/test_inbox_actions.py);
    # simulated mode only (404 otherwise): messaging/tests/test_inbox_simulate.py.
    "messaging:thread-reply": {},
    "messaging:thread-read": {},
    "messaging:thread-opt-out-undo": {},
    "messaging:thread-opt-out-keep": {},
    "messaging:simulate-text": {},
    "messaging:contact-list": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "messaging:contact-create": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
    },
    "messaging:contact-detail": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "messaging:contact-update": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "messaging:contact-delete": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK},
    },
    "messaging:contact-export": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "messaging:contact-import": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "messaging:contact-import-detail": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "messaging:contact-import-progress": {"get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    "messaging:contact-import-discard": {"post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: OK}},
    # Confirming imports the file (messaging/tests/test_contacts_pages.py); the failing rows' CSV exists once an
    # import is done.
    "messaging:contact-import-confirm": {},
    "messaging:contact-import-errors": {},
    "messaging:settings": {
        "get": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
        "post": {Role.OWNER: OK, Role.ADMIN: OK, Role.MEMBER: DENIED},
    },
    # The owner's and admin's changes need a number with an agent and the Twilio stand-in:
    # messaging/tests/test_settings_page.py.
    "messaging:settings-agent-replies": {"post": {Role.MEMBER: DENIED}},
    "messaging:settings-a2p-check": {"post": {Role.MEMBER: DENIED}},
    # Billing: owners only (billing.manage). Checkout, the Customer Portal and plan changes need the Stripe
    # stand-in (and a subscription to change): the owner's side is in billing/tests/test_portal.py.
    "billing:overview": {"get": {Role.OWNER: OK, Role.ADMIN: DENIED, Role.MEMBER: DENIED}},
    "billing:checkout": {"post": {Role.ADMIN: DENIED, Role.MEMBER: DENIED}},
    "billing:checkout-return": {"get": {Role.OWNER: REDIRECT, Role.ADMIN: DENIED, Role.MEMBER: DENIED}},
    "billing:plan-change": {
        "get": {Role.ADMIN: DENIED, Role.MEMBER: DENIED},
        "post": {Role.ADMIN: DENIED, Role.MEMBER: DENIED},
    },
    "billing:portal": {"post": {Role.ADMIN: DENIED, Role.MEMBER: DENIED}},
    "billing:spend-cap": {"post": {Role.OWNER: OK, Role.ADMIN: DENIED, Role.MEMBER: DENIED}},
}

_AGENT_FORM = {
    "name": "Matrix agent", "system_prompt": "You answer the phone.", "llm_provider": "openai", "llm_model": "gpt-4o-mini",
    "temperature": "0.7", "stt_language": "en-US", "stt_model": "nova-3", "max_call_seconds": "600",
    "voicemail_action": "hang_up", "ai_disclosure_enabled": "on", "ai_disclosure": "You are speaking with an AI.",
    "recording_disclosure_enabled": "on", "recording_disclosure": "This call is recorded.",
}

POST_DATA = {
    "accounts:organization-settings": {"name": "Renamed Dental"},
    "accounts:invitation-create": {"email": "newcomer@example.test", "role": "member"},
    "accounts:membership-role": {"role": "admin"},
    "accounts:api-key-list": {"name": "CI", "scopes": ["organization:read"]},
    "oauth:application-create": {"name": "CRM", "client_type": "confidential", "redirect_uris": "https://crm.example/cb"},
    "oauth:application-update": {"name": "CRM renamed", "redirect_uris": "https://app.example/cb"},
    "compliance:do-not-call-list": {"number": "+14155550123", "reason": "requested"},
    "telephony:agent-create": _AGENT_FORM,
    "telephony:agent-update": _AGENT_FORM,
    "integrations:provider-list": {"provider": "openai", "api_key": "sk-matrix-key-0123456789abcdef"},
    "telephony:number-buy": {"area_code": "415"},
    "knowledge:base-list": {"name": "Matrix handbook"},
    "knowledge:base-update": {"name": "Matrix handbook renamed"},
    "messaging:contact-create": {"phone": "+13125550188", "name": "Matrix Person"},
    "messaging:settings": {"help_text": "Matrix Dental: reply STOP to unsubscribe."},
    "billing:spend-cap": {"cap": "250"},
}

CASES = [
    (name, method, role, expected)
    for name, methods in MATRIX.items()
    for method, roles in methods.items()
    for role, expected in roles.items()
]


def test_matrix_covers_every_organization_route():
    scoped, _public, _problems = classify()
    missing = {route.name for route in scoped} - set(MATRIX)
    assert not missing, f"add these routes to MATRIX in {__file__}: {sorted(missing)}"


def route_kwargs(request, organization, name, target, invitation):
    """The URL kwargs of organization route `name`, making the object it acts on inside `organization`."""
    kwargs = {"org_slug": organization.slug}
    if name in ("accounts:membership-role", "accounts:membership-remove"):
        kwargs["membership_id"] = target.id
    if name == "accounts:invitation-revoke":
        kwargs["invitation_id"] = invitation.id
    if name == "accounts:api-key-revoke":
        from accounts.api_keys.services import api_key_create

        kwargs["api_key_id"] = api_key_create(
            organization=organization, actor=OPERATOR, service_role="owner", name="K", scopes=["api_keys:write"]
        )[0].id
    if name.startswith("oauth:application-") and name not in ("oauth:application-list", "oauth:application-create"):
        from accounts.oauth.services import oauth_application_create

        client_type = "confidential" if name == "oauth:application-rotate-secret" else "public"
        kwargs["application_id"] = oauth_application_create(
            organization=organization, actor=None, name="App", client_type=client_type,
            redirect_uris="https://app.example/cb",
        )[0].id
    if name == "oauth:organization-connection-revoke":
        from accounts.oauth.tests.factories import connect, register

        application = register(OrganizationFactory(), name="Elsewhere App").application  # registered by another
        connect(application, organization=organization, user=target.user)
        kwargs["application_id"] = application.id
    if name == "compliance:do-not-call-remove":
        from compliance.tests.tenancy import OBJECT_KWARGS as compliance_objects

        kwargs["do_not_call_id"] = compliance_objects["do_not_call_id"](organization)
    if name in ("telephony:agent-detail", "telephony:agent-update", "telephony:agent-delete", "telephony:agent-test"):
        from telephony.tests.tenancy import OBJECT_KWARGS as telephony_objects

        kwargs["agent_id"] = telephony_objects["agent_id"](organization)
    if name in ("telephony:call-recording", "telephony:call-post-call-retry"):
        from telephony.tests.test_recording_playback import stored_recording

        kwargs["call_id"] = stored_recording(organization).call_id
    if name == "telephony:call-detail":
        from telephony.tests.tenancy import OBJECT_KWARGS as telephony_objects

        kwargs["call_id"] = telephony_objects["call_id"](organization)
    if name == "telephony:browser-token":
        request.getfixturevalue("twilio_standin")  # the token is signed by a key made at Twilio
    if name.startswith("integrations:provider-"):
        # Verified by the OpenAI stand-in; the disconnect finds a key to disconnect.
        request.getfixturevalue("openai_standin").api_key = POST_DATA["integrations:provider-list"]["api_key"]
        if name == "integrations:provider-disconnect":
            from integrations.services import credential_save

            credential_save(organization=organization, actor=OPERATOR, provider="openai",
                            values={"api_key": POST_DATA["integrations:provider-list"]["api_key"]})
        POST_DATA.setdefault("integrations:provider-disconnect", {"provider": "openai"})
    if name.startswith("telephony:number-"):
        from telephony.services.numbers import number_buy

        request.getfixturevalue("twilio_standin")
        if name in ("telephony:number-assign", "telephony:number-release"):
            kwargs["number_id"] = number_buy(organization=organization, actor=OPERATOR, area_code="415").id
    if name.startswith("messaging:"):
        from messaging.tests.tenancy import OBJECT_KWARGS as messaging_objects
        from telephony.tests.tenancy import OBJECT_KWARGS as telephony_objects

        route = next(route for route in all_routes() if route.name == name)
        for key, make in {**messaging_objects, "number_id": telephony_objects["number_id"]}.items():
            if key in route.kwargs:
                kwargs[key] = make(organization)
    if name.startswith("knowledge:") and name != "knowledge:base-list":
        from knowledge.models import KnowledgeBase
        from knowledge.services import document_add

        base = KnowledgeBase.objects.create(organization=organization, name="Matrix knowledge")
        kwargs["knowledge_base_id"] = base.id
        if name.startswith("knowledge:document-") and name != "knowledge:document-upload":
            kwargs["document_id"] = document_add(
                organization=organization, actor=OPERATOR, knowledge_base=base, name="hours.txt",
                content=b"We are open Monday to Friday from 8 am to 6 pm.",
            ).id  # fmt: skip
    return kwargs


@pytest.mark.parametrize("name,method,role,expected", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_role_matrix(request, client, organization, name, method, role, expected):
    MembershipFactory(organization=organization, role=Role.OWNER)  # so the actor is never the last owner
    actor = MembershipFactory(organization=organization, user=UserFactory(), role=role).user
    target = MembershipFactory(organization=organization, role=Role.MEMBER)
    invitation = InvitationFactory(organization=organization)
    if name == "accounts:invitation-create":
        # Three members and an open invitation fill the Starter plan's three seats and more: a plan with room.
        organization.plan_code = "pro"
        organization.save(update_fields=["plan_code"])
    kwargs = route_kwargs(request, organization, name, target, invitation)
    client.force_login(actor)
    response = getattr(client, method)(reverse(name, kwargs=kwargs), POST_DATA.get(name, {}))
    if expected == DENIED:
        assert response.status_code == 403
        target.refresh_from_db()
        assert target.role == Role.MEMBER  # nothing changed
        assert Membership.objects.unscoped("test: inspects rows directly").filter(pk=target.pk).exists()
    elif expected == REDIRECT:
        assert response.status_code == 302
        assert client.get(response["Location"]).status_code == 200
    elif expected == JSON_OK:
        assert response.status_code == 200 and response.json(), response.content[:500]
    elif method == "get":
        assert response.status_code == 200
    else:
        assert response.status_code == 302, response.content[:500]
        follow = client.get(response["Location"], follow=True)
        assert follow.status_code == 200


def test_members_see_role_controls_only_when_allowed(client, organization, owner, member):
    client.force_login(member)
    page = client.get(reverse("accounts:team", kwargs={"org_slug": organization.slug})).content.decode()
    assert "Send invitation" not in page and "Save role" not in page
    client.force_login(owner)
    page = client.get(reverse("accounts:team", kwargs={"org_slug": organization.slug})).content.decode()
    assert "Send invitation" in page and "Save role" in page


def test_permission_table_grants_what_the_product_promises():
    owner_only = {"billing.manage", "sso.manage", "security.manage", "organization.delete", "organization.transfer"}
    managers = {"organization.update", "members.invite", "members.change_role", "members.remove",
                "agents.manage", "numbers.manage", "api_keys.manage", "oauth_apps.manage", "webhooks.manage", "audit.view",
                "compliance.manage"}
    everyone = {"organization.view", "product.use", "members.view"}
    assert set(PERMISSIONS) == owner_only | managers | everyone
    for action in owner_only:
        assert [has_permission(r, action) for r in Role] == [True, False, False], action
    for action in managers:
        assert [has_permission(r, action) for r in Role] == [True, True, False], action
    for action in everyone:
        assert all(has_permission(r, action) for r in Role), action
    assert not has_permission(None, "organization.view")
    with pytest.raises(KeyError):
        has_permission(Role.OWNER, "no.such.action")


@pytest.mark.parametrize(
    "actor,target,new_role,allowed",
    [
        (Role.OWNER, Role.OWNER, Role.MEMBER, True),
        (Role.OWNER, Role.MEMBER, Role.OWNER, True),
        (Role.ADMIN, Role.MEMBER, Role.ADMIN, True),
        (Role.ADMIN, Role.ADMIN, Role.MEMBER, True),
        (Role.ADMIN, Role.OWNER, Role.MEMBER, False),
        (Role.ADMIN, Role.MEMBER, Role.OWNER, False),
        (Role.MEMBER, Role.MEMBER, Role.ADMIN, False),
    ],
)
def test_can_manage_member(actor, target, new_role, allowed):
    assert can_manage_member(actor_role=actor, target_role=target, new_role=new_role) is allowed


def test_templates_ask_the_table_for_every_action(organization, owner, member):
    from accounts.context_processors import _Can

    for action in PERMISSIONS:
        attribute = action.replace(".", "_")
        assert getattr(_Can(Role.OWNER), attribute) is True, action
        assert getattr(_Can(Role.MEMBER), attribute) is has_permission(Role.MEMBER, action), action
    assert _Can(Role.OWNER).no_such_thing is False


def test_settings_page_links_managers_to_api_keys(client, organization, owner, member):
    client.force_login(owner)
    page = client.get(reverse("accounts:organization-settings", kwargs={"org_slug": organization.slug})).content.decode()
    assert reverse("accounts:api-key-list", kwargs={"org_slug": organization.slug}) in page
