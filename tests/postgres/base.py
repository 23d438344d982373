"""The test suite's database engine: Django's PostgreSQL backend, with the test
database made and emptied by the owner role.

[!!] Tests connect as the application's restricted role, as production does
(settings: "default" is DATABASE_URL's role, "owner" the tables' owner; see
compliance/roles.py). That role cannot create the test database, run the
migrations, or TRUNCATE the audit tables, so here, and only in tests:

- the test database is created, migrated and dropped through the "owner"
  alias (``DatabaseCreation``);
- the owner then installs two functions that only the test database has,
  callable by the application's role: ``jagcall_test_flush(tables, ...)``, which
  empties the tables between transactional tests (Django's flush is a
  TRUNCATE of every table), and ``jagcall_test_as_superuser(statement)``,
  which the tests use to tamper with the audit log as a superuser would,
  inside the test's own transaction (compliance/tests/conftest.py:
  ``as_superuser``). Production databases never have them: they are made
  here, not by a migration.

Without a separate owner alias (DATABASE_URL set without DATABASE_OWNER_URL)
this is Django's backend unchanged.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connections
from django.db.backends.postgresql import base, creation, operations

HARNESS_SQL = r"""
CREATE OR REPLACE FUNCTION jagcall_test_flush(tables text[], restart boolean, cascade_ boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET jagcall.audit_allow_truncate = 'on' AS $$
BEGIN
    IF coalesce(array_length(tables, 1), 0) = 0 THEN
        RETURN;
    END IF;
    EXECUTE 'TRUNCATE ' || (SELECT string_agg(quote_ident(t), ', ') FROM unnest(tables) AS t)
        || CASE WHEN restart THEN ' RESTART IDENTITY' ELSE '' END
        || CASE WHEN cascade_ THEN ' CASCADE' ELSE '' END;
END;
$$;
CREATE OR REPLACE FUNCTION jagcall_test_as_superuser(statement text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    EXECUTE statement;
END;
$$;
REVOKE ALL ON FUNCTION jagcall_test_flush(text[], boolean, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION jagcall_test_as_superuser(text) FROM PUBLIC;
"""


def _owner_of(connection):
    """The owner alias's connection when ``connection`` is the application's and they differ; else None."""
    alias = getattr(settings, "MIGRATION_DATABASE", connection.alias)
    if alias == connection.alias or alias not in settings.DATABASES:
        return None
    return connections[alias]


class DatabaseCreation(creation.DatabaseCreation):
    def create_test_db(self, verbosity=1, autoclobber=False, serialize=True, keepdb=False):
        owner = _owner_of(self.connection)
        if owner is None:
            return super().create_test_db(verbosity, autoclobber, serialize, keepdb)
        # The owner creates and migrates it (the grants follow the migrations: compliance/roles.py).
        name = owner.creation.create_test_db(verbosity, autoclobber, serialize=False, keepdb=keepdb)
        role = owner.ops.quote_name(self.connection.settings_dict["USER"])
        with owner.cursor() as cursor:
            cursor.execute(HARNESS_SQL)
            cursor.execute(f"GRANT EXECUTE ON FUNCTION jagcall_test_flush(text[], boolean, boolean) TO {role}")
            cursor.execute(f"GRANT EXECUTE ON FUNCTION jagcall_test_as_superuser(text) TO {role}")
        owner.close()
        self.connection.close()
        settings.DATABASES[self.connection.alias]["NAME"] = name
        self.connection.settings_dict["NAME"] = name
        if serialize:
            self.connection._test_serialized_contents = self.serialize_db_to_string()
        self.connection.ensure_connection()
        return name

    def destroy_test_db(self, old_database_name=None, verbosity=1, keepdb=False, suffix=None):
        owner = _owner_of(self.connection)
        if owner is None:
            return super().destroy_test_db(old_database_name, verbosity, keepdb, suffix)
        self.connection.close()
        owner.creation.destroy_test_db(old_database_name, verbosity, keepdb, suffix)
        if old_database_name is not None:
            settings.DATABASES[self.connection.alias]["NAME"] = old_database_name
            self.connection.settings_dict["NAME"] = old_database_name


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if not tables or _owner_of(self.connection) is None:
            return super().sql_flush(style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        names = ", ".join("'" + table.replace("'", "''") + "'" for table in tables)
        restart = "true" if reset_sequences else "false"
        cascade = "true" if allow_cascade else "false"
        return [f"SELECT jagcall_test_flush(ARRAY[{names}]::text[], {restart}, {cascade});"]


class DatabaseWrapper(base.DatabaseWrapper):
    creation_class = DatabaseCreation
    ops_class = DatabaseOperations
