"""The API tenancy base: the organization comes from the credential, once."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.authentication import BaseAuthentication
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from accounts.api.base import OrganizationAPIView
from accounts.models import Membership
from accounts.permissions import Role
from accounts.principals import Principal
from accounts.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def bound(user, organization):
    """What an authentication class returns: the caller's Principal, bound to one organization."""
    if organization is None:
        return Principal(kind="member", user=user)
    return Principal.member(Membership.objects.for_org(organization).select_related("organization", "user").get(user=user))


class HeaderCredentialAuthentication(BaseAuthentication):
    registry: dict = {}

    def authenticate(self, request):
        token = request.META.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
        if token in self.registry:
            user, credential = self.registry[token]
            return user, credential
        return None


class MembershipListApi(OrganizationAPIView):
    authentication_classes = [HeaderCredentialAuthentication]

    def get_org_queryset(self):
        return Membership.objects.unscoped("test: inspects rows directly").select_related("user")

    def get(self, request):
        return Response(sorted(m.user.email for m in self.get_queryset()))

    def post(self, request):
        return Response({"ok": True}, status=201)


class MembershipDetailApi(MembershipListApi):
    def get(self, request, membership_id):
        return Response({"email": self.get_object(id=membership_id).user.email})


@pytest.fixture
def tokens(organization, other_organization, owner, member, other_owner):
    HeaderCredentialAuthentication.registry = {
        "acme-owner": (owner, bound(owner, organization)),
        "acme-member": (member, bound(member, organization)),
        "globex-owner": (other_owner, bound(other_owner, other_organization)),
        "unbound": (owner, bound(owner, None)),
    }
    yield
    HeaderCredentialAuthentication.registry = {}


def call(view, method="get", token=None, **kwargs):
    factory = APIRequestFactory()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    request = getattr(factory, method)("/x", **headers)
    return view.as_view()(request, **kwargs)


def test_queryset_is_scoped_to_the_credentials_organization(tokens, owner, member, other_owner):
    response = call(MembershipListApi, token="acme-owner")
    assert response.status_code == 200
    assert response.data == sorted([owner.email, member.email])
    assert other_owner.email not in response.data


def test_other_organizations_object_is_404(tokens, other_organization, other_owner, organization, owner):
    theirs = Membership.objects.for_org(other_organization).get(user=other_owner)
    assert call(MembershipDetailApi, token="acme-owner", membership_id=theirs.id).status_code == 404
    mine = Membership.objects.for_org(organization).get(user=owner)
    assert call(MembershipDetailApi, token="acme-owner", membership_id=mine.id).status_code == 200


def test_credential_without_organization_or_no_credential_is_refused(tokens):
    assert call(MembershipListApi, token="unbound").status_code in (401, 403)
    assert call(MembershipListApi).status_code in (401, 403)


def test_permission_table_applies_to_the_api(tokens):
    assert call(MembershipListApi, "post", token="acme-member").status_code == 403
    assert call(MembershipListApi, "post", token="acme-owner").status_code == 201


def test_subclasses_cannot_override_the_scoping_hooks():
    for hook in ("initial", "get_queryset", "get_object", "get_permissions"):
        with pytest.raises(ImproperlyConfigured):
            type("Unsafe", (OrganizationAPIView,), {hook: lambda self, *a, **k: None})


def test_portal_mixin_cannot_be_bypassed():
    from django.views.generic import TemplateView

    from accounts.mixins import OrganizationViewMixin

    with pytest.raises(ImproperlyConfigured):
        type("Unsafe", (OrganizationViewMixin, TemplateView), {"dispatch": lambda self, *a, **k: None})


def test_tenant_querysets_always_load_the_organization(organization, owner, django_assert_num_queries):
    """Encrypted values are bound to their organization: deferring it would cost a query per row."""
    from accounts.tests.factories import MembershipFactory

    MembershipFactory(organization=organization)
    with django_assert_num_queries(1):
        rows = list(Membership.objects.for_org(organization).only("role"))
        assert all(r.organization_id == organization.id for r in rows)
    with django_assert_num_queries(1):
        rows = list(Membership.objects.for_org(organization).defer("organization", "role"))
        assert all(r.organization_id == organization.id for r in rows)
