"""The deliveries' SQL, sent straight to asyncpg: every page passes here."""

from __future__ import annotations

from services.notify.models import outbox
from services.notify.sql import Statement
from shared.outbox import add_event_after

#: Claims up to $2 due pages: first the pages of a round 0 (an alert's first page, an
#: escalation's, and their retries: pages nobody has had yet), oldest first, then repeats of
#: unanswered pages, at most $3 of them. A backlog of alerts nobody acknowledges (paged again
#: every few minutes) must not hold up a new alert's first page: it would wait behind every
#: repeat due before it, and for a slot, when those repeats go to addresses that answer slowly.
CLAIM = """
    WITH first AS (
        SELECT id FROM notify.deliveries
         WHERE status = 'pending' AND repeat_round = 0 AND due_at <= now()
           AND (lease_until IS NULL OR lease_until < now())
         ORDER BY due_at
         LIMIT $2
           FOR UPDATE SKIP LOCKED
    ), again AS (
        SELECT id FROM notify.deliveries
         WHERE status = 'pending' AND repeat_round > 0 AND due_at <= now()
           AND (lease_until IS NULL OR lease_until < now())
         ORDER BY due_at
         LIMIT least($3, $2 - (SELECT count(*) FROM first))
           FOR UPDATE SKIP LOCKED
    )
    UPDATE notify.deliveries AS d
       SET lease_until = now() + make_interval(secs => $1), attempts = d.attempts + 1
      FROM notify.alerts AS a
     WHERE a.id = d.alert_id
       AND d.id IN (SELECT id FROM first UNION ALL SELECT id FROM again)
    RETURNING d.id, d.attempts, d.escalation_level, d.repeat_round, d.channel, d.target,
              d.provider_sid, a.id AS alert_id, a.screening_id, a.risk_level, a.urgency,
              a.reasons, a.created_at, a.traceparent
"""
#: First wait for any acknowledgement of the alert in progress (it locks the alert FOR UPDATE and
#: only then reads the clock), then read the delivery afresh, in a statement of its own: after a
#: lock wait a single statement would still see the delivery as its snapshot had it (READ
#: COMMITTED re-reads only the locked rows). So an acknowledgement is either committed before the
#: read, and the page is not sent, or timed after this page's attempt began.
WAIT_FOR_ACK = """
    SELECT 1 FROM notify.alerts
     WHERE id = (SELECT alert_id FROM notify.deliveries WHERE id = $1) FOR KEY SHARE
"""
STILL_PENDING = "SELECT status = 'pending' FROM notify.deliveries WHERE id = $1"
#: When the next page is due (a leased page when its lease runs out: its sender may have died),
#: and when the next acknowledgement deadline runs out.
NEXT_DUE = """
    SELECT (SELECT min(greatest(due_at, coalesce(lease_until, due_at)))
              FROM notify.deliveries WHERE status = 'pending' AND repeat_round = 0) AS page,
           (SELECT min(greatest(due_at, coalesce(lease_until, due_at)))
              FROM notify.deliveries WHERE status = 'pending' AND repeat_round > 0) AS repeat,
           (SELECT min(escalate_at) FROM notify.alerts
             WHERE escalate_at IS NOT NULL AND status IN ('delivered', 'escalated')) AS escalation
"""

# Planning pages and recording their attempts (services/notify/alerts/escalation.py,
# delivery/service.py).

#: The pages of one step of an alert, one per target (the arrays: one element per page).
ADD_DELIVERIES = Statement("""
    INSERT INTO notify.deliveries (id, alert_id, escalation_level, repeat_round, status, attempts,
                                   contact_method_id, channel, target, due_at, created_at)
    SELECT id, :alert_id, :escalation_level, :repeat_round, 'pending', 0, contact_method_id,
           channel, target, due_at, created_at
      FROM unnest(:ids::uuid[], :contact_method_ids::uuid[], :channels::text[],
                  :targets::text[], :due_ats::timestamptz[], :created_ats::timestamptz[])
           AS d (id, contact_method_id, channel, target, due_at, created_at)
    ON CONFLICT DO NOTHING
""")
LOCK_DELIVERY = Statement("""
    SELECT status, escalation_level, repeat_round, attempts, channel, contact_method_id
      FROM notify.deliveries
     WHERE id = :id AND alert_id = :alert_id FOR UPDATE
""")
#: A provider accepted the page's text or call: wait for its status until :due_at (a status
#: callback that came first, while the send was on the wire, is kept).
DELIVERY_ACCEPTED = Statement("""
    UPDATE notify.deliveries
       SET provider_sid = :provider_sid, provider_status = coalesce(provider_status, 'queued'),
           due_at = :due_at, lease_until = NULL
     WHERE id = :id
""")
#: A text to one of the clinician's phones failed for good: their next methods of the same step
#: (a call, an email, each waiting its delay) are due now, not after their delays.
NEXT_METHODS_NOW = Statement("""
    UPDATE notify.deliveries AS d SET due_at = :now
      FROM notify.contact_methods AS m
     WHERE d.alert_id = :alert_id AND d.escalation_level = :escalation_level
       AND d.repeat_round = :repeat_round AND d.status = 'pending' AND d.due_at > :now
       AND d.provider_sid IS NULL AND m.id = d.contact_method_id
       AND m.clinician_id = (SELECT clinician_id FROM notify.contact_methods WHERE id = :method_id)
""")
OPT_OUT = Statement("""
    UPDATE notify.contact_methods SET opted_out_at = :now
     WHERE id = :id AND opted_out_at IS NULL
""")
ADD_ATTEMPT = Statement("""
    INSERT INTO notify.delivery_attempts (delivery_id, attempt, target, started_at, finished_at,
                                          http_status, outcome, error, worker)
    VALUES (:delivery_id, :attempt, :target, :started_at, :finished_at, :http_status, :outcome,
            :error, :worker)
""")
DELIVERY_DONE = Statement("""
    UPDATE notify.deliveries SET status = :status, finished_at = :finished_at, lease_until = NULL
     WHERE id = :id
""")
DELIVERY_RETRY = Statement(
    "UPDATE notify.deliveries SET due_at = :due_at, lease_until = NULL WHERE id = :id"
)
#: The page delivered, its alert moved on and the alert.delivered event queued, in one statement.
DELIVERED = f"""
    WITH delivery AS (
        UPDATE notify.deliveries SET status = 'delivered', finished_at = $2, lease_until = NULL
         WHERE id = $1
    ), alert AS (
        UPDATE notify.alerts SET status = $4, first_delivered_at = $5, escalate_at = $6,
                                 changed_at = $2, version = $7
         WHERE id = $3
        RETURNING id
    )
    {add_event_after(outbox, "alert", first_param=8)}
"""
