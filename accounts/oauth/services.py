"""OAuth application services: register, edit, rotate the secret, delete, revoke; and the consent rules.

[!!] A client secret leaves ``oauth_application_create`` and
``oauth_application_rotate_secret`` once, in their return value; the
database keeps only its password hash. Codes and tokens are written by the
toolkit's endpoints through oauth/validators.py.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from accounts.principals import as_principal
from accounts.models import Organization, User
from accounts.scopes import SCOPES, scopes_for_role, unknown_scopes
from accounts.security_events import emit
from jagcall.kernel.errors import ApplicationError
from accounts.oauth.models import LOOPBACK_HOSTS, AccessToken, Application, Grant, RefreshToken
from accounts.oauth.selectors import oauth_application_acts_in
from accounts.oauth.tokens import generate_client_secret_value

MAX_REDIRECT_URIS = 10
MAX_REDIRECT_URI_LENGTH = 2000


def _clean_redirect_uris(value: str | Iterable[str]) -> list[str]:
    """One URI per line (or space-separated): https, or http on a loopback address; no fragment, no credentials."""
    items = value.split() if isinstance(value, str) else [v.strip() for v in value]
    uris = list(dict.fromkeys(u for u in items if u))  # keep order, drop repeats
    if not uris:
        raise ApplicationError(
            "Add at least one redirect URI: the address of your application that receives the authorization code, "
            "e.g. https://app.example.com/oauth/callback.",
            field="redirect_uris",
        )
    if len(uris) > MAX_REDIRECT_URIS:
        raise ApplicationError(f"Register at most {MAX_REDIRECT_URIS} redirect URIs.", field="redirect_uris")
    for uri in uris:
        problem = _redirect_uri_problem(uri)
        if problem:
            raise ApplicationError(f"{uri[:200]}: {problem}", field="redirect_uris")
    return uris


def _redirect_uri_problem(uri: str) -> str | None:
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        return f"keep redirect URIs under {MAX_REDIRECT_URI_LENGTH} characters."
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        return "this is not a valid URL."
    if "#" in uri:
        return "a redirect URI cannot have a fragment (#…)."
    if "@" in parts.netloc:
        return "a redirect URI cannot carry a user name or password."
    if "*" in uri:
        return "wildcards are not allowed: register each exact address."
    if not parts.hostname:
        return "give a full address with its host, e.g. https://app.example.com/callback."
    if parts.scheme == "https":
        return None
    if parts.scheme == "http":
        if parts.hostname in LOOPBACK_HOSTS:
            return None
        return (
            "use https. Plain http is allowed only for 127.0.0.1, [::1] and localhost "
            "(apps on the user's own computer)."
        )
    return "use an https address (or http on 127.0.0.1, [::1] or localhost)."


def _clean_name(value: str) -> str:
    name = (value or "").strip()
    if not name:
        raise ApplicationError(
            "Give the application a name: people see it when they are asked to connect it.", field="name"
        )
    if len(name) > 100:
        raise ApplicationError("Keep the name under 100 characters.", field="name")
    return name


def _acting_person(organization: Organization, actor) -> User | None:
    """The person behind ``actor`` (a Principal built at the edge, or a User), once they may manage applications."""
    if actor is None:
        return None  # a system job
    principal = as_principal(actor, organization)
    if principal.kind == "support":
        return principal.user  # support staff in the back office (staff only reach it)
    principal.require("oauth_apps.manage")
    return principal.user


def _check_owned(*, organization: Organization, application: Application) -> None:
    """[!!] Only the organization that registered an application changes it."""
    if application.organization_id != organization.id:
        raise ApplicationError("Not found.", code="not_found", status=404)


@transaction.atomic
def oauth_application_create(
    *,
    organization: Organization,
    actor,
    name: str,
    client_type: str,
    redirect_uris: str | Iterable[str],
    request=None,
) -> tuple[Application, str | None]:
    """A new application and, for a confidential client, its secret (returned once, stored hashed)."""
    actor = _acting_person(organization, actor)
    name = _clean_name(name)
    if client_type not in (Application.CLIENT_CONFIDENTIAL, Application.CLIENT_PUBLIC):
        raise ApplicationError("Choose confidential or public.", field="client_type")
    uris = _clean_redirect_uris(redirect_uris)
    secret = generate_client_secret_value() if client_type == Application.CLIENT_CONFIDENTIAL else None
    application = Application.objects.create(
        organization=organization,
        name=name,
        client_type=client_type,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(uris),
        client_secret=secret or "",
        hash_client_secret=True,
        skip_authorization=False,
        created_by=actor,
    )
    emit(
        "oauth.application_created",
        request=request,
        user=actor,
        organization=organization,
        application_id=str(application.id),
        client_id=application.client_id,
        client_type=client_type,
    )
    return application, secret


def _revoke(*, applications, user: User | None = None, organization: Organization | None = None) -> int:
    """Revoke the live tokens of ``applications`` (only ``user``'s, and only those acting in
    ``organization``, when given); returns the refresh tokens ended."""
    now = timezone.now()
    refresh_tokens = RefreshToken.objects.unscoped("an application's tokens, wherever it acts").filter(application__in=applications, revoked__isnull=True)
    access_tokens = AccessToken.objects.unscoped("an application's tokens, wherever it acts").filter(application__in=applications)
    grants = Grant.objects.unscoped("an application's codes, wherever it acts").filter(application__in=applications)
    if user is not None:
        refresh_tokens = refresh_tokens.filter(user=user)
        access_tokens = access_tokens.filter(user=user)
        grants = grants.filter(user=user)
    if organization is not None:
        refresh_tokens = refresh_tokens.filter(organization=organization)
        access_tokens = access_tokens.filter(organization=organization)
        grants = grants.filter(organization=organization)
    ended = refresh_tokens.update(revoked=now, access_token=None, updated=now)
    access_tokens.delete()
    grants.delete()  # pending codes, and used ones kept for reuse detection: nothing is left to protect
    return ended


@transaction.atomic
def oauth_application_update(
    *,
    organization: Organization,
    application: Application,
    actor,
    name: str,
    redirect_uris: str | Iterable[str],
    request=None,
) -> Application:
    """Rename the application and/or replace its redirect URIs (validated as at registration).

    Tokens already issued keep working: they were never tied to an address.
    [!!] New authorizations must use the new URIs (the authorization endpoint
    reads them on every request), and codes issued to a removed URI that were
    not exchanged yet are deleted, so nothing is delivered through an address
    the organization has just withdrawn.
    """
    actor = _acting_person(organization, actor)
    _check_owned(organization=organization, application=application)
    name = _clean_name(name)
    uris = _clean_redirect_uris(redirect_uris)
    changes: dict = {}
    if name != application.name:
        changes["name"] = {"before": application.name, "after": name}
    before_uris = application.redirect_uri_list
    if uris != before_uris:
        changes["redirect_uris"] = {"before": before_uris, "after": uris}
    if not changes:
        return application
    application.name = name
    application.redirect_uris = " ".join(uris)
    application.save(update_fields=["name", "redirect_uris", "updated"])
    removed = [uri for uri in before_uris if uri not in uris]
    if removed:
        Grant.objects.unscoped("codes sent to an application's removed redirect URIs").filter(
            application=application, used_at__isnull=True, redirect_uri__in=removed
        ).delete()
    emit(
        "oauth.application_updated",
        request=request,
        user=actor,
        organization=organization,
        application_id=str(application.id),
        client_id=application.client_id,
        changes=changes,
    )
    return application


@transaction.atomic
def oauth_application_rotate_secret(
    *, organization: Organization, application: Application, actor, request=None
) -> str:
    """A new client secret for a confidential application, returned once and stored hashed.

    [!!] From the commit on, only the new secret authenticates the client at
    /oauth/token and /oauth/revoke_token; the old one is refused. Tokens
    already issued keep working: the secret authenticates the client, not them.
    """
    actor = _acting_person(organization, actor)
    _check_owned(organization=organization, application=application)
    if not application.is_confidential:
        raise ApplicationError(
            "A public application has no client secret to rotate: it proves itself with PKCE only.",
            code="no_client_secret",
        )
    secret = generate_client_secret_value()
    application.client_secret = secret  # hashed by the toolkit's field as it is saved (hash_client_secret)
    application.hash_client_secret = True
    application.save(update_fields=["client_secret", "hash_client_secret", "updated"])
    emit(
        "oauth.application_secret_rotated",
        request=request,
        user=actor,
        organization=organization,
        application_id=str(application.id),
        client_id=application.client_id,
    )
    return secret


@transaction.atomic
def oauth_application_revoke_tokens(
    *, organization: Organization, application: Application, actor, request=None
) -> int:
    """End every authorization of the application, for everyone: its tokens stop working at once."""
    actor = _acting_person(organization, actor)
    _check_owned(organization=organization, application=application)
    ended = _revoke(applications=[application])
    emit(
        "oauth.application_tokens_revoked",
        request=request,
        user=actor,
        organization=organization,
        application_id=str(application.id),
        chains_ended=ended,  # named so the audit log keeps the count (names with "token" are redacted)
    )
    return ended


@transaction.atomic
def oauth_application_delete(
    *, organization: Organization, application: Application, actor, request=None
) -> None:
    """Delete the application; its codes and tokens go with it (they stop working at once)."""
    actor = _acting_person(organization, actor)
    _check_owned(organization=organization, application=application)
    application_id, client_id = str(application.id), application.client_id
    application.delete()  # cascades to its codes and tokens
    emit(
        "oauth.application_deleted",
        request=request,
        user=actor,
        organization=organization,
        application_id=application_id,
        client_id=client_id,
    )


@transaction.atomic
def oauth_authorization_revoke(*, user: User, application: Application, request=None) -> int:
    """A person disconnects an application: all the tokens they gave it, in every organization, stop working."""
    ended = _revoke(applications=[application], user=user)
    emit(
        "oauth.authorization_revoked",
        request=request,
        user=user,
        application_id=str(application.id),
        chains_ended=ended,  # named so the audit log keeps the count (names with "token" are redacted)
    )
    return ended


@transaction.atomic
def oauth_organization_connection_revoke(
    *, organization: Organization, application: Application, actor, request=None
) -> int:
    """The organization's owners or admins disconnect an application from their organization.

    Every token and code of the application acting in ``organization`` stops
    working at once, whoever gave it and whichever organization registered the
    application. [!!] Only those: what the same application holds for other
    organizations is left alone.
    """
    actor = _acting_person(organization, actor)
    if not oauth_application_acts_in(organization=organization, application=application):
        raise ApplicationError("Not found.", code="not_found", status=404)
    ended = _revoke(applications=[application], organization=organization)
    emit(
        "oauth.organization_connection_revoked",
        request=request,
        user=actor,
        organization=organization,
        application_id=str(application.id),
        client_id=application.client_id,
        registered_by_organization_id=str(application.organization_id),
        connections_ended=ended,
    )
    return ended


# --- consent ---------------------------------------------------------------------------


def oauth_consent_check(
    *,
    user: User,
    organization: Organization | None,
    eligible: Collection[Organization],
    requested: Iterable[str],
    granted: Iterable[str],
) -> list[str]:
    """The scopes to grant (registry order), or an ApplicationError saying what to change.

    ``granted`` must be among ``requested`` and among what the person's role
    in ``organization`` allows; ``organization`` must be one of ``eligible``.
    """
    from accounts.selectors import membership_for_user

    if organization is None or organization.id not in {o.id for o in eligible}:
        raise ApplicationError("Choose one of your organizations.", field="organization")
    membership = membership_for_user(organization=organization, user=user)
    if membership is None:
        raise ApplicationError("Choose one of your organizations.", field="organization")
    requested, granted = set(requested), set(granted)
    if unknown_scopes(granted) or not granted <= requested:
        raise ApplicationError("Choose only among the permissions the application asked for.", field="scopes")
    if not granted:
        raise ApplicationError(
            "Choose at least one permission to give, or select Deny to refuse the connection.", field="scopes"
        )
    beyond = sorted(granted - scopes_for_role(membership.role))
    if beyond:
        labels = "; ".join(f"{SCOPES[s][1]} ({s})" for s in beyond)
        raise ApplicationError(
            f"Your role in {organization.name} ({membership.get_role_display()}) does not allow: {labels}. "
            "Untick them, or choose another organization.",
            field="scopes",
            code="scope_not_allowed",
        )
    return [s for s in SCOPES if s in granted]


def oauth_authorized(
    *, request, user: User, organization: Organization, application: Application, scopes: list[str]
) -> None:
    """Record a consent (the code itself is written by the toolkit's authorization endpoint)."""
    emit(
        "oauth.authorized",
        request=request,
        user=user,
        organization=organization,
        application_id=str(application.id),
        client_id=application.client_id,
        scopes=scopes,
    )


@transaction.atomic
def oauth_tokens_purge_expired(*, now=None) -> dict[str, int]:
    """Delete what can no longer be used: expired codes, refresh tokens whose chain has ended,
    and expired access tokens with no live refresh token.

    [!!] Refresh tokens that were rotated or revoked stay until their chain
    ends: presenting one again is how a stolen token is detected (its whole
    family is then revoked), so they must not be forgotten earlier.
    """
    from django.db.models import Q

    now = now or timezone.now()
    grants, _ = Grant.objects.unscoped("the hourly purge of expired codes, every organization").filter(expires__lt=now).delete()
    refresh_tokens, _ = RefreshToken.objects.unscoped("the hourly purge of expired tokens, every organization").filter(expires_at__lt=now).delete()
    access_tokens, _ = (
        AccessToken.objects.unscoped("the hourly purge of expired tokens, every organization")
        .filter(expires__lt=now)
        .filter(Q(refresh_token__isnull=True) | Q(refresh_token__expires_at__lt=now))
        .delete()
    )
    return {"grants": grants, "refresh_tokens": refresh_tokens, "access_tokens": access_tokens}
