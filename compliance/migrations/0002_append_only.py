"""The audit tables are append-only in the database, not just in the code.

- UPDATE of an event is refused, except the one change Django makes when a
  person's account is deleted: ``actor_id`` set to NULL, nothing else
  (the hash does not cover that column; ``actor_key`` keeps who it was).
- DELETE of an event is refused unless the transaction ran
  ``SET LOCAL jagcall.audit_purge = 'on'``: only the retention purge
  (compliance.services.audit_purge_expired) does.
- Checkpoints are never updated or deleted.
- TRUNCATE of either table is refused. Only a test database, whose harness
  empties tables between tests, sets ``jagcall.audit_allow_truncate`` (in
  jagcall/settings_test.py); production never does.

A role that owns the tables can still disable these triggers; the hash chain
is what shows such tampering (docs/security/audit.md).
"""

from django.db import migrations

FORWARD = r"""
CREATE FUNCTION audit_event_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.actor_id IS NOT NULL AND NEW.actor_id IS NULL
           AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit events are append-only: UPDATE refused (event %)', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF current_setting('jagcall.audit_purge', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit events are append-only: DELETE refused (event %); only the retention purge deletes', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION audit_checkpoint_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit checkpoints are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE FUNCTION audit_truncate_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('jagcall.audit_allow_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit tables are append-only: TRUNCATE of % refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON compliance_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_guard();
CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON compliance_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_truncate_guard();
CREATE TRIGGER audit_checkpoint_append_only
    BEFORE UPDATE OR DELETE ON compliance_auditchaincheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_guard();
CREATE TRIGGER audit_checkpoint_no_truncate
    BEFORE TRUNCATE ON compliance_auditchaincheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_truncate_guard();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON compliance_auditchaincheckpoint;
DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON compliance_auditchaincheckpoint;
DROP TRIGGER IF EXISTS audit_event_no_truncate ON compliance_auditevent;
DROP TRIGGER IF EXISTS audit_event_append_only ON compliance_auditevent;
DROP FUNCTION IF EXISTS audit_truncate_guard();
DROP FUNCTION IF EXISTS audit_checkpoint_guard();
DROP FUNCTION IF EXISTS audit_event_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
