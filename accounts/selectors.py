from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from accounts.models import Invitation, Membership, Organization, OrganizationStatus, User
from accounts.permissions import Role
from accounts.tenancy import get_for_org_or_404


def organization_list_for_user(*, user: User) -> QuerySet[Organization]:
    return (
        Organization.objects.filter(memberships__user=user, status=OrganizationStatus.ACTIVE)
        .order_by("name")
        .distinct()
    )


def membership_for_user(*, organization: Organization, user) -> Membership | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return Membership.objects.for_org(organization).select_related("user").filter(user=user).first()


def membership_list(*, organization: Organization) -> QuerySet[Membership]:
    return Membership.objects.for_org(organization).select_related("user").order_by("user__email")


def membership_get(*, organization: Organization, id) -> Membership:
    return get_for_org_or_404(Membership.objects.select_related("user"), organization=organization, id=id)


def invitation_list_pending(*, organization: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.for_org(organization).pending().select_related("invited_by")


def invitation_get(*, organization: Organization, id) -> Invitation:
    return get_for_org_or_404(Invitation, organization=organization, id=id)


def organization_owner_count(*, organization: Organization) -> int:
    return Membership.objects.for_org(organization).filter(role=Role.OWNER).count()


def organization_dashboard_stats(*, organization: Organization) -> dict:
    counts = Membership.objects.for_org(organization).aggregate(
        total=Count("id"),
        owners=Count("id", filter=Q(role=Role.OWNER)),
        admins=Count("id", filter=Q(role=Role.ADMIN)),
        members=Count("id", filter=Q(role=Role.MEMBER)),
    )
    counts["pending_invitations"] = Invitation.objects.for_org(organization).pending().count()
    return counts


def user_email_verified(*, user) -> bool:
    from allauth.account.models import EmailAddress

    return EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists()
