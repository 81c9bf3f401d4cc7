-- The deliverers (every notify replica) sleep until their next page or acknowledgement deadline.
-- A page delivered sets its alert's deadline, minutes away, and that woke every deliverer for a
-- pass (a claim and a read) that found nothing due. The notice of a deadline set now says when
-- it runs out, in seconds since the epoch, and a deliverer asleep until no later than that is
-- not woken (shared/wakeup.py). A deadline cleared or moved later sends nothing: a deliverer
-- that still counts on it wakes then, finds nothing overdue and reads the next one afresh.
-- (A trigger with a transition table cannot name columns, so it runs on every update of the
-- alerts and looks at what the deadline query counts: an open alert's escalate_at.)
CREATE FUNCTION notify.alerts_deadline_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    due numeric;
BEGIN
    SELECT extract(epoch FROM min(escalate_at)) INTO due
      FROM changed
     WHERE escalate_at IS NOT NULL AND status IN ('delivered', 'escalated');
    IF due IS NOT NULL THEN
        PERFORM pg_notify('notify_deliveries', due::text);
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER alerts_escalate_at_changed ON notify.alerts;
CREATE TRIGGER alerts_deadline_set AFTER UPDATE ON notify.alerts
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION notify.alerts_deadline_notify();
