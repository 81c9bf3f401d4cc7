-- Signed checkpoints of the audit chain: every minute, the head (seq, hash) signed with the
-- Ed25519 key kept outside the database (AUDIT_SIGNING_KEY). Verify checks each signature and
-- that the chain still holds that hash at that seq, so a cut tail or a rewritten head is caught.
CREATE TABLE intake.audit_checkpoints (
    seq        bigint      PRIMARY KEY,
    hash       text        NOT NULL,
    at         timestamptz NOT NULL,
    key_id     text        NOT NULL,
    signature  text        NOT NULL
);
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON intake.audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION intake.audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON intake.audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION intake.audit_append_only();
