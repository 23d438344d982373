"""The tenancy kernel: one rule, one place.

Every customer-owned row inherits ``OrganizationOwned``. Reads go through
``Model.objects.for_org(org)``; lookups by id go through
``get_for_org_or_404``, which answers 404 (never 403) for another
organization's object, so a caller cannot learn that it exists.

[!!] Tenancy fails closed: the default manager of every organization-owned
model raises ``UnscopedQuery`` for a query that is neither scoped with
``.for_org(org)`` nor explicitly ``.unscoped(reason)``. Bypassing the scope
is visible in review: the only unscoped entry point is ``unscoped(reason)``.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from django.db import models
from django.http import Http404

M = TypeVar("M", bound=models.Model)


class UnscopedQuery(RuntimeError):
    """[!!] A query of organization-owned rows that names no organization and gave no reason."""


# Filters that bind a query to one organization (or to rows already bound to one).
_SCOPING_LOOKUPS = frozenset({"organization", "organization_id", "organization__pk", "organization__id", "organization__in", "organization_id__in", "organization__isnull"})


def _lookup_scopes(key: str, value) -> bool:
    # [!!] "organization__isnull=False" names every organization: only the platform's rows (True) are one scope.
    if key == "organization__isnull":
        return value is True
    return key in _SCOPING_LOOKUPS


def _q_scopes(q) -> bool:
    """A Q that every row must match names the organization (an AND of lookups, one of them on it)."""
    if not isinstance(q, models.Q) or q.negated:
        return False
    if q.connector == models.Q.AND:
        return any(
            (isinstance(child, tuple) and _lookup_scopes(*child)) or _q_scopes(child) for child in q.children
        )
    # An OR scopes only if each branch does.
    return bool(q.children) and all(
        (isinstance(child, tuple) and _lookup_scopes(*child)) or _q_scopes(child) for child in q.children
    )


class OrganizationQuerySet(models.QuerySet):
    """Fails closed: reading rows needs ``for_org(org)`` or ``unscoped(reason)`` first.

    A filter on ``organization`` (what ``for_org`` does, and what Django's
    related managers do for ``organization.<rows>``) scopes the query too;
    [!!] a primary key does not (an id from a URL is exactly what must not
    open another organization's row).
    Writing a new row (``create``) needs no scope: the row carries its
    organization. Anything else raises UnscopedQuery when it reaches the
    database.
    """

    _jc_scoped = False
    _jc_reason = ""

    def _clone(self):
        clone = super()._clone()
        clone._jc_scoped, clone._jc_reason = self._jc_scoped, self._jc_reason
        return clone

    def _scoped(self, reason: str) -> "OrganizationQuerySet":
        clone = self._chain()
        clone._jc_scoped, clone._jc_reason = True, reason
        return clone

    def for_org(self, organization) -> "OrganizationQuerySet":
        if organization is None:
            raise ValueError("for_org() needs an organization; use unscoped(reason) to read across tenants.")
        return self._scoped("for_org").filter(organization=organization)

    def unscoped(self, reason: str) -> "OrganizationQuerySet":
        """Every organization's rows. [!!] Say why in ``reason`` (back office, system jobs, a credential
        that names its own row): it is the one visible way across tenants."""
        if not reason or not isinstance(reason, str):
            raise ValueError("unscoped() needs the reason this query reads across organizations.")
        return self._scoped(reason)

    def _filter_or_exclude(self, negate, args, kwargs):
        clone = super()._filter_or_exclude(negate, args, kwargs)
        if not negate and (any(_lookup_scopes(key, value) for key, value in kwargs.items()) or any(_q_scopes(q) for q in args)):
            clone._jc_scoped = True
            clone._jc_reason = clone._jc_reason or "filtered by organization"
        return clone

    def _require_scope(self) -> None:
        if not self._jc_scoped:
            raise UnscopedQuery(
                f"{self.model.__name__} rows belong to organizations: query them with .for_org(organization), "
                "or .unscoped(reason) where reading across organizations is the point."
            )

    def _fetch_all(self):
        if self._result_cache is None:
            self._require_scope()
        super()._fetch_all()

    def count(self):
        self._require_scope()
        return super().count()

    def exists(self):
        self._require_scope()
        return super().exists()

    def aggregate(self, *args, **kwargs):
        self._require_scope()
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs):
        self._require_scope()
        return super().update(**kwargs)

    def delete(self):
        self._require_scope()
        return super().delete()

    def iterator(self, chunk_size=None):
        self._require_scope()
        return super().iterator(chunk_size=chunk_size)

    # ``organization`` is always loaded: tenancy checks and the encryption of
    # a row's fields need it, and a deferred one would cost a query per row.
    def only(self, *fields) -> "OrganizationQuerySet":
        if fields and "organization" not in fields and "organization_id" not in fields:
            fields = (*fields, "organization")
        return super().only(*fields)

    def defer(self, *fields) -> "OrganizationQuerySet":
        return super().defer(*[f for f in fields if f not in ("organization", "organization_id")])


class LibraryLookupManager(models.Manager.from_queryset(OrganizationQuerySet)):
    """For rows that a third-party library looks up by a unique secret it was handed (a token's hash,
    a code, a client id): its querysets start scoped, because such a row names its own organization.

    [!!] A model declares it explicitly, with the library and the reason beside it; our own code
    still states its scope (``for_org`` or ``unscoped(reason)``). The exemptions are listed and
    checked in accounts/tests/test_tenancy_fail_closed.py.
    """

    def __init__(self, reason: str):
        super().__init__()
        self.reason = reason

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        return name, path, [self.reason], kwargs

    def get_queryset(self):
        return super().get_queryset()._scoped(self.reason)


class OrganizationManager(models.Manager.from_queryset(OrganizationQuerySet)):
    """The default manager of organization-owned models (fail-closed querysets).

    Django's own machinery (saving, deleting, refreshing, following a foreign
    key) uses the base manager, a plain one, so it is unaffected.
    """


class OrganizationOwned(models.Model):
    """Abstract base of every tenant-owned model.

    Contract: a UUID primary key; ``organization`` (PROTECT, indexed);
    composite unique constraints of subclasses include ``organization``.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        "accounts.Organization",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=True,
    )

    objects = OrganizationManager()

    class Meta:
        abstract = True


def get_for_org_or_404(queryset_or_model, *, organization, **lookup):
    """Fetch one object of ``organization`` or raise Http404 (also for other tenants' ids)."""
    queryset = queryset_or_model
    if isinstance(queryset_or_model, type) and issubclass(queryset_or_model, models.Model):
        queryset = queryset_or_model.objects.all()
    try:
        return queryset.for_org(organization).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, models.ObjectDoesNotExist):
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from None
    except Exception as exc:  # invalid UUID strings raise ValidationError
        from django.core.exceptions import ValidationError

        if isinstance(exc, ValidationError):
            raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from None
        raise


def assert_same_organization(organization, *objects) -> None:
    """Services call this before linking objects: all must belong to ``organization``."""
    for obj in objects:
        if obj is not None and getattr(obj, "organization_id", None) != organization.id:
            raise ValueError(f"{obj!r} does not belong to organization {organization.pk}")
