"""No endpoint shows, changes or deletes another organization's object.

The walk covers every URL pattern of the project (accounts/tests/urlwalk.py),
so routes added later are tested without touching this file, and a route
that cannot be classified fails.
"""

from __future__ import annotations

import pytest
from django.http import Http404
from django.urls import reverse

from accounts.models import Invitation, Membership, Organization
from accounts.permissions import Role
from accounts.tenancy import get_for_org_or_404
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from accounts.tests.urlwalk import api_routes, classify, tenancy_cases


pytestmark = pytest.mark.django_db

OBJECT_KWARGS, _PUBLIC_ROUTES = tenancy_cases()

METHODS = ("get", "post", "put", "patch", "delete")

def test_every_route_is_classified():
    scoped, public, problems = classify()
    assert not problems, "\n".join(problems)
    assert scoped, "expected organization-scoped routes"
    for route in scoped:
        unknown = set(route.kwargs) - {"org_slug"} - set(OBJECT_KWARGS)
        assert not unknown, f"{route.name}: add {unknown} to OBJECT_KWARGS in its app's tests/tenancy.py"


def _snapshot(org: Organization):
    org.refresh_from_db()
    return (
        org.name,
        org.status,
        sorted(Membership.objects.for_org(org).values_list("user__email", "role")),
        sorted(Invitation.objects.for_org(org).values_list("email", "accepted_at", "revoked_at")),
    )


def _urls(route, org, ids):
    kwargs = {"org_slug": org.slug, **{k: ids[k] for k in route.kwargs if k != "org_slug"}}
    return reverse(route.name, kwargs=kwargs)


@pytest.fixture
def two_tenants(client):
    mine = OrganizationFactory(name="Mine Dental", slug="mine-dental")
    theirs = OrganizationFactory(name="Theirs Secret Co", slug="theirs-secret")
    me = UserFactory(email="me@mine.test")
    MembershipFactory(organization=mine, user=me, role=Role.OWNER)  # the most privileged role
    MembershipFactory(organization=theirs, user=UserFactory(email="boss@theirs.test"), role=Role.OWNER)
    client.force_login(me)
    return client, mine, theirs


def test_no_route_reaches_another_organization(two_tenants):
    client, mine, theirs = two_tenants
    scoped, _public, _problems = classify()
    mine_ids = {k: make(mine) for k, make in OBJECT_KWARGS.items()}
    theirs_ids = {k: make(theirs) for k, make in OBJECT_KWARGS.items()}
    before = _snapshot(theirs)
    failures = []
    for route in scoped:
        targets = [("their organization in the URL", _urls(route, theirs, theirs_ids))]
        if len(route.kwargs) > 1:
            # My organization in the URL, their object's id: still 404.
            mixed = {"org_slug": mine.slug, **{k: theirs_ids[k] for k in route.kwargs if k != "org_slug"}}
            targets.append(("their object under my organization", reverse(route.name, kwargs=mixed)))
        for label, url in targets:
            for method in METHODS:
                response = getattr(client, method)(url, {"name": "Owned", "role": "owner", "email": "x@evil.test"})
                # Under my own organization, a method the view has no handler for is a 405
                # whatever the id: that says nothing about their object.
                unhandled = method not in route.view_class.http_method_names or not hasattr(route.view_class, method)
                if label.startswith("their object") and unhandled and response.status_code == 405:
                    continue
                if response.status_code != 404:
                    failures.append(f"{method.upper()} {url} ({label}): {response.status_code}, expected 404")
    assert not failures, "\n".join(failures)
    assert _snapshot(theirs) == before, "another organization's data changed"


def test_own_pages_never_show_another_organizations_data(two_tenants):
    client, mine, theirs = two_tenants
    scoped, _public, _problems = classify()
    mine_ids = {k: make(mine) for k, make in OBJECT_KWARGS.items()}
    for k, make in OBJECT_KWARGS.items():
        make(theirs)
    secrets = [theirs.name, theirs.slug, "boss@theirs.test"]
    secrets += list(Invitation.objects.for_org(theirs).values_list("email", flat=True))
    secrets += list(Membership.objects.for_org(theirs).values_list("user__email", flat=True))
    for route in scoped:
        response = client.get(_urls(route, mine, mine_ids))
        if response.status_code == 405:
            continue
        # Downloads (e.g. the audit log's exports) stream: read them whole.
        body = (b"".join(response.streaming_content) if response.streaming else response.content).decode()
        leaked = [s for s in secrets if s in body]
        assert not leaked, f"{route.name} shows {leaked}"


def test_every_api_route_has_fillable_ids():
    for route in api_routes():
        unknown = set(route.kwargs) - set(OBJECT_KWARGS)
        assert not unknown, f"{route.name}: add {unknown} to OBJECT_KWARGS in its app's tests/tenancy.py"


def test_no_api_route_reaches_another_organization(two_tenants, settings):
    """With a token of my organization: their ids are 404, and no answer holds their data."""
    # Every route gets every method: the walk is no client to rate-limit (the limits have their own tests).
    settings.API_RATE_LIMIT_READS = settings.API_RATE_LIMIT_WRITES = 100_000
    from rest_framework.test import APIClient

    from accounts.jwt.tokens import OrganizationRefreshToken
    from accounts.models import User

    _client, mine, theirs = two_tenants
    me = User.objects.get(email="me@mine.test")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {OrganizationRefreshToken.for_membership(user=me, organization=mine).access_token}")
    theirs_ids = {k: make(theirs) for k, make in OBJECT_KWARGS.items()}
    before = _snapshot(theirs)
    secrets = [theirs.name, theirs.slug, "boss@theirs.test", str(theirs.id)]
    routes = api_routes()
    assert routes, "expected organization-bound API routes"
    failures = []
    for route in routes:
        url = reverse(route.name, kwargs={k: theirs_ids[k] for k in route.kwargs})
        for method in METHODS:
            response = getattr(api, method)(url, {"name": "Owned", "role": "owner"}, format="json")
            if route.kwargs:
                unhandled = method not in route.view_class.http_method_names or not hasattr(route.view_class, method)
                if response.status_code != 404 and not (unhandled and response.status_code == 405):
                    failures.append(f"{method.upper()} {url}: {response.status_code}, expected 404")
            body = response.content.decode()
            leaked = [s for s in secrets if s in body]
            if leaked:
                failures.append(f"{method.upper()} {url} shows {leaked}")
    assert not failures, "\n".join(failures)
    assert _snapshot(theirs) == before


def test_get_for_org_or_404_hides_other_tenants_and_bad_ids(organization, other_organization):
    theirs = MembershipFactory(organization=other_organization)
    with pytest.raises(Http404):
        get_for_org_or_404(Membership, organization=organization, id=theirs.id)
    with pytest.raises(Http404):
        get_for_org_or_404(Membership, organization=organization, id="not-a-uuid")
    assert get_for_org_or_404(Membership, organization=other_organization, id=theirs.id) == theirs


def test_for_org_requires_an_organization():
    with pytest.raises(ValueError, match="unscoped"):
        Membership.objects.for_org(None)


def test_unknown_organization_is_a_404_for_a_signed_in_user(owner_client):
    response = owner_client.get("/o/no-such-org/")
    assert response.status_code == 404
    assert b"not a member" in response.content or b"does not exist" in response.content


def test_terminated_organization_is_not_served(owner_client, organization):
    from accounts import services

    services.organization_terminate(organization=organization, actor=None)
    assert owner_client.get(f"/o/{organization.slug}/").status_code == 404
