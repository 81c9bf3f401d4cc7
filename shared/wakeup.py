"""Background loops that wake on PostgreSQL NOTIFY, so due work runs the moment it is committed.

A loop that delivers pages, pushes or reminders, or announces overdue plans, has two jobs:
do what is due now, then sleep until the next due time or until a commit announces new work,
whichever comes first. `WakeLoop` is the second job, written once: it keeps a LISTEN
connection on the loop's channels (reconnecting if it drops, with a full pass after each
reconnect since a NOTIFY may have been missed while it was down), and never sleeps past
`max_sleep`, a ceiling for anything no trigger announces (a lease running out). No polling
on the hot path: a loop with nothing due sleeps until woken.

A notice's payload may say when the work it announces is due, in seconds since the epoch
(`extract(epoch FROM due_at)`): a loop asleep until no later than that is not woken, since it
wakes by then anyway and reads what is due afresh. Intake's overdue watchers sleep until the
earliest plan or follow-up due, hours away, and every flagged screening opens a later one: a
pass for each (two transactions) would find nothing due. An empty payload, or a notice while
the loop is at work, always wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence, Sized
from datetime import datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import SessionFactory, transaction
from shared.events import utcnow

log = logging.getLogger(__name__)

#: Does what is due now.
Work = Callable[[], Awaitable[object]]
#: Seconds until something is due again (0 or less: now), or None when only a wake-up will tell.
NextDue = Callable[[], Awaitable[float | None]]


class WakeLoop:
    def __init__(
        self,
        *,
        name: str,
        listen_dsn: str,
        channels: Sequence[str],
        max_sleep: float,
    ) -> None:
        self.name = name
        self._listen_dsn = listen_dsn
        self._channels = tuple(channels)
        self._max_sleep = max_sleep
        self._wake = asyncio.Event()
        #: When the sleep under way ends, in seconds since the epoch (None: at work, not asleep).
        self._asleep_until: float | None = None

    def _notified(self, conn: object, pid: int, channel: str, payload: str) -> None:
        until = self._asleep_until
        if until is not None and payload:
            try:
                due = float(payload)
            except ValueError:
                log.warning("%s: a notice on %s with an unreadable payload", self.name, channel)
            else:
                if due >= until:
                    return  # the loop wakes by then anyway
        self._wake.set()

    def wake(self) -> None:
        """Run the work again now (e.g. a send finished and freed a slot)."""
        self._wake.set()

    async def run(self, work: Work, next_due: NextDue) -> None:
        """Alternate `work` and sleeping until `next_due` or a wake-up, until cancelled."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._listen_dsn)
                for channel in self._channels:
                    await conn.add_listener(channel, self._notified)
                # A LISTEN connection that drops (a database restart) must not leave the loop
                # asleep for max_sleep: wake it, so it reconnects and makes a full pass at once.
                conn.add_termination_listener(lambda _: self._wake.set())
                while not conn.is_closed():
                    self._wake.clear()
                    await work()
                    await self._sleep(await next_due())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; retrying in 1 s", self.name)
                await asyncio.sleep(1)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()

    async def _sleep(self, due_in: float | None) -> None:
        timeout = self._max_sleep if due_in is None else min(self._max_sleep, due_in)
        if timeout > 0 and not self._wake.is_set():
            self._asleep_until = time.time() + timeout
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            finally:
                self._asleep_until = None


class DueWatcher:
    """Announces each row that comes due, once, across replicas (an overdue safety plan, an
    overdue follow-up): sleeps until the earliest due time not announced yet, not in a polling
    loop, woken early by the NOTIFY a trigger on the table sends when a row opens, closes or its
    due time moves.

    `claim(session, limit)` marks up to `limit` due rows and queues their events in the given
    transaction (`FOR UPDATE SKIP LOCKED`, so two replicas never announce one row twice); each
    batch commits on its own. `next_due(session)` is the earliest due time not announced yet.
    """

    def __init__(
        self,
        *,
        name: str,
        what: str,
        sessions: SessionFactory,
        listen_dsn: str,
        channel: str,
        claim: Callable[[AsyncSession, int], Awaitable[Sized]],
        next_due: Callable[[AsyncSession], Awaitable[datetime | None]],
        batch_size: int = 100,
        max_sleep_seconds: float = 60.0,
        busy_retry_seconds: float = 1.0,
    ) -> None:
        self._what = what
        self._sessions = sessions
        self._claim = claim
        self._next_due = next_due
        self._batch_size = batch_size
        #: When a due row is locked by another replica's claim, look again after this long.
        self._busy_retry = busy_retry_seconds
        self._loop = WakeLoop(
            name=name,
            listen_dsn=listen_dsn,
            channels=[channel],
            # A ceiling on the sleep, in case a NOTIFY was lost while LISTEN was down.
            max_sleep=max_sleep_seconds,
        )
        self.announced = 0

    def wake(self) -> None:
        self._loop.wake()

    async def run(self) -> None:
        """Watch until cancelled."""
        await self._loop.run(self.run_due, self._next_due_in)

    async def run_due(self) -> int:
        """Announce every row that is due now; returns how many this replica announced."""
        total = 0
        while True:
            async with transaction(self._sessions) as session:
                claimed = len(await self._claim(session, self._batch_size))
            total += claimed
            if claimed < self._batch_size:
                break
        if total:
            log.info("announced %d %s", total, self._what)
        self.announced += total
        return total

    async def _next_due_in(self) -> float | None:
        async with self._sessions() as session:
            due = await self._next_due(session)
        if due is None:
            return None
        left = (due - utcnow()).total_seconds()
        # Past due but not claimable: another replica holds it mid-claim; look again soon.
        return left if left > 0 else self._busy_retry
