-- Follow-ups after the call (intake's triage.follow-up.events.v1) remind people as an overdue
-- safety plan does: one past its due time with no attempt (the team), one nobody could reach
-- (the supervisor). Such a reminder's plan_id holds the notice's id (unique per notice).
ALTER TABLE notify.reminders DROP CONSTRAINT reminders_kind_check;
ALTER TABLE notify.reminders ADD CONSTRAINT reminders_kind_check
    CHECK (kind IN ('safety_plan_overdue', 'follow_up_overdue', 'follow_up_unreachable'));
