-- The audit trail, hardened against removal (the database side; `triage audit verify` is the
-- real defence, since a superuser can always disable triggers):
--   * each entry keeps its service's number (`service_seq`, shared/migrations/0006), covered by
--     its chain hash; entries from before this migration have none;
--   * retention writes a signed record of each pruning (`audit_prunings`: the first entry kept
--     and, per service and numbering lane, the highest number removed so far), and may delete
--     only entries such a record covers: a session that sets triage.audit_retention alone can
--     no longer delete;
--   * the chain's head may only move forward, to the last entry of the chain.

ALTER TABLE intake.audit_log ADD COLUMN service_seq bigint;

CREATE TABLE intake.audit_prunings (
    before_seq  bigint      PRIMARY KEY,  -- the first entry kept (a checkpoint names it)
    hash        text        NOT NULL,     -- its hash
    at          timestamptz NOT NULL,
    marks       text        NOT NULL,     -- JSON: per service/lane, the highest number removed
    key_id      text        NOT NULL,
    signature   text        NOT NULL
);
CREATE TRIGGER audit_prunings_append_only BEFORE UPDATE OR DELETE ON intake.audit_prunings
    FOR EACH ROW EXECUTE FUNCTION intake.audit_append_only();
CREATE TRIGGER audit_prunings_no_truncate BEFORE TRUNCATE ON intake.audit_prunings
    FOR EACH STATEMENT EXECUTE FUNCTION intake.audit_append_only();

CREATE OR REPLACE FUNCTION intake.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_log'
       AND current_setting('triage.audit_retention', true) = 'on'
       AND EXISTS (SELECT 1 FROM intake.audit_prunings AS p
                     JOIN intake.audit_checkpoints AS c ON c.seq = p.before_seq
                    WHERE p.before_seq > OLD.seq) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'intake.% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END
$$;

CREATE FUNCTION intake.audit_head_moves_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.seq, NEW.hash) IS NOT DISTINCT FROM (OLD.seq, OLD.hash) THEN
        RETURN NEW;
    END IF;
    IF TG_OP <> 'UPDATE' OR NEW.seq <= OLD.seq
       OR NOT EXISTS (SELECT 1 FROM intake.audit_log WHERE seq = NEW.seq AND hash = NEW.hash)
       OR EXISTS (SELECT 1 FROM intake.audit_log WHERE seq > NEW.seq) THEN
        RAISE EXCEPTION 'intake.audit_head only moves forward, to the chain''s last entry (% refused)',
            TG_OP;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_head_forward BEFORE INSERT OR UPDATE OR DELETE ON intake.audit_head
    FOR EACH ROW EXECUTE FUNCTION intake.audit_head_moves_forward();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON intake.audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION intake.audit_append_only();
