"""Model instances from plain SQL, for the few reads and writes on the hot path of every text and call.

Building a query through the ORM costs more CPU than PostgreSQL spends answering a read by a unique
index. The webhooks' reads therefore write their SQL once, from the models' own tables and columns
(``columns``), and turn each row back into instances (``instance``). Those instances are the same
as the ORM's: the fields' database converters are applied (an encrypted field's ciphertext, JSON),
and the instance is marked as loaded from the database, so ``save(update_fields=...)`` updates it.

``save`` writes several rows in one statement: each round trip to the database is also a moment the
request thread gives up the interpreter, and under load it waits its turn to get it back.

[!!] Plain SQL does not pass the tenancy manager. Each caller names its organization in the WHERE,
or says why the read crosses organizations (a signed webhook names a number that is unique).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections
from django.db.models import Model


class _Unread:
    """``UNREAD``: what a caller passes for a row it did not read ahead (the callee reads it); ``None`` would
    say it read and found nothing."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNREAD"

    def __bool__(self) -> bool:
        raise TypeError("UNREAD is neither true nor false: compare it with `is UNREAD`")


UNREAD = _Unread()


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


def _values(obj: Model, fields, connection, *, add: bool) -> list:
    # What the ORM's own INSERT and UPDATE send: pre_save (timestamps, an encrypted field's sealing, a blind
    # index's value), then the field's database form.
    return [field.get_db_prep_save(field.pre_save(obj, add), connection) for field in fields]


def _update_sql(obj: Model, names: Sequence[str], connection) -> tuple[str, list]:
    meta = obj._meta
    fields = [meta.get_field(name) for name in names]
    if obj.pk is None or not fields or any(field.primary_key or not field.concrete for field in fields):
        raise ValueError(f"{meta.label}: update a saved row's own columns, not {list(names)!r}")
    assignments = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in fields)
    sql = (
        f"UPDATE {connection.ops.quote_name(meta.db_table)} SET {assignments} "
        f"WHERE {connection.ops.quote_name(meta.pk.column)} = %s"
    )
    return sql, [*_values(obj, fields, connection, add=False), meta.pk.get_db_prep_save(obj.pk, connection)]


def _insert_sql(obj: Model, connection) -> tuple[str, list]:
    meta = obj._meta
    if obj.pk is None:
        raise ValueError(f"{meta.label}: set the primary key before writing it with rows.save")
    fields = meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) VALUES ({placeholders})"
    return sql, _values(obj, fields, connection, add=True)


def _mark_saved(objs, using: str) -> None:
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using


def save(*writes: Model | tuple[Model, Sequence[str]], using: str = "default") -> None:
    """Write rows in one statement: each of ``writes`` is a new instance (inserted, its primary key set
    beforehand) or ``(instance, ["field", ...])`` (those fields updated by primary key).

    The rows may be of different models; they are written as one statement of data-modifying CTEs, so
    all of them or none are written. The foreign keys Django creates are checked at commit, so a row may
    point to another of the same statement. Instances are then marked as saved, as ``save()`` marks them.
    No signals are sent: use it only for models without receivers.
    """
    if not writes:
        return
    connection = connections[using]
    statements, params = [], []
    for write in writes:
        sql, values = _update_sql(*write, connection) if isinstance(write, tuple) else _insert_sql(write, connection)
        statements.append(sql)
        params += values
    *first, last = statements
    sql = last
    if first:
        sql = "WITH " + ", ".join(f"w{i} AS ({statement})" for i, statement in enumerate(first)) + " " + last
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    _mark_saved([write[0] if isinstance(write, tuple) else write for write in writes], using)


def save_new(new: Model, *updates: tuple[Model, Sequence[str]], using: str = "default") -> bool:
    """Insert ``new`` and make ``updates`` (``(instance, ["field", ...])``) in one statement, unless ``new``
    would break one of its table's unique constraints (its row is there already): then nothing at all is
    written, and False is returned.

    [!!] For a write that may meet its own earlier copy (a text redelivered): the INSERT is ``ON CONFLICT
    DO NOTHING`` and each update happens only if it inserted. A savepoint around a plain INSERT would do the
    same in three round trips instead of one. A concurrent insert of the same row is waited for, as a
    unique index waits, and then counts as there already.
    """
    connection = connections[using]
    insert, params = _insert_sql(new, connection)
    statements = [f"{insert} ON CONFLICT DO NOTHING RETURNING 1"]
    for obj, names in updates:
        sql, values = _update_sql(obj, names, connection)
        statements.append(f"{sql} AND EXISTS (SELECT 1 FROM w0)")
        params += values
    sql = "WITH " + ", ".join(f"w{i} AS ({statement})" for i, statement in enumerate(statements))
    sql += " SELECT count(*) FROM w0"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted = cursor.fetchone()[0] == 1
    if inserted:
        _mark_saved([new, *(obj for obj, _names in updates)], using)
    return inserted
