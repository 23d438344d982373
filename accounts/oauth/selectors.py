"""OAuth reads: an organization's applications, a person's connections, the consent's choices."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import Organization, User
from accounts.scopes import SCOPES, scope_choices, scopes_for_role
from accounts.selectors import organization_list_for_user
from accounts.tenancy import get_for_org_or_404
from accounts.oauth.models import Application, RefreshToken


def _live_refresh_tokens():
    return RefreshToken.objects.unscoped().filter(revoked__isnull=True, expires_at__gt=timezone.now())


def oauth_application_list(*, organization: Organization) -> QuerySet[Application]:
    """The organization's applications, each with ``active_authorizations`` (live refresh chains)."""
    live = Q(refreshtoken__revoked__isnull=True, refreshtoken__expires_at__gt=timezone.now())
    return (
        Application.objects.for_org(organization)
        .select_related("created_by")
        .annotate(active_authorizations=Count("refreshtoken", filter=live, distinct=True))
        .order_by("name", "created")
    )


def oauth_application_get(*, organization: Organization, id) -> Application:
    return get_for_org_or_404(
        oauth_application_list(organization=organization), organization=organization, id=id
    )


def oauth_application_for_client_id(*, client_id: str) -> Application | None:
    """The application with this client id, whatever its organization: the client names it."""
    if not client_id or "\x00" in client_id:  # PostgreSQL text cannot hold NUL: no client has one
        return None
    return Application.objects.unscoped().select_related("organization").filter(client_id=client_id).first()


@dataclass
class Connection:
    """One application a person has connected, across their organizations."""

    application: Application
    organizations: list[Organization] = field(default_factory=list)
    scopes: list[tuple[str, str]] = field(default_factory=list)
    connected_at: object = None
    expires_at: object = None


def oauth_connection_list(*, user: User) -> list[Connection]:
    """The applications holding a live refresh token from ``user``, newest first."""
    connections: dict = {}
    tokens = (
        _live_refresh_tokens()
        .filter(user=user)
        .select_related("application", "application__organization", "organization", "access_token")
        .order_by("created")
    )
    for token in tokens:
        connection = connections.setdefault(token.application_id, Connection(application=token.application))
        if token.organization not in connection.organizations:
            connection.organizations.append(token.organization)
        granted = set(token.access_token.scope.split()) if token.access_token else set()
        known = {scope for scope, _label in connection.scopes}
        connection.scopes += [(s, label) for s, label in scope_choices(granted) if s not in known]
        connection.connected_at = connection.connected_at or token.created
        connection.expires_at = max(filter(None, [connection.expires_at, token.expires_at]))
    for connection in connections.values():
        connection.scopes.sort(key=lambda pair: list(SCOPES).index(pair[0]))
    return sorted(connections.values(), key=lambda c: c.connected_at, reverse=True)


def oauth_connected_application_get(*, user: User, id) -> Application | None:
    """One application the person may disconnect (any they gave a token to), or None."""
    try:
        return (
            Application.objects.unscoped()
            .filter(id=id)
            .filter(Q(refreshtoken__user=user) | Q(accesstoken__user=user))
            .distinct()
            .first()
        )
    except ValueError:
        return None


@dataclass(frozen=True)
class ConsentChoice:
    """An organization the person may connect, and what their role there lets them give."""

    organization: Organization
    role_label: str
    allowed: list  # (scope, label) among those requested that the role allows
    not_allowed: list  # (scope, label) requested but beyond the role
    blocked_reason: str = ""  # why it cannot be chosen now (e.g. two-factor sign-in required)


def oauth_consent_choices(*, user: User, requested: list[str]) -> list[ConsentChoice]:
    """Every active organization of ``user``, with the requested scopes split by what their role allows."""
    from accounts.mfa import user_has_two_factor
    from accounts.models import Membership

    roles = dict(Membership.objects.unscoped().filter(user=user).values_list("organization_id", "role"))
    has_two_factor = None
    choices = []
    for organization in organization_list_for_user(user=user):
        role = roles.get(organization.id)
        allowed_scopes = scopes_for_role(role)
        blocked = ""
        if organization.require_two_factor:
            if has_two_factor is None:
                has_two_factor = user_has_two_factor(user)
            if not has_two_factor:
                blocked = f"{organization.name} requires two-factor sign-in: set it up first."
        choices.append(
            ConsentChoice(
                organization=organization,
                role_label=dict(Membership._meta.get_field("role").choices).get(role, role),
                allowed=[(s, label) for s, label in scope_choices(requested) if s in allowed_scopes],
                not_allowed=[(s, label) for s, label in scope_choices(requested) if s not in allowed_scopes],
                blocked_reason=blocked,
            )
        )
    return choices
