-- Keeps the append-only triggers of audit_events in place (docs/audit.md,
-- "Who can switch the triggers off").
--
-- Run it once in masad's database as a superuser: CREATE EVENT TRIGGER needs
-- one. The function and the event trigger then belong to that superuser, so
-- the schema owner (masad_owner, which owns audit_events and runs the
-- migrations) can neither change nor drop them. Safe to run again. Works
-- before or after `masad migrate`.
--
-- Once audit_events holds an event, it refuses, for every role:
--   - ALTER TABLE on audit_events (DISABLE TRIGGER, ENABLE REPLICA TRIGGER,
--     RENAME, ...); and changing or renaming its triggers;
--   - CREATE OR REPLACE FUNCTION / ALTER FUNCTION of the triggers' function;
-- and always: DROP of audit_events or of its triggers (also by CASCADE).
-- While the log is empty, migrations may still set the table up (0002
-- switches a trigger off and on again to chain older events).
-- A superuser gets past it with `SET session_replication_role = replica`
-- (event triggers do not fire then) or `ALTER EVENT TRIGGER ... DISABLE`.

-- Its own schema, owned by the superuser: the owner of schema public may
-- drop anything in public, and dropping the function with CASCADE would
-- take the event triggers with it.
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS masad_guard;
REVOKE ALL ON SCHEMA masad_guard FROM PUBLIC;

CREATE OR REPLACE FUNCTION masad_guard.audit_guard() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    logs oid[];
    c record;
    nonempty boolean;
    held boolean := false;
BEGIN
    -- the log's table: by name, and any table that carries its triggers
    SELECT array_agg(DISTINCT r) INTO logs FROM (
        SELECT to_regclass('public.audit_events')::oid AS r
        UNION
        SELECT t.tgrelid FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
         WHERE p.proname = 'audit_events_append_only') AS s
     WHERE r IS NOT NULL;

    IF TG_EVENT = 'sql_drop' THEN
        FOR c IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
            IF (c.object_type = 'table' AND c.object_identity = 'public.audit_events')
               OR (c.object_type = 'trigger'
                   AND c.object_identity LIKE '% on public.audit_events') THEN
                RAISE EXCEPTION 'audit_events is append-only: dropping % refused', c.object_identity
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = 'only a superuser can, by disabling the event trigger masad_audit_guard_drop';
            END IF;
        END LOOP;
        RETURN;
    END IF;

    IF logs IS NULL THEN
        RETURN;
    END IF;
    FOR i IN 1 .. array_length(logs, 1) LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', logs[i]::regclass) INTO nonempty;
        held := held OR nonempty;
    END LOOP;
    IF NOT held THEN
        RETURN;  -- nothing recorded yet
    END IF;
    FOR c IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
        IF (c.classid = 'pg_class'::regclass AND c.objid = ANY (logs)
            AND c.command_tag = 'ALTER TABLE')
           OR (c.classid = 'pg_trigger'::regclass
               AND (SELECT tgrelid FROM pg_trigger WHERE oid = c.objid) = ANY (logs))
           OR (c.classid = 'pg_proc'::regclass
               AND c.objid IN (SELECT tgfoid FROM pg_trigger WHERE tgrelid = ANY (logs))) THEN
            RAISE EXCEPTION 'audit_events is append-only: % on % refused', c.command_tag,
                c.object_identity
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'only a superuser can, by disabling the event trigger masad_audit_guard';
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION masad_guard.audit_guard() FROM PUBLIC;

DROP EVENT TRIGGER IF EXISTS masad_audit_guard;
CREATE EVENT TRIGGER masad_audit_guard ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER TRIGGER', 'CREATE TRIGGER', 'CREATE FUNCTION',
                 'ALTER FUNCTION')
    EXECUTE FUNCTION masad_guard.audit_guard();
DROP EVENT TRIGGER IF EXISTS masad_audit_guard_drop;
CREATE EVENT TRIGGER masad_audit_guard_drop ON sql_drop
    EXECUTE FUNCTION masad_guard.audit_guard();
