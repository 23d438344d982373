"""Model instances from plain SQL, for the few reads on the hot path of every text and call.

Building a query through the ORM costs more CPU than PostgreSQL spends answering a read by a unique
index. The webhooks' reads therefore write their SQL once, from the models' own tables and columns
(``columns``), and turn each row back into instances (``instance``). Those instances are the same
as the ORM's: the fields' database converters are applied (an encrypted field's ciphertext, JSON),
and the instance is marked as loaded from the database, so ``save(update_fields=...)`` updates it.

[!!] Plain SQL does not pass the tenancy manager. Each caller names its organization in the WHERE,
or says why the read crosses organizations (a signed webhook names a number that is unique).
"""

from __future__ import annotations

from django.db import connections
from django.db.models import Model


def columns(model: type[Model], alias: str) -> str:
    """``alias.column, ...``: every concrete field of ``model``, in the order ``instance`` reads them."""
    return ", ".join(f"{alias}.{field.column}" for field in model._meta.concrete_fields)


def width(model: type[Model]) -> int:
    """How many values ``columns(model, ...)`` selects."""
    return len(model._meta.concrete_fields)


def equals_any(column: str, values: list) -> tuple[str, object]:
    """``(sql, parameter)`` matching ``column`` against ``values`` (a blind index's candidates): ``= %s`` for
    the usual single value, ``= ANY(%s)`` while keys rotate. A list costs the driver more to send than a string.
    """
    if len(values) == 1:
        return f"{column} = %s", values[0]
    return f"{column} = ANY(%s)", list(values)


def instance(model: type[Model], values, *, using: str = "default") -> Model:
    """``model`` from the values of ``columns(model, ...)``, converted as the ORM converts them."""
    connection = connections[using]
    fields = model._meta.concrete_fields
    converted = []
    for field, value in zip(fields, values, strict=True):
        for converter in field.get_db_converters(connection):
            value = converter(value, field, connection)
        converted.append(value)
    return model.from_db(using, [field.attname for field in fields], converted)
