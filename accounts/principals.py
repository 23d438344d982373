"""Who acts: one explicit principal, built once at the edge and passed to services as ``actor=``.

Every way in builds exactly one:

- a member through a portal session, or through a JWT (``via``);
- an API key: it acts as itself, within its creator's current rights (or,
  for an operator's service key, within the role it was given);
- an OAuth application, on behalf of the member who connected it;
- a provider's webhook (``webhook("twilio")``) and a system job
  (``system("audit-retention")``), which act for the platform;
- support staff in the back office.

The API's authentication classes return it as ``request.auth``; portal views
build it from their membership; tasks build ``system(...)``. Services check
rights with ``principal.require(action)`` and hand the same principal to the
audit log, which records it as given: nothing downstream works out who acted
from the ambient request.

[!!] ``role`` is the role whose rights apply *now* (a member's current role;
for an API key, its creator's current role or a service key's own role), and
``scopes`` are already narrowed to what that role allows. A principal can
never do more than the role it carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accounts.permissions import has_permission
from jagcall.kernel.errors import PermissionDenied


class Kind:
    MEMBER = "member"
    API_KEY = "api_key"
    OAUTH_APPLICATION = "oauth_application"
    SUPPORT = "support"
    WEBHOOK = "webhook"
    SYSTEM = "system"


@dataclass(frozen=True, eq=False)
class Principal:
    kind: str
    organization: Any = None
    user: Any = None  # the person: a member, the member behind an OAuth application, support staff
    role: str | None = None
    scopes: frozenset = frozenset()
    api_key: Any = None
    application: Any = None  # an OAuth application
    name: str = ""  # a webhook's provider, a system job's name
    via: str = ""  # how a member came in: "session", "jwt"
    sign_in: Any = None  # accounts.access.SignIn of a member's session or token
    extra: dict = field(default_factory=dict)

    # --- constructors -------------------------------------------------------------------

    @classmethod
    def member(cls, membership, *, via: str = "session", sign_in=None) -> "Principal":
        from accounts.scopes import scopes_for_role

        return cls(
            kind=Kind.MEMBER,
            organization=membership.organization,
            user=membership.user,
            role=membership.role,
            scopes=scopes_for_role(membership.role),
            via=via,
            sign_in=sign_in,
        )

    @classmethod
    def for_api_key(cls, api_key, *, role: str | None) -> "Principal":
        """``role``: the creator's current role, or a service key's own; None when neither holds."""
        from accounts.scopes import scopes_for_role

        return cls(
            kind=Kind.API_KEY,
            organization=api_key.organization,
            role=role,
            scopes=frozenset(api_key.scopes) & scopes_for_role(role),
            api_key=api_key,
        )

    @classmethod
    def for_oauth_application(cls, application, *, membership, granted_scopes) -> "Principal":
        from accounts.scopes import scopes_for_role

        return cls(
            kind=Kind.OAUTH_APPLICATION,
            organization=membership.organization,
            user=membership.user,
            role=membership.role,
            scopes=frozenset(granted_scopes) & scopes_for_role(membership.role),
            application=application,
        )

    @classmethod
    def support(cls, user) -> "Principal":
        return cls(kind=Kind.SUPPORT, user=user)

    @classmethod
    def webhook(cls, provider: str, *, organization=None) -> "Principal":
        return cls(kind=Kind.WEBHOOK, name=provider, organization=organization)

    @classmethod
    def system(cls, job: str = "system", *, organization=None) -> "Principal":
        return cls(kind=Kind.SYSTEM, name=job, organization=organization)

    # --- what it may do ------------------------------------------------------------------

    @property
    def is_person(self) -> bool:
        return self.kind in (Kind.MEMBER, Kind.SUPPORT)

    def can(self, action: str) -> bool:
        if self.kind in (Kind.SYSTEM, Kind.SUPPORT):
            # Platform jobs, and support staff in the back office (which only staff whose session
            # passed the platform's second factor reach), act under the rules of the service they call.
            return True
        return has_permission(self.role, action)

    def require(self, action: str) -> None:
        """Raise PermissionDenied with a message that is true of this kind of principal."""
        if self.can(action):
            return
        if self.kind == Kind.API_KEY:
            if self.api_key is not None and self.api_key.created_by_id is None:
                message = (
                    f"This service key's role ({self.role}) does not allow this. "
                    "The operator can create a service key with a role that does."
                )
            elif self.role is None:
                message = "The person who created this API key is no longer a member, so the key can no longer act."
            else:
                message = (
                    f"This API key acts within the rights of the person who created it, whose role ({self.role}) "
                    "does not allow this."
                )
        elif self.kind == Kind.OAUTH_APPLICATION:
            message = f"This application acts for a member whose role ({self.role}) does not allow this."
        else:
            message = "Your role does not allow this."
        raise PermissionDenied(message)

    # --- how it is named -----------------------------------------------------------------

    @property
    def rate_limit_key(self) -> str:
        """One budget per API key; one per person across their sessions, JWTs and OAuth tokens."""
        if self.kind == Kind.API_KEY:
            return f"key:{self.api_key.id}"
        if self.user is not None:
            return f"user:{self.user.id}"
        return f"{self.kind}:{self.name}"

    @property
    def credential_key(self) -> str:
        """This credential, distinct from every other (Idempotency-Key records are kept per organization and this)."""
        if self.kind == Kind.API_KEY:
            return f"api_key:{self.api_key.id}"
        if self.kind == Kind.OAUTH_APPLICATION:
            return f"oauth:{self.application.pk}:user:{self.user.pk}"
        if self.user is not None:
            return f"{self.via or self.kind}:user:{self.user.pk}"
        return f"{self.kind}:{self.name}"

    @property
    def label(self) -> str:
        from accounts.api_keys.models import API_KEY_PREFIX

        if self.kind == Kind.API_KEY:
            return f"{API_KEY_PREFIX}{self.api_key.prefix}"
        if self.kind == Kind.OAUTH_APPLICATION:
            return str(getattr(self.application, "name", "") or self.application)
        if self.user is not None:
            return self.user.email
        return self.name

    def __repr__(self) -> str:
        return f"<Principal {self.kind} {self.label!r}>"


def as_principal(actor, organization) -> Principal:
    """``actor`` as a Principal acting in ``organization``.

    Views, the API and tasks pass the Principal they built at the edge. A
    User is accepted for a person acting for themselves (management commands,
    the person's own flows): their current membership of ``organization`` is
    read here, once. [!!] A Principal bound to another organization is refused.
    """
    from accounts.models import User
    from accounts.selectors import membership_for_user

    if isinstance(actor, Principal):
        if actor.organization is not None and organization is not None and actor.organization.pk != organization.pk:
            raise PermissionDenied("This credential belongs to another organization.")
        return actor
    if isinstance(actor, User):
        membership = membership_for_user(organization=organization, user=actor)
        if membership is None:
            raise PermissionDenied("You are not a member of this organization.")
        membership.organization = organization
        return Principal.member(membership, via="direct")
    raise TypeError(f"actor must be a Principal or a User, not {type(actor).__name__}")
