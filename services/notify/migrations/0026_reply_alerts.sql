-- A reply to a Caring Contact with risk words (or one intake could not classify) opens an alert
-- of its own (intake's `follow_up.reply_risk`), keyed by the reply: a screening keeps its one
-- alert from its assessment, and may have more, one per such reply, later.
ALTER TABLE notify.alerts ADD COLUMN reply_id uuid UNIQUE;
ALTER TABLE notify.alerts DROP CONSTRAINT alerts_screening_id_key;
CREATE UNIQUE INDEX alerts_one_per_screening ON notify.alerts (screening_id)
    WHERE reply_id IS NULL;
