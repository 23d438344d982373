"""Acting on the audit log as a superuser would, from inside a test.

The tests connect as the application's role, which cannot change audit rows or
disable their triggers. What a superuser (or the tables' owner) could do is
done through ``jagcall_test_as_superuser``, a function only the test database
has (tests/postgres/base.py), so it runs inside the test's own transaction and
sees its uncommitted rows, and is rolled back with it.
"""

from __future__ import annotations

from django.db import connection
from psycopg import sql

from compliance.models import AuditChainCheckpoint, AuditEvent

EVENTS = AuditEvent._meta.db_table
CHECKPOINTS = AuditChainCheckpoint._meta.db_table


def as_superuser(statement: str, params=()) -> None:
    """Run one SQL statement (``%s`` placeholders) with a superuser's rights, in the current transaction."""
    template = statement.replace("{", "{{").replace("}", "}}").replace("%s", "{}")
    connection.ensure_connection()
    text = sql.SQL(template).format(*[sql.Literal(p) for p in params]).as_string(connection.connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT jagcall_test_as_superuser(%s)", [text])


def tamper(statement: str, params=()) -> None:
    """What someone with the tables' ownership could do: switch the guard off, edit, switch it on."""
    as_superuser("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred FK checks pending before ALTER TABLE
    as_superuser(f"ALTER TABLE {EVENTS} DISABLE TRIGGER audit_event_append_only")
    as_superuser(statement, params)
    as_superuser(f"ALTER TABLE {EVENTS} ENABLE TRIGGER audit_event_append_only")
    from compliance.services.audit import _HeadCache

    _HeadCache.forget(connection.alias)  # the head this transaction wrote may have been edited


def set_database_retention(days: int) -> None:
    """The retention floor the purge function enforces (migrate sets it from AUDIT_RETENTION_DAYS)."""
    as_superuser(f"ALTER FUNCTION audit_purge_batch(uuid, timestamptz, integer) SET jagcall.audit_retention_days = '{int(days)}'")
