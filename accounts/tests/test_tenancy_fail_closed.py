"""Tenancy fails closed: organization-owned rows are read only through .for_org(org) or .unscoped(reason)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db.models import Q

from accounts.models import Membership
from accounts.tenancy import LibraryLookupManager, OrganizationOwned, OrganizationQuerySet, UnscopedQuery
from accounts.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def organization_owned_models():
    return [m for m in apps.get_models() if issubclass(m, OrganizationOwned)]


# [!!] The only models whose default manager starts scoped: a library finds their rows by a unique
# secret it was handed. Adding one here is a security review.
LIBRARY_LOOKUPS = {"oauth.Application", "oauth.Grant", "oauth.AccessToken", "oauth.RefreshToken"}


def test_every_organization_owned_model_has_a_fail_closed_default_manager():
    models = organization_owned_models()
    assert len(models) >= 6
    for model in models:
        assert isinstance(model._default_manager.all(), OrganizationQuerySet), model
        if model._meta.label in LIBRARY_LOOKUPS:
            assert isinstance(model._default_manager, LibraryLookupManager), model
            continue
        assert not isinstance(model._default_manager, LibraryLookupManager), f"{model._meta.label}: not a reviewed exemption"
        with pytest.raises(UnscopedQuery):
            list(model._default_manager.all())


@pytest.mark.parametrize(
    "read",
    [
        lambda qs: list(qs),
        lambda qs: qs.count(),
        lambda qs: qs.exists(),
        lambda qs: qs.first(),
        lambda qs: qs.get(),
        lambda qs: qs.update(role="admin"),
        lambda qs: qs.delete(),
        lambda qs: list(qs.iterator()),
        lambda qs: qs.values_list("id", flat=True)[0],
    ],
    ids=["list", "count", "exists", "first", "get", "update", "delete", "iterator", "values_list"],
)
def test_an_unscoped_query_raises_before_reaching_the_database(organization, member, read):
    before = Membership.objects.for_org(organization).count()
    with pytest.raises(UnscopedQuery, match="for_org"):
        read(Membership.objects.filter(role="member"))
    assert Membership.objects.for_org(organization).count() == before  # nothing was changed


def test_an_id_from_a_url_does_not_scope_a_query(organization, member):
    """[!!] A primary key is exactly what must not open another organization's row."""
    membership = Membership.objects.for_org(organization).get(user=member)
    with pytest.raises(UnscopedQuery):
        Membership.objects.get(pk=membership.pk)
    with pytest.raises(UnscopedQuery):
        Membership.objects.filter(Q(pk=membership.pk) | Q(organization=organization)).exists()


def test_scoped_queries_work(organization, other_organization, member, other_owner):
    assert set(Membership.objects.for_org(organization).values_list("user_id", flat=True)) >= {member.pk}
    assert Membership.objects.filter(organization=organization, user=member).exists()
    assert Membership.objects.filter(Q(organization=organization) & Q(role="member")).exists()
    assert list(organization.memberships.all())  # Django's related manager filters by the organization
    assert Membership.objects.unscoped("test: both organizations").filter(
        organization__in=[organization, other_organization]
    ).count() >= 2


def test_naming_every_organization_is_not_a_scope(organization):
    with pytest.raises(UnscopedQuery):
        Membership.objects.filter(organization__isnull=False).exists()
    with pytest.raises(UnscopedQuery):
        Membership.objects.filter(Q(organization=organization) | Q(role="owner")).exists()


def test_unscoped_needs_a_reason(organization):
    with pytest.raises(TypeError):
        Membership.objects.unscoped()
    with pytest.raises(ValueError, match="reason"):
        Membership.objects.unscoped("")


def test_a_scope_survives_chaining_and_a_negated_filter_does_not_scope(organization, member):
    scoped = Membership.objects.for_org(organization).select_related("user").order_by("created_at").filter(role="member")
    assert list(scoped)
    with pytest.raises(UnscopedQuery):
        Membership.objects.exclude(organization=organization).exists()


def test_creating_a_row_needs_no_scope_it_carries_its_organization(organization):
    membership = MembershipFactory(organization=organization)
    assert Membership.objects.for_org(organization).filter(pk=membership.pk).exists()
    membership.refresh_from_db()  # Django's own machinery uses the plain base manager
    membership.role = "admin"
    membership.save()
