"""Garbage in every field of every organization form, and of the public forms: a 4xx, never a 500.

NUL bytes (which PostgreSQL refuses in text), lone surrogates and 100 KB
values are posted into each field the forms take, as a careless script or
a probing visitor would.
"""

import pytest
from django.test import Client
from django.urls import reverse
from accounts.tests.test_permissions import MATRIX, POST_DATA, route_kwargs
from accounts.tests.factories import MembershipFactory, UserFactory, InvitationFactory
from accounts.permissions import Role

pytestmark = pytest.mark.django_db

EXTRA = {
    "accounts:organization-sso": {"metadata_xml": "<x>\x00</x>", "enabled": "on"},
    "accounts:organization-security": {"require_two_factor": "o\x00n"},
}

@pytest.mark.parametrize("name", sorted(n for n, m in MATRIX.items() if "post" in m))
def test_every_organization_form_refuses_garbage_with_a_4xx(request, name, organization):
    owner = MembershipFactory(organization=organization, user=UserFactory(), role=Role.OWNER).user
    target = MembershipFactory(organization=organization, role=Role.MEMBER)
    invitation = InvitationFactory(organization=organization)
    kwargs = route_kwargs(request, organization, name, target, invitation)
    data = dict(POST_DATA.get(name, {}) or EXTRA.get(name, {"x": "1"}))
    c = Client(raise_request_exception=False); c.force_login(owner)
    url = reverse(name, kwargs=kwargs)
    for field in list(data) or ["x"]:
        bad = dict(data)
        v = bad.get(field, "")
        bad[field] = [x + "\x00" for x in v] if isinstance(v, list) else str(v) + "\x00\ud800"[:1] + "\x00"
        r = c.post(url, bad)
        assert r.status_code < 500, (name, field, r.status_code)
        bad[field] = "x" * 100000
        r = c.post(url, bad)
        assert r.status_code < 500, (name, field, "long", r.status_code)


def test_public_forms_refuse_garbage_with_a_4xx(organization, owner, turnstile):
    from accounts.services import invitation_create
    _inv, token = invitation_create(organization=organization, actor=owner, email="fresh@example.test")
    c = Client(raise_request_exception=False)
    out = []
    out.append(c.post(f"/invitations/{token}/", {"name": "a\x00", "password": "p\x00assword-long-enough"}).status_code)
    out.append(c.post("/auth/login/", {"login": "a\x00@x.test", "password": "x\x00"}).status_code)
    out.append(c.post("/auth/signup/", {"organization_name": "a\x00", "email": "b\x00@x.test", "password1": "x\x00yyyyyyyyyyyy", "password2": "x\x00yyyyyyyyyyyy"}).status_code)
    out.append(c.post("/auth/password/reset/", {"email": "a\x00@x.test"}).status_code)
    out.append(c.get("/oauth/authorize", {"client_id": "a\x00", "response_type": "code"}).status_code)
    out.append(c.post("/oauth/token", {"grant_type": "authorization_code", "code": "a\x00", "client_id": "x\x00"}).status_code)
    c.force_login(owner)
    out.append(c.post("/orgs/new/", {"name": "a\x00", "slug": "b\x00"}).status_code)
    out.append(c.post("/auth/email/", {"email": "a\x00@x.test", "action_add": ""}).status_code)
    assert all(s < 500 for s in out), out
