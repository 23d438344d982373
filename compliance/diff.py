"""Model change sets, computed by django-auditlog's diff, recorded in our table.

We use one function of django-auditlog, ``auditlog.diff.model_instance_diff``
(field-by-field comparison of two instances, FK ids, JSON values, naive UTC
datetimes). The package's own recording (signals writing its mutable
``LogEntry`` rows) is never active:

[!!] ``silence_auditlog()`` runs once at start-up and swaps the registry that
``model_instance_diff`` consults for one built with every signal off. A
model registered there (which the diff needs, to read its field options)
gets no receiver at all, so nothing, ours or a third party's call to
``auditlog.register``, can make auditlog write a row. Our append-only,
hash-chained ``audit.AuditEvent`` is the record.
"""

from __future__ import annotations

import copy
import threading

from django.db import models

from compliance.chain import ENCRYPTED, REDACTED, is_sensitive, json_safe

_lock = threading.Lock()


def silence_auditlog() -> None:
    from auditlog import registry

    if getattr(registry.auditlog, "_jagcall_silent", False):
        return
    silent = registry.AuditlogModelRegistry(create=False, update=False, delete=False, access=False, m2m=False)
    silent._jagcall_silent = True
    for model in registry.auditlog.get_models():  # none by default; unhook any that were
        registry.auditlog.unregister(model)
    registry.auditlog = silent


def _registry():
    from auditlog import registry

    if not getattr(registry.auditlog, "_jagcall_silent", False):  # pragma: no cover - AppConfig.ready did it
        silence_auditlog()
    return registry.auditlog


def _is_encrypted(field) -> bool:
    from jagcall.kernel.crypto.fields import EncryptedFieldMixin

    return isinstance(field, EncryptedFieldMixin) or type(field).__name__.startswith("Encrypted")


def snapshot(instance: models.Model | None) -> models.Model | None:
    """A copy of ``instance`` as it is now, to diff against after changing it.

    Copies the loaded values as they are: encrypted fields stay ciphertext
    (nothing is decrypted to take a snapshot).
    """
    if instance is None:
        return None
    clone = copy.copy(instance)
    clone.__dict__ = dict(instance.__dict__)
    clone._state = copy.copy(instance._state)
    return clone


def _raw(instance, field):
    if instance is None:
        return None
    return instance.__dict__.get(field.attname)


def model_changes(before: models.Model | None, after: models.Model | None, fields=None) -> dict:
    """{field: {"before", "after"}} for the concrete fields that differ, redacted.

    [!!] Encrypted fields and fields with a sensitive name are compared
    without being decrypted (their stored or assigned values) and recorded
    as changed with their values withheld; model_instance_diff never sees them.
    """
    from auditlog.diff import model_instance_diff

    sample = after if after is not None else before
    if sample is None:
        return {}
    model = type(sample)
    registry = _registry()
    if not registry.contains(model):
        with _lock:
            if not registry.contains(model):
                registry.register(model)  # the silent registry: no signal is connected
    concrete = [f for f in model._meta.concrete_fields if not f.many_to_many]
    if fields is not None:
        wanted = set(fields)
        concrete = [f for f in concrete if f.name in wanted or f.attname in wanted]
    plain, withheld = [], []
    for field in concrete:
        (withheld if _is_encrypted(field) or is_sensitive(field.name) else plain).append(field)

    changes: dict = {}
    if plain:
        diff = model_instance_diff(before, after, fields_to_check={f.name for f in plain}, use_json_for_changes=True) or {}
        for name, (old, new) in diff.items():
            changes[name] = {"before": json_safe(old), "after": json_safe(new)}
    for field in withheld:
        old, new = _raw(before, field), _raw(after, field)
        if old is None and new is None:
            continue
        if old is not None and new is not None and type(old) is type(new) and old == new:
            continue  # the same ciphertext (or the same value) on both sides: unchanged
        marker = ENCRYPTED if _is_encrypted(field) else REDACTED
        changes[field.name] = {
            "before": None if old is None else marker,
            "after": None if new is None else marker,
        }
    return changes


def dict_changes(before: dict | None, after: dict | None, fields=None) -> dict:
    before, after = before or {}, after or {}
    names = list(fields) if fields is not None else sorted(set(before) | set(after))
    changes = {}
    for name in names:
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if is_sensitive(name):
            changes[name] = {"before": None if old is None else REDACTED, "after": None if new is None else REDACTED}
        else:
            changes[name] = {"before": json_safe(old), "after": json_safe(new)}
    return changes
