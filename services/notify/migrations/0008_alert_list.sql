-- GET /v1/alerts (services/notify/alerts/queries.py), polled every few seconds by the console.
-- Alerts are kept for ever, so its statements must not read the whole table:
-- * the urgency order itself, the expression exactly as alerts/queries.py writes it (the planner
--   uses an expression index only for an identical expression): a list reads `limit` entries in order
--   and sorts nothing. The open alerts are served by alerts_open (0006).
-- * changed_at, for "what was created or changed since my last poll".
-- Cost on the paging path: each change of an alert adds an entry to each (changed_at moves every
-- time); nearly every change already moved an indexed column (status, in alerts_open's
-- predicate, or escalate_at), so few HOT updates are lost. Built without CONCURRENTLY
-- (migrations run in a transaction): alert writes wait while the builds read the table.
CREATE INDEX alerts_urgency ON notify.alerts (
    (CASE risk_level WHEN 'imminent' THEN 0 WHEN 'high' THEN 1 WHEN 'moderate' THEN 2
                     WHEN 'low' THEN 3 ELSE 4 END),
    escalation_level DESC, created_at, id
);
CREATE INDEX alerts_changed_at ON notify.alerts (changed_at);
