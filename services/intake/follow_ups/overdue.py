"""The follow-ups' overdue watcher: one `follow_up.overdue` event each time an open follow-up
passes its due time with no attempt recorded (notify turns it into a reminder to the team, as it
does for an overdue safety plan).

It sleeps until the earliest due time not yet announced; a trigger on `intake.follow_ups` sends a
NOTIFY whenever a follow-up opens, closes or its due time moves (migrations/0025_follow_ups.sql).
"""

from __future__ import annotations

import logging

from services.intake.follow_ups.service import claim_overdue, next_overdue_at
from shared.db import SessionFactory, asyncpg_dsn, transaction
from shared.events import utcnow
from shared.runtime import Runtime
from shared.wakeup import WakeLoop

log = logging.getLogger(__name__)

CHANNEL = "intake_follow_ups"


class FollowUpWatcher:
    def __init__(self, *, sessions: SessionFactory, listen_dsn: str, batch_size: int = 100) -> None:
        self._sessions = sessions
        self._batch_size = batch_size
        self._loop = WakeLoop(
            name="follow-up watcher", listen_dsn=listen_dsn, channels=[CHANNEL], max_sleep=60.0
        )
        self.announced = 0

    async def run(self) -> None:
        await self._loop.run(self.run_due, self._next_due_in)

    async def run_due(self) -> int:
        total = 0
        while True:
            async with transaction(self._sessions) as session:
                claimed = len(await claim_overdue(session, limit=self._batch_size))
            total += claimed
            if claimed < self._batch_size:
                break
        if total:
            log.info("announced %d overdue follow-up(s)", total)
        self.announced += total
        return total

    async def _next_due_in(self) -> float | None:
        async with self._sessions() as session:
            due = await next_overdue_at(session)
        if due is None:
            return None
        left = (due - utcnow()).total_seconds()
        return left if left > 0 else 1.0  # held by another replica mid-claim: look again soon


def start_watcher(runtime: Runtime) -> FollowUpWatcher:
    watcher = FollowUpWatcher(
        sessions=runtime.sessions, listen_dsn=asyncpg_dsn(runtime.settings.database_url)
    )
    runtime.spawn(watcher.run(), name="intake-follow-up-watcher")
    return watcher
