"""What apps tell the API kernel about themselves.

The kernel imports no app (ARCHITECTURE.md, "Dependencies point one way"), yet
the OpenAPI schema must know which views are organization-bound: those get the
rate-limit headers, the Idempotency-Key parameter on POST and the 401/403/429
answers of docs/api.md. The app that defines such a base view registers it
here, from its ``AppConfig.ready()`` (accounts does, for OrganizationAPIView).
A dotted path is accepted so that ``ready()`` need not import the app's whole
API stack at start-up; it is imported when the schema first asks.

Authentication classes need no entry here: an app describes its own with a
drf-spectacular ``OpenApiAuthenticationExtension`` next to them, imported by
its ``ready()``; a class without one is described by ``FallbackScheme``.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

_organization_view_bases: list[type | str] = []


def register_organization_view(base: type | str) -> None:
    """Declare ``base`` (a view class or its dotted path) and its subclasses organization-bound.

    Registering the same base twice is harmless.
    """
    if not isinstance(base, (type, str)) or (isinstance(base, str) and "." not in base):
        raise TypeError(f"register_organization_view() takes a view class or its dotted path, not {base!r}.")
    if base not in _organization_view_bases:
        _organization_view_bases.append(base)


def organization_view_bases() -> tuple[type, ...]:
    """The registered bases, as classes (a dotted path is imported here, once)."""
    for position, base in enumerate(_organization_view_bases):
        if isinstance(base, str):
            try:
                resolved = import_string(base)
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"The organization-bound API view {base!r} registered with jagcall.kernel.api.registry "
                    f"cannot be imported ({exc}). Register the class at its current path."
                ) from exc
            _organization_view_bases[position] = resolved
    return tuple(base for base in _organization_view_bases if isinstance(base, type))


def is_organization_view(view) -> bool:
    """Whether ``view`` (a view instance or class) derives from a registered organization-bound base."""
    cls = view if isinstance(view, type) else type(view)
    return any(issubclass(cls, base) for base in organization_view_bases())
