"""What apps tell the encryption kernel, so that the kernel imports no app.

- Tenants: the app that owns organizations registers its model once
  (``register_tenant_model``). The kernel then lists organizations and finds
  one by its handle (``rotate_keys --org SLUG``), and [!!] destroys an
  organization's keys when its row is deleted (crypto-shredding on purge).
- Sealed secrets: an app that keeps values sealed with ``sealed.seal``
  registers where they are (``register_sealed_source``), so that
  ``reencrypt`` reseals them and key retirement counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_delete

from jagcall.kernel.crypto import services

# --- tenants ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tenants:
    model: type
    handle_field: str


_tenants: _Tenants | None = None


def register_tenant_model(model, *, handle_field: str) -> None:
    """Register the tenant model (its primary key is the organization id the keys are bound to)."""
    global _tenants
    _tenants = _Tenants(model=model, handle_field=handle_field)
    post_delete.connect(_tenant_deleted, sender=model, weak=False, dispatch_uid="jagcall-crypto-tenant-deleted")


def _tenant_deleted(sender, instance, **kwargs) -> None:
    # [!!] Runs inside the deleting transaction: the keys go if and only if the row goes.
    services.organization_keys_destroy(organization_id=instance.pk)


def _registered() -> _Tenants:
    if _tenants is None:
        raise ImproperlyConfigured("No app registered its tenant model with jagcall.kernel.crypto.registry.register_tenant_model.")
    return _tenants


def tenant_ids() -> list:
    tenants = _registered()
    return list(tenants.model._base_manager.order_by("pk").values_list("pk", flat=True))


def tenant_id_for(handle: str):
    """The id of the organization with this handle (its slug), or None."""
    tenants = _registered()
    return tenants.model._base_manager.filter(**{tenants.handle_field: handle}).values_list("pk", flat=True).first()


def tenant_labels(ids: Iterable) -> dict[str, str]:
    """organization id (text) -> its handle, for messages; ids without a row (deleted) map to the id itself."""
    ids = [str(i) for i in ids]
    labels = dict.fromkeys(ids)
    if _tenants is not None and ids:
        rows = _tenants.model._base_manager.filter(pk__in=ids).values_list("pk", _tenants.handle_field)
        labels.update({str(pk): handle for pk, handle in rows})
    return {i: label or i for i, label in labels.items()}


# --- sealed secrets -------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedSource:
    name: str
    iterate: Callable[[], Iterable]  # the objects that hold sealed values
    values: Callable[[object], list[str]]  # the sealed values one object holds
    reseal: Callable[[object], None]  # rewrite them bound to their owner under the primary key (in a transaction)


SEALED_SOURCES: dict[str, SealedSource] = {}


def register_sealed_source(name: str, *, iterate, values, reseal) -> None:
    SEALED_SOURCES[name] = SealedSource(name=name, iterate=iterate, values=values, reseal=reseal)
