"""What the application's database role may do: granted after every migrate, checked at start.

Two roles (docs/security/audit.md, "Who can change the log"):

- the owner (DATABASE_OWNER_URL, alias "owner"): owns every table, runs the
  migrations and nothing else;
- the application (DATABASE_URL, alias "default"): web, worker and beat. A
  separate LOGIN role, owner of nothing and member of no role that owns
  anything, so it can never take the owner's rights (SET ROLE / RESET ROLE).

[!!] ``grant_app_role`` runs as the owner at the end of every ``migrate``
(post_migrate), in one transaction, so the application never holds more
than this even for a moment:

- every table: SELECT, INSERT, UPDATE, DELETE (sequences: USAGE, SELECT,
  UPDATE); no TRUNCATE, no ALTER, no CREATE in the schema;
- audit events: SELECT, INSERT, and UPDATE of ``actor_id`` alone (Django sets
  it to NULL when a person's account is deleted; the trigger refuses any
  other value). No UPDATE of anything else, no DELETE, no TRUNCATE, and no
  ALTER TABLE (only an owner may, e.g. to disable a trigger);
- audit checkpoints: SELECT only;
- ``audit_purge_batch`` (migration 0003): EXECUTE, the one way events are
  deleted; its retention floor is set to AUDIT_RETENTION_DAYS here.

``check_app_role`` (a database check, run by ``manage.py check --database
default`` before web, worker and beat start) refuses an application role that
owns the audit tables, is a superuser or could change audit rows.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core import checks
from django.db import connections, transaction

logger = logging.getLogger("jagcall.audit")

EVENTS = "compliance_auditevent"
CHECKPOINTS = "compliance_auditchaincheckpoint"
PURGE_FUNCTION = "audit_purge_batch(uuid, timestamptz, integer)"


def _audit_tables_exist(cursor) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regprocedure(%s) IS NOT NULL", [EVENTS, PURGE_FUNCTION])
    return cursor.fetchone()[0]


def grant_app_role(*, using: str) -> bool:
    """Grant the application's role its rights (and no more) on the database behind ``using``.

    Does nothing when ``using`` is the application's own connection (a
    single-role set-up, or a test flush): the application cannot grant, and
    must not be the owner; ``check_app_role`` says so. True when it granted.
    """
    app_role = settings.DATABASE_APP_ROLE
    connection = connections[using]
    if using != settings.MIGRATION_DATABASE or using == "default" or not app_role:
        return False
    quote = connection.ops.quote_name
    role = quote(app_role)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if not _audit_tables_exist(cursor):
            return False
        cursor.execute("SELECT current_schema()")
        schema = quote(cursor.fetchone()[0])
        retention_days = int(settings.AUDIT_RETENTION_DAYS)
        for statement in (
            f"GRANT USAGE ON SCHEMA {schema} TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
            f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
            # [!!] The audit tables: append, read, and the one column Django nulls.
            f"REVOKE ALL ON {EVENTS}, {CHECKPOINTS} FROM {role}",
            f"GRANT SELECT, INSERT ON {EVENTS} TO {role}",
            f"GRANT UPDATE (actor_id) ON {EVENTS} TO {role}",
            f"GRANT SELECT ON {CHECKPOINTS} TO {role}",
            f"REVOKE ALL ON FUNCTION {PURGE_FUNCTION} FROM PUBLIC",
            f"GRANT EXECUTE ON FUNCTION {PURGE_FUNCTION} TO {role}",
            # The database's own retention floor (the function's setting; a caller cannot change it).
            f"ALTER FUNCTION {PURGE_FUNCTION} SET jagcall.audit_retention_days = '{retention_days}'",
        ):
            cursor.execute(statement)
    logger.info("database role %s granted its rights (audit: append and read only)", app_role)
    return True


def on_post_migrate(sender, using=None, **kwargs) -> None:
    # Sent after every app's migrations have run, so every table exists by now.
    grant_app_role(using=using or "default")


# --- the start-up check ---------------------------------------------------------------


def app_role_problems(*, using: str = "default") -> list[str]:
    """What the application's role could do to the audit log that it must not; empty when nothing."""
    with connections[using].cursor() as cursor:
        if not _audit_tables_exist(cursor):
            return []  # not migrated yet
        cursor.execute(
            """
            SELECT current_user,
                   r.rolsuper,
                   pg_has_role(current_user, c.relowner, 'USAGE'),
                   has_table_privilege(current_user, %(events)s, 'UPDATE'),
                   has_table_privilege(current_user, %(events)s, 'DELETE'),
                   has_table_privilege(current_user, %(events)s, 'TRUNCATE'),
                   has_table_privilege(current_user, %(checkpoints)s, 'UPDATE')
                     OR has_table_privilege(current_user, %(checkpoints)s, 'DELETE')
                     OR has_table_privilege(current_user, %(checkpoints)s, 'TRUNCATE')
                     OR has_table_privilege(current_user, %(checkpoints)s, 'INSERT')
            FROM pg_roles r, pg_class c
            WHERE r.rolname = current_user AND c.oid = %(events)s::regclass
            """,
            {"events": EVENTS, "checkpoints": CHECKPOINTS},
        )
        user, superuser, owner, update, delete, truncate, checkpoints = cursor.fetchone()
    problems = []
    if superuser:
        problems.append(f"the role {user} is a superuser")
    if owner:
        problems.append(f"the role {user} owns the audit tables (or is a member of their owner) and could disable their triggers")
    for right, held in (("UPDATE", update), ("DELETE", delete), ("TRUNCATE", truncate)):
        if held:
            problems.append(f"the role {user} may {right} audit events")
    if checkpoints:
        problems.append(f"the role {user} may write audit checkpoints")
    return problems


def check_app_role(app_configs=None, databases=None, **kwargs) -> list:
    if not databases or "default" not in databases:
        return []
    problems = app_role_problems(using="default")
    if not problems:
        return []
    level = checks.Warning if settings.DEBUG else checks.Error
    return [
        level(
            "The application connects to PostgreSQL with a role that can change the audit log: "
            + "; ".join(problems) + ".",
            hint=(
                "Connect web, worker and beat as a restricted role (DATABASE_URL) and run migrations as the owner "
                "(DATABASE_OWNER_URL); see docs/deploy.md, Database roles."
            ),
            id="compliance.E001",
        )
    ]
