-- Retention: entries older than AUDIT_RETENTION_DAYS are removed as a prefix of the chain, up to
-- an entry a signed checkpoint names, inside a transaction that sets triage.audit_retention.
-- Nothing else may delete; and a prefix cut anywhere but at a checkpoint fails verification,
-- since the first kept entry must follow the hash that checkpoint signed.
CREATE OR REPLACE FUNCTION intake.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_log'
       AND current_setting('triage.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'intake.% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END
$$;
