"""The follow-ups' overdue watcher: one `follow_up.overdue` event each time an open follow-up
passes its due time with no attempt recorded (notify turns it into a reminder to the team, as it
does for an overdue safety plan).

It sleeps until the earliest due time not yet announced; a trigger on `intake.follow_ups` sends a
NOTIFY whenever a follow-up opens, closes or its due time moves (migrations/0025_follow_ups.sql).
"""

from __future__ import annotations

from services.intake.follow_ups.service import claim_overdue, next_overdue_at
from shared.runtime import Runtime
from shared.wakeup import DueWatcher

CHANNEL = "intake_follow_ups"


def start_watcher(runtime: Runtime) -> DueWatcher:
    watcher = DueWatcher(
        name="follow-up watcher",
        what="overdue follow-up(s)",
        sessions=runtime.sessions,
        listener=runtime.listener,
        channel=CHANNEL,
        claim=lambda session, limit: claim_overdue(session, limit=limit),
        next_due=next_overdue_at,
    )
    runtime.spawn(watcher.run(), name="intake-follow-up-watcher")
    return watcher
