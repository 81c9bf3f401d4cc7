"""The phones' SQL, straight to asyncpg (services/notify/sql.py `Statement`)."""

from __future__ import annotations

from services.notify.sql import Statement

#: The alert's code, if it has one, under the alert's lock.
ALERT_CODE = Statement("SELECT reply_code FROM notify.alerts WHERE id = :id FOR UPDATE")
#: Give the alert `code` unless an open alert holds it, or any alert changed in the last day
#: did (a late reply to an alert acknowledged an hour ago must not reach a new one). The unique
#: index on the open alerts' codes settles a race between two replicas.
SET_CODE = Statement("""
    UPDATE notify.alerts SET reply_code = :code
     WHERE id = :id AND reply_code IS NULL
       AND NOT EXISTS (
           SELECT 1 FROM notify.alerts
            WHERE reply_code = :code
              AND (status NOT IN ('acknowledged', 'resolved')
                   OR changed_at > now() - interval '1 day'))
    RETURNING reply_code
""")
#: Every phone method (deleted ones too: an open alert may have paged one), to find a number's.
PHONE_METHODS = """
    SELECT m.id, m.clinician_id, m.kind, m.address, m.opted_out_at, m.unanswered_replies,
           c.name AS clinician
      FROM notify.contact_methods AS m JOIN notify.clinicians AS c ON c.id = m.clinician_id
     WHERE m.kind IN ('sms', 'voice')
"""
#: The open alerts paged to any of the methods, newest first, with the method that was paged
#: (its clinician acknowledges).
OPEN_ALERTS_PAGED = Statement("""
    SELECT DISTINCT ON (a.created_at, a.id) a.id, a.reply_code, a.risk_level, d.contact_method_id
      FROM notify.deliveries AS d JOIN notify.alerts AS a ON a.id = d.alert_id
     WHERE d.contact_method_id = ANY(:method_ids::uuid[])
       AND a.status NOT IN ('acknowledged', 'resolved')
     ORDER BY a.created_at DESC, a.id, d.created_at
""")
#: Keep what the phone answered on the alert's pages to it.
RECORD_REPLY = Statement("""
    UPDATE notify.deliveries SET reply = :reply
     WHERE alert_id = :alert_id AND contact_method_id = ANY(:method_ids::uuid[])
""")
OPT_OUT_TEXTS = Statement("""
    UPDATE notify.contact_methods SET opted_out_at = :now
     WHERE id = ANY(:method_ids::uuid[]) AND kind = 'sms' AND opted_out_at IS NULL
""")
OPT_IN_TEXTS = Statement("""
    UPDATE notify.contact_methods SET opted_out_at = NULL
     WHERE id = ANY(:method_ids::uuid[]) AND kind = 'sms'
""")
#: A reply that changed nothing (+1), or one that did (back to 0).
UNANSWERED = Statement("""
    UPDATE notify.contact_methods SET unanswered_replies = unanswered_replies + 1
     WHERE id = ANY(:method_ids::uuid[])
""")
ANSWERED = Statement("""
    UPDATE notify.contact_methods SET unanswered_replies = 0
     WHERE id = ANY(:method_ids::uuid[]) AND unanswered_replies <> 0
""")
#: A provider's callback, once: nothing returned means it was applied before.
FIRST_CALLBACK = Statement("""
    INSERT INTO notify.provider_callbacks (sid, event, received_at) VALUES (:sid, :event, :now)
    ON CONFLICT DO NOTHING RETURNING sid
""")
#: The page a callback is about, and its alert's state.
PAGE = Statement("""
    SELECT d.id, d.alert_id, d.status, d.channel, d.attempts, d.contact_method_id,
           d.provider_sid, a.status AS alert_status, a.risk_level, c.name AS clinician
      FROM notify.deliveries AS d
      JOIN notify.alerts AS a ON a.id = d.alert_id
      LEFT JOIN notify.contact_methods AS m ON m.id = d.contact_method_id
      LEFT JOIN notify.clinicians AS c ON c.id = m.clinician_id
     WHERE d.id = :id
""")
#: The provider's latest word on a page; a final status is not overwritten by a late earlier one.
PROVIDER_STATUS = Statement("""
    UPDATE notify.deliveries
       SET provider_sid = coalesce(provider_sid, :sid),
           provider_status = CASE
               WHEN provider_status IN ('delivered', 'undelivered', 'failed', 'completed', 'busy',
                                        'no-answer', 'canceled')
               THEN provider_status ELSE :status END
     WHERE id = :id
""")
PAGE_REPLY = Statement("UPDATE notify.deliveries SET reply = :reply WHERE id = :id")
