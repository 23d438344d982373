"""The retention purge becomes a guarded function; the application's role may only call it.

``audit_purge_batch(organization, cutoff, batch_size)`` is the one way audit
events are deleted. It is SECURITY DEFINER, owned by the role that runs the
migrations (the tables' owner), and the application's role gets EXECUTE on
it but no DELETE on the tables (compliance/roles.py grants the rest after
every migrate). [!!] The function, not its caller, decides what may go:

- only a leading run of one chain (lowest seq first) whose every event is
  older than the cutoff, and a checkpoint for it, in one transaction;
- never anything newer than the database's own retention floor
  (``jagcall.audit_retention_days``, a setting of the function itself that
  a caller cannot override, kept equal to AUDIT_RETENTION_DAYS by every
  ``migrate``), measured on the database's clock. A cutoff later than that
  (beyond an hour of clock skew) is refused with an error that says so.

``search_path`` is pinned so a caller cannot slip its own objects in.
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION audit_purge_batch(p_organization_id uuid, p_cutoff timestamptz, p_batch_size integer)
RETURNS TABLE (events_deleted integer, more boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = {schema}, pg_temp
SET jagcall.audit_retention_days = '365'
SET jagcall.audit_purge = 'on'
AS $$
DECLARE
    floor_days integer := current_setting('jagcall.audit_retention_days')::integer;
    allowed timestamptz := clock_timestamp() - make_interval(days => floor_days);
    v_cutoff timestamptz;
    examined integer := 0;
    purged integer := 0;
    first_seq bigint;
    last_seq bigint;
    last_hash varchar(64);
    last_at timestamptz;
    r record;
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 100000 THEN
        RAISE EXCEPTION 'audit purge: batch size must be between 1 and 100000, not %', p_batch_size
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_cutoff IS NULL OR p_cutoff > allowed + interval '1 hour' THEN
        RAISE EXCEPTION 'audit purge refused: cutoff % is newer than the % days of retention the database enforces', p_cutoff, floor_days
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Run manage.py migrate (as the owner role) after changing AUDIT_RETENTION_DAYS.';
    END IF;
    v_cutoff := LEAST(p_cutoff, allowed);
    -- Purges of one chain run one at a time.
    PERFORM pg_advisory_xact_lock(hashtextextended('jagcall.audit.purge:' || coalesce(p_organization_id::text, 'platform'), 0));
    FOR r IN
        SELECT seq, hash, occurred_at FROM compliance_auditevent
        WHERE organization_id = p_organization_id OR (p_organization_id IS NULL AND organization_id IS NULL)
        ORDER BY seq LIMIT p_batch_size
    LOOP
        examined := examined + 1;
        -- [!!] The first event at or after the cutoff ends the run: nothing newer goes.
        EXIT WHEN r.occurred_at >= v_cutoff;
        IF purged = 0 THEN
            first_seq := r.seq;
        END IF;
        purged := purged + 1;
        last_seq := r.seq;
        last_hash := r.hash;
        last_at := r.occurred_at;
    END LOOP;
    IF purged = 0 THEN
        RETURN QUERY SELECT 0, false;
        RETURN;
    END IF;
    -- The checkpoint first, in the same transaction: verification resumes from it.
    INSERT INTO compliance_auditchaincheckpoint (organization_id, seq, hash, occurred_at, events_purged, created_at)
        VALUES (p_organization_id, last_seq, last_hash, last_at, purged, clock_timestamp());
    -- jagcall.audit_purge is 'on' only while this function runs (its SET clause): the trigger lets this DELETE through.
    DELETE FROM compliance_auditevent
        WHERE (organization_id = p_organization_id OR (p_organization_id IS NULL AND organization_id IS NULL))
          AND seq BETWEEN first_seq AND last_seq;
    RETURN QUERY SELECT purged, (purged = examined AND examined = p_batch_size);
END;
$$;
REVOKE ALL ON FUNCTION audit_purge_batch(uuid, timestamptz, integer) FROM PUBLIC;
"""

BACKWARD = "DROP FUNCTION IF EXISTS audit_purge_batch(uuid, timestamptz, integer);"


def create_function(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = connection.ops.quote_name(cursor.fetchone()[0])
        cursor.execute(FUNCTION.replace("{schema}", schema))


def drop_function(apps, schema_editor):
    schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("compliance", "0002_append_only")]

    operations = [migrations.RunPython(create_function, drop_function)]
