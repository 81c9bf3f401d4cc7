-- The audit trail: who read or changed what, when, from where. Append-only (triggers refuse
-- UPDATE, DELETE and TRUNCATE) and hash-chained: each entry's hash covers the previous entry's
-- hash, its own seq and its canonical form (shared/audit.py), so `triage audit verify` finds
-- an edited, deleted or reordered entry. Ids and actions only, never a name, number or note.

CREATE TABLE intake.audit_log (
    seq             bigint      PRIMARY KEY,
    entry_id        uuid        NOT NULL UNIQUE,
    at              timestamptz NOT NULL,
    service         text        NOT NULL,
    actor           text        NOT NULL,
    role            text        NOT NULL,
    credential_id   text        NOT NULL,
    action          text        NOT NULL,
    resource        text        NOT NULL,
    outcome         text        NOT NULL,
    client          text        NOT NULL,
    correlation_id  text        NOT NULL,
    reason          text,
    prev_hash       text        NOT NULL,
    hash            text        NOT NULL
);
CREATE INDEX audit_log_resource ON intake.audit_log (resource, seq);
CREATE INDEX audit_log_actor ON intake.audit_log (actor, seq);
CREATE INDEX audit_log_at ON intake.audit_log (at);

-- The chain's head: one row, locked by each append, so appends are serialised across replicas.
CREATE TABLE intake.audit_head (
    one   boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq   bigint  NOT NULL,
    hash  text    NOT NULL
);
INSERT INTO intake.audit_head (seq, hash) VALUES (0, repeat('0', 64));

CREATE FUNCTION intake.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'intake.audit_log is append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON intake.audit_log
    FOR EACH ROW EXECUTE FUNCTION intake.audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON intake.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION intake.audit_append_only();
