"""OAuth reads: an organization's applications, the applications acting in it, a person's connections,
the consent's choices."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.hashing import secret_digest
from accounts.models import Organization, User
from accounts.scopes import SCOPES, scope_choices, scopes_for_role
from accounts.selectors import organization_list_for_user
from accounts.tenancy import get_for_org_or_404
from accounts.oauth.models import AccessToken, Application, Grant, RefreshToken
from accounts.oauth.validators import refresh_lifetime


def _live_refresh_tokens():
    return RefreshToken.objects.unscoped("a person's connections across their own organizations").filter(revoked__isnull=True, expires_at__gt=timezone.now())


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
    return Application.objects.unscoped("an application found by its client id names its own organization").select_related("organization").filter(client_id=client_id).first()


# --- the applications acting in an organization ----------------------------------------


@dataclass
class OrganizationConnection:
    """One application holding live tokens that act in an organization, whoever registered it."""

    application: Application
    members: list[User] = field(default_factory=list)
    scopes: list[tuple[str, str]] = field(default_factory=list)
    connected_at: object = None


def oauth_organization_connection_list(*, organization: Organization) -> list[OrganizationConnection]:
    """The applications holding a live token acting in ``organization``, oldest connection first,
    each with the members who connected it, the scopes they gave and when it was first connected.

    A token is live while its refresh chain is neither revoked nor ended, or
    while its access token has not expired (it still works for up to an hour
    after its chain ends).
    """
    now = timezone.now()
    related = ("application", "application__organization", "user")
    refresh_tokens = (
        RefreshToken.objects.for_org(organization)
        .filter(revoked__isnull=True, expires_at__gt=now)
        .select_related(*related, "access_token")
    )
    access_tokens = AccessToken.objects.for_org(organization).filter(expires__gt=now).select_related(*related)
    connections: dict = {}
    granted: dict = {}
    for token in [*refresh_tokens, *access_tokens]:
        if isinstance(token, AccessToken):
            scope = token.scope
        else:
            scope = token.access_token.scope if token.access_token else ""
        connection = connections.setdefault(
            token.application_id, OrganizationConnection(application=token.application)
        )
        if token.user is not None and token.user not in connection.members:
            connection.members.append(token.user)
        granted.setdefault(token.application_id, set()).update(scope.split())
        # A refresh chain's end is set once, when the code was exchanged: it dates the connection
        # however often it was refreshed since.
        since = token.expires_at - refresh_lifetime() if isinstance(token, RefreshToken) else token.created
        if connection.connected_at is None or since < connection.connected_at:
            connection.connected_at = since
    for application_id, connection in connections.items():
        connection.scopes = scope_choices(granted[application_id])
        connection.members.sort(key=lambda user: user.email)
    return sorted(connections.values(), key=lambda c: (c.connected_at, c.application.name))


def _acts_in(organization: Organization):
    """An application with a token, or a code not yet exchanged, acting in ``organization``."""
    application = OuterRef("pk")
    return (
        Exists(RefreshToken.objects.for_org(organization).filter(application=application, revoked__isnull=True))
        | Exists(AccessToken.objects.for_org(organization).filter(application=application))
        | Exists(Grant.objects.for_org(organization).filter(application=application, used_at__isnull=True))
    )


def oauth_application_acts_in(*, organization: Organization, application: Application) -> bool:
    return Application.objects.unscoped("applications acting in an organization, whichever organization registered them").filter(_acts_in(organization), pk=application.pk).exists()


def oauth_organization_connected_application_get(*, organization: Organization, id) -> Application:
    """An application acting in ``organization`` (registered there or elsewhere), or 404.

    [!!] Found through the tokens acting in this organization, never by id
    alone: an application with nothing here is another organization's business.
    """
    try:
        application = (
            Application.objects.unscoped("applications acting in an organization, whichever organization registered them")  # it may be registered by any organization; the filter scopes it
            .select_related("organization")
            .filter(_acts_in(organization), id=id)
            .first()
        )
    except (ValueError, ValidationError):
        application = None
    if application is None:
        raise Http404("No application acting in this organization matches the given query.")
    return application


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
            Application.objects.unscoped("applications acting in an organization, whichever organization registered them")
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


def oauth_consent_choices(*, request, requested: list[str]) -> list[ConsentChoice]:
    """Every active organization of the person signed in to ``request``, with the requested scopes
    split by what their role allows.

    [!!] An organization can be chosen only if this session passes the one
    access check for it (accounts.access.organization_access): its single
    sign-on, its two-factor rule, a sign-in of its own after another
    organization's single sign-on. Consent is given once and the token then
    acts without the session, so the session must open the organization now.
    """
    from accounts.access import AccessDenied, organization_access
    from accounts.models import Membership

    user = request.user
    roles = dict(Membership.objects.unscoped("a person's roles across their own organizations").filter(user=user).values_list("organization_id", "role"))
    choices = []
    for organization in organization_list_for_user(user=user):
        role = roles.get(organization.id)
        allowed_scopes = scopes_for_role(role)
        blocked = ""
        try:
            organization_access(request, organization)
        except AccessDenied as denial:
            blocked = denial.message
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


def oauth_access_token_for_authentication(*, raw: str) -> AccessToken | None:
    """The access token behind ``raw`` (found by its SHA-256), whatever its organization: the token names it."""
    return (
        AccessToken.objects.unscoped("an access token found by its hash names its own organization")
        .select_related("application", "application__organization", "user", "organization")
        .filter(token_checksum=secret_digest(raw))
        .first()
    )
