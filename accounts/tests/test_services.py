"""Team rules: roles, the last owner, invitations. Each bad input gets a clear message."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts import services
from accounts.models import Invitation, Membership, Organization
from accounts.permissions import Role
from accounts.tests.factories import InvitationFactory, MembershipFactory, UserFactory
from jagcall.kernel.errors import ApplicationError, PermissionDenied

pytestmark = pytest.mark.django_db


def membership_of(organization, user):
    return Membership.objects.for_org(organization).get(user=user)


# --- organizations ---------------------------------------------------------------


def test_organization_create_makes_the_creator_owner():
    user = UserFactory()
    org = services.organization_create(name="Bright Smiles Dental", owner=user)
    assert org.slug == "bright-smiles-dental"
    assert membership_of(org, user).role == Role.OWNER


def test_organization_create_refuses_a_taken_slug_with_a_clear_message(organization):
    with pytest.raises(ApplicationError) as exc:
        services.organization_create(name="Another", slug=organization.slug, owner=UserFactory())
    assert exc.value.field == "slug"
    assert "already taken" in exc.value.message
    assert Organization.objects.filter(name="Another").count() == 0  # no partial write


def test_organization_create_generated_slug_avoids_collisions(organization):
    org = services.organization_create(name=organization.name, owner=UserFactory())
    assert org.slug == f"{organization.slug}-2"


@pytest.mark.parametrize("slug", ["Bad Slug", "admin", "x" * 61])
def test_organization_create_rejects_invalid_or_reserved_slugs(slug):
    with pytest.raises(ApplicationError) as exc:
        services.organization_create(name="Valid name", slug=slug, owner=UserFactory())
    assert exc.value.field == "slug"


def test_organization_update_needs_a_manager(organization, owner, member):
    with pytest.raises(PermissionDenied):
        services.organization_update(organization=organization, actor=member, name="Hijacked")
    services.organization_update(organization=organization, actor=owner, name="Acme Dental Group")
    organization.refresh_from_db()
    assert organization.name == "Acme Dental Group"


# --- roles -----------------------------------------------------------------------------


def test_last_owner_cannot_be_demoted(organization, owner):
    with pytest.raises(ApplicationError) as exc:
        services.membership_role_change(
            organization=organization, actor=owner, membership=membership_of(organization, owner), role=Role.ADMIN
        )
    assert exc.value.code == "last_owner"
    assert "at least one owner" in exc.value.message
    assert membership_of(organization, owner).role == Role.OWNER


def test_last_owner_cannot_leave_or_be_removed(organization, owner, admin_user):
    with pytest.raises(ApplicationError, match="at least one owner"):
        services.membership_leave(organization=organization, user=owner)
    second_owner = MembershipFactory(organization=organization, role=Role.OWNER).user
    # With a second owner, one may leave; then the other is the last again.
    services.membership_leave(organization=organization, user=owner)
    with pytest.raises(ApplicationError, match="at least one owner"):
        services.membership_leave(organization=organization, user=second_owner)


def test_owner_can_transfer_ownership_then_step_down(organization, owner, admin_user):
    services.membership_role_change(
        organization=organization, actor=owner, membership=membership_of(organization, admin_user), role=Role.OWNER
    )
    services.membership_role_change(
        organization=organization, actor=owner, membership=membership_of(organization, owner), role=Role.MEMBER
    )
    assert membership_of(organization, admin_user).role == Role.OWNER
    assert membership_of(organization, owner).role == Role.MEMBER


def test_admin_manages_members_but_not_owners(organization, owner, admin_user, member):
    services.membership_role_change(
        organization=organization, actor=admin_user, membership=membership_of(organization, member), role=Role.ADMIN
    )
    assert membership_of(organization, member).role == Role.ADMIN
    with pytest.raises(PermissionDenied):
        services.membership_role_change(
            organization=organization, actor=admin_user, membership=membership_of(organization, owner), role=Role.MEMBER
        )
    with pytest.raises(PermissionDenied):  # no self-promotion to owner
        services.membership_role_change(
            organization=organization, actor=admin_user, membership=membership_of(organization, admin_user), role=Role.OWNER
        )
    with pytest.raises(PermissionDenied):
        services.membership_remove(organization=organization, actor=admin_user, membership=membership_of(organization, owner))
    assert membership_of(organization, owner).role == Role.OWNER


def test_member_cannot_change_roles_or_remove(organization, owner, member, admin_user):
    with pytest.raises(PermissionDenied):
        services.membership_role_change(
            organization=organization, actor=member, membership=membership_of(organization, admin_user), role=Role.MEMBER
        )
    with pytest.raises(PermissionDenied):
        services.membership_remove(organization=organization, actor=member, membership=membership_of(organization, admin_user))


def test_unknown_role_is_refused(organization, owner, member):
    with pytest.raises(ApplicationError, match="Choose a role"):
        services.membership_role_change(
            organization=organization, actor=owner, membership=membership_of(organization, member), role="superuser"
        )


def test_remove_member(organization, owner, member):
    services.membership_remove(organization=organization, actor=owner, membership=membership_of(organization, member))
    assert not Membership.objects.for_org(organization).filter(user=member).exists()


def test_outsider_cannot_act_on_an_organization(organization, member, other_owner):
    with pytest.raises(PermissionDenied, match="not a member"):
        services.membership_remove(organization=organization, actor=other_owner, membership=membership_of(organization, member))


# --- invitations -------------------------------------------------------------------------


def test_invitation_is_emailed_and_only_its_hash_is_stored(organization, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invitation, token = services.invitation_create(
            organization=organization, actor=owner, email="  New.Hire@Example.TEST ", role=Role.MEMBER
        )
    assert invitation.email == "new.hire@example.test"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.hire@example.test"]
    assert f"/invitations/{token}/" in mail.outbox[0].body
    assert token not in invitation.token_hash and len(token) >= 40
    stored = Invitation.objects.unscoped("test: inspects rows directly").values_list("token_hash", flat=True).get(pk=invitation.pk)
    assert token not in stored


def test_invitation_rejects_invalid_email_and_existing_member(organization, owner, member):
    with pytest.raises(ApplicationError, match="valid email"):
        services.invitation_create(organization=organization, actor=owner, email="not-an-email")
    with pytest.raises(ApplicationError, match="already a member"):
        services.invitation_create(organization=organization, actor=owner, email=member.email.upper())
    assert Invitation.objects.unscoped("test: inspects rows directly").count() == 0


def test_only_owners_invite_owners(organization, admin_user):
    with pytest.raises(PermissionDenied):
        services.invitation_create(organization=organization, actor=admin_user, email="x@example.test", role=Role.OWNER)


def test_member_cannot_invite(organization, member):
    with pytest.raises(PermissionDenied):
        services.invitation_create(organization=organization, actor=member, email="x@example.test")


def test_accepting_creates_the_account_and_membership_once(organization, owner):
    invitation, token = services.invitation_create(organization=organization, actor=owner, email="ana@example.test", role=Role.ADMIN)
    membership = services.invitation_accept(token=token, name="Ana", password="a sufficiently long passphrase")
    assert membership.role == Role.ADMIN and membership.organization == organization
    assert membership.user.check_password("a sufficiently long passphrase")
    with pytest.raises(ApplicationError) as exc:
        services.invitation_accept(token=token, user=membership.user)
    assert exc.value.code == "invitation_accepted"


def test_accepting_links_an_existing_account(organization, owner, other_owner):
    _inv, token = services.invitation_create(organization=organization, actor=owner, email=other_owner.email)
    with pytest.raises(ApplicationError) as exc:  # signed out: must sign in first
        services.invitation_accept(token=token, name="X", password="a sufficiently long passphrase")
    assert exc.value.code == "sign_in_required"
    membership = services.invitation_accept(token=token, user=other_owner)
    assert membership.user == other_owner and membership.role == Role.MEMBER


def test_invitation_is_bound_to_its_email(organization, owner, other_owner):
    _inv, token = services.invitation_create(organization=organization, actor=owner, email="someone@example.test")
    with pytest.raises(ApplicationError) as exc:
        services.invitation_accept(token=token, user=other_owner)
    assert exc.value.code == "wrong_account"
    assert not Membership.objects.for_org(organization).filter(user=other_owner).exists()


def test_expired_invitation_is_refused_clearly(organization, owner):
    invitation, token = services.invitation_create(organization=organization, actor=owner, email="late@example.test")
    Invitation.objects.unscoped("test: inspects rows directly").filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ApplicationError) as exc:
        services.invitation_accept(token=token, name="Late", password="a sufficiently long passphrase")
    assert exc.value.code == "invitation_expired"
    assert "expired" in exc.value.message
    assert not Membership.objects.unscoped("test: inspects rows directly").filter(user__email="late@example.test").exists()


def test_revoked_and_unknown_invitations_are_refused(organization, owner):
    invitation, token = services.invitation_create(organization=organization, actor=owner, email="gone@example.test")
    services.invitation_revoke(organization=organization, actor=owner, invitation=invitation)
    with pytest.raises(ApplicationError) as exc:
        services.invitation_accept(token=token, name="G", password="a sufficiently long passphrase")
    assert exc.value.code == "invitation_revoked"
    with pytest.raises(ApplicationError) as exc:
        services.invitation_accept(token="made-up-token", name="G", password="a sufficiently long passphrase")
    assert exc.value.code == "not_found"


def test_weak_password_on_accept_writes_nothing(organization, owner):
    invitation, token = services.invitation_create(organization=organization, actor=owner, email="weak@example.test")
    with pytest.raises(ApplicationError) as exc:
        services.invitation_accept(token=token, name="W", password="password")
    assert exc.value.field == "password"
    invitation.refresh_from_db()
    assert invitation.accepted_at is None
    assert not Membership.objects.unscoped("test: inspects rows directly").filter(user__email="weak@example.test").exists()


def test_reinviting_replaces_the_open_invitation(organization, owner):
    first, first_token = services.invitation_create(organization=organization, actor=owner, email="twice@example.test")
    _second, second_token = services.invitation_create(organization=organization, actor=owner, email="twice@example.test")
    first.refresh_from_db()
    assert first.status == "revoked"
    with pytest.raises(ApplicationError):
        services.invitation_accept(token=first_token, name="T", password="a sufficiently long passphrase")
    services.invitation_accept(token=second_token, name="T", password="a sufficiently long passphrase")


def test_purge_removes_only_long_expired_invitations(organization):
    old = InvitationFactory(organization=organization, expires_at=timezone.now() - timedelta(days=31))
    recent = InvitationFactory(organization=organization, expires_at=timezone.now() - timedelta(days=2))
    pending = InvitationFactory(organization=organization)
    assert services.invitation_purge_expired(older_than_days=30) == 1
    remaining = set(Invitation.objects.unscoped("test: inspects rows directly").values_list("pk", flat=True))
    assert remaining == {recent.pk, pending.pk} and old.pk not in remaining
