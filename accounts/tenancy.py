"""The tenancy kernel: one rule, one place.

Every customer-owned row inherits ``OrganizationOwned``. Reads go through
``Model.objects.for_org(org)``; lookups by id go through
``get_for_org_or_404``, which answers 404 (never 403) for another
organization's object, so a caller cannot learn that it exists.

[!!] Bypassing the scope must be visible in review: the only unscoped entry
points are named ``unscoped()`` / ``dangerously_*``.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from django.db import models
from django.http import Http404

M = TypeVar("M", bound=models.Model)


class OrganizationQuerySet(models.QuerySet):
    def for_org(self, organization) -> "OrganizationQuerySet":
        if organization is None:
            raise ValueError("for_org() needs an organization; use unscoped() to read across tenants.")
        return self.filter(organization=organization)

    def unscoped(self) -> "OrganizationQuerySet":
        """Every organization's rows: back office and system jobs only."""
        return self.all()

    # ``organization`` is always loaded: tenancy checks and the encryption of
    # a row's fields need it, and a deferred one would cost a query per row.
    def only(self, *fields) -> "OrganizationQuerySet":
        if fields and "organization" not in fields and "organization_id" not in fields:
            fields = (*fields, "organization")
        return super().only(*fields)

    def defer(self, *fields) -> "OrganizationQuerySet":
        return super().defer(*[f for f in fields if f not in ("organization", "organization_id")])


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

    objects = OrganizationQuerySet.as_manager()

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
