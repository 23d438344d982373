"""Portal flows as a person uses them: sign in, switch organization, manage the team."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import Membership, Organization
from accounts.permissions import Role
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def team_url(org):
    return reverse("accounts:team", kwargs={"org_slug": org.slug})


def test_login_with_email_lands_on_the_dashboard(client, organization, owner):
    response = client.post(reverse("account_login"), {"login": owner.email.upper(), "password": DEFAULT_PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == f"/o/{organization.slug}/"
    assert organization.name in response.content.decode()


def test_wrong_password_says_what_to_fix(client, owner):
    response = client.post(reverse("account_login"), {"login": owner.email, "password": "nope"})
    assert response.status_code == 200
    assert "not correct" in response.content.decode()


def test_pages_need_sign_in(client, organization):
    response = client.get(f"/o/{organization.slug}/team/")
    assert response.status_code == 302 and response["Location"].startswith("/auth/login/")


def test_logout_ends_the_session(owner_client, organization):
    owner_client.post(reverse("account_logout"))
    assert owner_client.get(f"/o/{organization.slug}/").status_code == 302


def test_switcher_lists_each_organization_and_home_remembers_the_last(client, organization, owner):
    second = OrganizationFactory(name="Second Clinic", slug="second-clinic")
    MembershipFactory(organization=second, user=owner, role=Role.MEMBER)
    client.force_login(owner)
    page = client.get(f"/o/{organization.slug}/").content.decode()
    assert f"/o/{second.slug}/" in page and "Second Clinic" in page
    client.get(f"/o/{second.slug}/")
    assert client.get("/")["Location"] == f"/o/{second.slug}/"


def test_user_without_organization_is_sent_to_create_one(client):
    client.force_login(UserFactory())
    assert client.get("/")["Location"] == reverse("accounts:organization-create")


def test_create_organization_and_duplicate_slug_message(client, organization):
    client.force_login(UserFactory())
    response = client.post(reverse("accounts:organization-create"), {"name": "New Practice", "slug": organization.slug})
    assert response.status_code == 400
    assert "already taken" in response.content.decode()
    response = client.post(reverse("accounts:organization-create"), {"name": "New Practice", "slug": "new-practice"})
    assert response.status_code == 302
    assert Organization.objects.filter(slug="new-practice").exists()


def test_invite_accept_and_see_the_new_member(client, organization, owner, django_capture_on_commit_callbacks):
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:invitation-create", kwargs={"org_slug": organization.slug}),
                               {"email": "hygienist@example.test", "role": "member"}, follow=True)
    assert "Invitation sent to hygienist@example.test" in response.content.decode()
    link = re.search(r"https?://[^/\s]+(/invitations/[^/\s]+/)", mail.outbox[0].body).group(1)

    invitee = client.__class__()
    page = invitee.get(link)
    assert page.status_code == 200 and organization.name in page.content.decode()
    response = invitee.post(link, {"name": "Hana Hygienist", "password": "brushing twice daily"}, follow=True)
    assert response.redirect_chain[-1][0] == f"/o/{organization.slug}/"

    team = client.get(team_url(organization)).content.decode()
    assert "hygienist@example.test" in team
    # Single use: the link is spent.
    again = client.__class__().get(link)
    assert again.status_code == 410 and "already been used" in again.content.decode()


def test_invalid_invitation_input_is_explained(client, organization, owner, member):
    client.force_login(owner)
    url = reverse("accounts:invitation-create", kwargs={"org_slug": organization.slug})
    response = client.post(url, {"email": "not an email", "role": "member"})
    assert response.status_code == 400 and "valid email" in response.content.decode()
    response = client.post(url, {"email": member.email, "role": "member"})
    assert response.status_code == 400 and "already a member" in response.content.decode()


def test_unknown_invitation_link_is_explained(client):
    response = client.get("/invitations/not-a-real-token/")
    assert response.status_code == 404 and "not valid" in response.content.decode()


def test_role_change_and_last_owner_message(client, organization, owner, member):
    client.force_login(owner)
    member_row = Membership.objects.for_org(organization).get(user=member)
    response = client.post(reverse("accounts:membership-role", kwargs={"org_slug": organization.slug, "membership_id": member_row.id}),
                           {"role": "admin"}, follow=True)
    assert f"{member.email} now has the Admin role" in response.content.decode()
    own_row = Membership.objects.for_org(organization).get(user=owner)
    response = client.post(reverse("accounts:membership-role", kwargs={"org_slug": organization.slug, "membership_id": own_row.id}),
                           {"role": "member"}, follow=True)
    assert "at least one owner" in response.content.decode()
    own_row.refresh_from_db()
    assert own_row.role == Role.OWNER


def test_remove_member_and_leave(client, organization, owner, member):
    client.force_login(owner)
    row = Membership.objects.for_org(organization).get(user=member)
    response = client.post(reverse("accounts:membership-remove", kwargs={"org_slug": organization.slug, "membership_id": row.id}), follow=True)
    assert f"{member.email} was removed" in response.content.decode()
    assert not Membership.objects.unscoped("test: inspects rows directly").filter(pk=row.pk).exists()

    helper = MembershipFactory(organization=organization, role=Role.MEMBER).user
    client.force_login(helper)
    response = client.post(reverse("accounts:organization-leave", kwargs={"org_slug": organization.slug}), follow=True)
    assert f"You left {organization.name}" in response.content.decode()
    assert client.get(f"/o/{organization.slug}/").status_code == 404


def test_settings_rename(client, organization, admin_user):
    client.force_login(admin_user)
    url = reverse("accounts:organization-settings", kwargs={"org_slug": organization.slug})
    assert client.post(url, {"name": ""}).status_code == 400
    response = client.post(url, {"name": "Acme Dental & Ortho"}, follow=True)
    assert "Settings saved" in response.content.decode()
    organization.refresh_from_db()
    assert organization.name == "Acme Dental & Ortho"


def test_malformed_ids_are_404_not_500(owner_client, organization):
    response = owner_client.post(f"/o/{organization.slug}/team/not-a-uuid/role/", {"role": "admin"})
    assert response.status_code == 404


def test_page_titles_are_plain_text(owner_client, organization):
    """A page's <title> holds words, never markup (a misplaced block once put a whole section there)."""
    import re

    for name in ("dashboard", "team", "organization-settings"):
        page = owner_client.get(reverse(f"accounts:{name}", kwargs={"org_slug": organization.slug})).content.decode()
        title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
        assert "<" not in title and len(title) < 120, (name, title)


def test_the_settings_tab_stays_current_on_every_settings_page(owner_client, organization):
    import re

    for path in ("settings/", "settings/api-keys/", "settings/oauth-apps/", "settings/connected-apps/"):
        page = owner_client.get(f"/o/{organization.slug}/{path}").content.decode()
        current = re.findall(r'<a href="[^"]*"\s+aria-current="page">([^<]+)</a>', page)
        assert current == ["Settings"], (path, current)
