"""Who did it: the actor of an audit event, from an explicit value or the request."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.api_keys.models import API_KEY_PREFIX
from compliance.models import ActorType



@dataclass(frozen=True)
class Actor:
    """The actor columns of an event.

    ``key`` is the stable identity recorded and hashed ("user:<id>",
    "api_key:<prefix>", "oauth_application:<id>", "system"); ``label`` is
    what people read (email, ``jc_live_<prefix>``, application name);
    ``user_id`` fills the ``actor`` FK while the account exists.
    """

    type: str
    label: str = ""
    key: str = ""
    user_id: object | None = None  # fills the actor FK
    api_key_prefix: str = ""
    on_behalf_of: str = ""  # an OAuth application's user, recorded in metadata

    @classmethod
    def for_user(cls, user) -> "Actor":
        return cls(type=ActorType.USER, label=user.email, key=f"user:{user.pk}", user_id=user.pk)

    @classmethod
    def support(cls, user) -> "Actor":
        """JagCall staff acting from the back office."""
        return cls(type=ActorType.SUPPORT, label=user.email, key=f"user:{user.pk}", user_id=user.pk)

    @classmethod
    def for_api_key(cls, api_key) -> "Actor":
        return cls(
            type=ActorType.API_KEY,
            label=f"{API_KEY_PREFIX}{api_key.prefix}",
            key=f"api_key:{api_key.prefix}",
            api_key_prefix=api_key.prefix,
        )

    @classmethod
    def for_api_key_prefix(cls, prefix: str) -> "Actor":
        """A caller that presented a key with this prefix (the key may not exist)."""
        prefix = (prefix or "")[:16]
        return cls(
            type=ActorType.API_KEY,
            label=f"{API_KEY_PREFIX}{prefix}" if prefix else "",
            key=f"api_key:{prefix}" if prefix else "",
            api_key_prefix=prefix,
        )

    @classmethod
    def for_oauth_application(cls, application, *, user=None) -> "Actor":
        return cls(
            type=ActorType.OAUTH_APPLICATION,
            label=str(getattr(application, "name", "") or application),
            key=f"oauth_application:{application.pk}",
            user_id=user.pk if user is not None else None,
            on_behalf_of=getattr(user, "email", "") if user is not None else "",
        )

    @classmethod
    def from_principal(cls, principal) -> "Actor":
        """The actor columns of an accounts Principal, exactly as the edge built it."""
        from accounts.principals import Kind

        if principal.kind == Kind.API_KEY:
            return cls.for_api_key(principal.api_key)
        if principal.kind == Kind.OAUTH_APPLICATION:
            return cls.for_oauth_application(principal.application, user=principal.user)
        if principal.kind == Kind.SUPPORT:
            return cls.support(principal.user)
        if principal.kind == Kind.MEMBER:
            return cls.for_user(principal.user)
        if principal.kind == Kind.WEBHOOK:
            return cls(type=ActorType.SYSTEM, label=f"{principal.name} webhook", key=f"webhook:{principal.name}")
        return cls.system(principal.name or "system")

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls(type=ActorType.SYSTEM, label=label, key="system")

    @classmethod
    def anonymous(cls, label: str = "") -> "Actor":
        return cls(type=ActorType.ANONYMOUS, label=label)


def _is_back_office(request) -> bool:
    from django.conf import settings

    return request.path.startswith(f"/{settings.ADMIN_URL}")


def actor_from_request(request) -> Actor:
    """The credential behind ``request``: an API key, an OAuth application, a person, or nobody."""
    request = getattr(request, "_request", request)  # DRF's Request wraps Django's
    credential = getattr(request, "auth", None)
    api_key = getattr(credential, "api_key", None)
    if api_key is not None:
        return Actor.for_api_key(api_key)
    user = getattr(request, "user", None)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    application = getattr(credential, "application", None)
    if application is not None:
        return Actor.for_oauth_application(application, user=user)
    if user is not None:
        if user.is_staff and _is_back_office(request):
            return Actor.support(user)
        return Actor.for_user(user)
    return Actor.anonymous()


def resolve_actor(actor, request) -> Actor:
    """An explicit actor (Actor, person, API key, OAuth application) wins over the request's."""
    from accounts.principals import Principal

    if isinstance(actor, Actor):
        return actor
    if isinstance(actor, Principal):
        return Actor.from_principal(actor)
    if actor is None:
        return actor_from_request(request) if request is not None else Actor.system()
    from accounts.models import ApiKey, User

    if isinstance(actor, User):
        if request is not None and actor.is_staff and _is_back_office(getattr(request, "_request", request)):
            return Actor.support(actor)
        return Actor.for_user(actor)
    if isinstance(actor, ApiKey):
        return Actor.for_api_key(actor)
    if hasattr(actor, "client_id") and hasattr(actor, "name"):  # an OAuth application
        return Actor.for_oauth_application(actor)
    raise TypeError(f"Cannot record {actor!r} as an audit actor")
