"""Background loops that wake on PostgreSQL NOTIFY, so due work runs the moment it is committed.

A loop that delivers pages, pushes or reminders, or announces overdue plans, has two jobs:
do what is due now, then sleep until the next due time or until a commit announces new work,
whichever comes first. `WakeLoop` is the second job, written once: it listens on the loop's
channels (with a full pass after each reconnect of the LISTEN connection, since a NOTIFY may
have been missed while it was down), and never sleeps past `max_sleep`, a ceiling for anything
no trigger announces (a lease running out). No polling on the hot path: a loop with nothing
due sleeps until woken.

The loops of one process share one LISTEN connection, a `Listener`: PostgreSQL signals every
session of the database that listens on any channel at each NOTIFY's commit, whatever the
channel, and each signalled session wakes and reads the notification queue (about 20 µs of the
database's CPU per listening session and notice, measured). Four loops of a replica on four
connections cost the database four of those for every outbox row, page and plan committed
anywhere; on one connection, one.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence, Sized
from dataclasses import dataclass
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
#: Told a notice's channel and payload, in the event loop: it must not block.
OnNotice = Callable[[str, str], None]


@dataclass(eq=False)
class _Subscriber:
    channels: tuple[str, ...]
    on_notice: OnNotice
    #: Told the connection dropped: notices may have been missed until it is back.
    on_lost: Callable[[], None]


class Listener:
    """The LISTEN connection the wake loops of one process share (see the module's docstring).

    Open while anything subscribes: the first subscription opens it, the last one's end closes
    it. A connection that drops is opened again at once, then every `retry_seconds` while the
    database is away, listening on every channel subscribed, and every subscriber is told it was
    lost. `listening()` gives the connection once it listens on every subscribed channel, and
    `holds()` tells whether it is still that one.
    """

    def __init__(self, dsn: str, *, name: str = "listener", retry_seconds: float = 1.0) -> None:
        self.name = name
        self._dsn = dsn
        self._retry = retry_seconds
        self._subscribers: list[_Subscriber] = []
        self._conn: asyncpg.Connection | None = None
        #: Set while `_conn` listens on every subscribed channel.
        self._up = asyncio.Event()
        #: Held while channels are added to the connection, so none is missed by a reconnect.
        self._lock = asyncio.Lock()
        self._keeper: asyncio.Task[None] | None = None

    def _channels(self) -> set[str]:
        return {channel for s in self._subscribers for channel in s.channels}

    @contextlib.asynccontextmanager
    async def subscribed(
        self, channels: Sequence[str], on_notice: OnNotice, on_lost: Callable[[], None]
    ) -> AsyncIterator[None]:
        """Notices on `channels` go to `on_notice` until the block ends."""
        subscriber = _Subscriber(tuple(channels), on_notice, on_lost)
        try:
            async with self._lock:
                new = [c for c in subscriber.channels if c not in self._channels()]
                self._subscribers.append(subscriber)
                conn = self._conn
                if conn is not None and new:
                    try:
                        for channel in new:
                            await conn.add_listener(channel, self._dispatch)
                    except Exception as exc:
                        # The connection is going: the keeper opens another on every channel.
                        log.warning("%s: LISTEN failed (%s)", self.name, type(exc).__name__)
                        self._up.clear()
                        conn.terminate()
            self._keep_listening()
            yield
        finally:
            # Also when cancelled before its LISTEN was done: nothing is left subscribed. A
            # channel nobody wants any more stays listened to until the next reconnect: its
            # notices find no subscriber, and the session is signalled for every notice anyway.
            with contextlib.suppress(ValueError):
                self._subscribers.remove(subscriber)
            if not self._subscribers and self._keeper is not None:
                keeper, self._keeper = self._keeper, None
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)

    async def listening(self) -> asyncpg.Connection:
        """The connection, once it listens on every subscribed channel."""
        while True:
            self._keep_listening()
            await self._up.wait()  # returns at once while set: no other task runs meanwhile
            conn = self._conn
            if conn is not None and not conn.is_closed():
                return conn
            # Dropped, and the keeper has not heard yet (asyncpg tells it with call_soon): it
            # sets this again once listening anew. Returned, the closed connection would have
            # the loop ask again at once, and never let the keeper run.
            self._up.clear()

    def _keep_listening(self) -> None:
        """Start the keeper, or start it again should it ever have ended while subscribed."""
        if self._keeper is not None and self._keeper.done():
            if not self._keeper.cancelled() and self._keeper.exception() is not None:
                log.error("%s: its keeper died", self.name, exc_info=self._keeper.exception())
            self._keeper = None
        if self._keeper is None and self._subscribers:
            self._keeper = asyncio.create_task(self._keep(), name=self.name)

    def holds(self, conn: asyncpg.Connection) -> bool:
        """Whether `conn` (from `listening`) is still the connection, and open."""
        return not conn.is_closed() and self._conn is conn

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for subscriber in tuple(self._subscribers):
            if channel in subscriber.channels:
                subscriber.on_notice(channel, payload)

    async def _keep(self) -> None:
        """Keep a connection listening while anything subscribes."""
        while self._subscribers:
            try:
                # Named, so an operator tells it in pg_stat_activity.
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": self.name}
                )
            except Exception as exc:
                log.warning(
                    "%s: cannot connect (%s); retrying in %.0f s",
                    self.name,
                    type(exc).__name__,
                    self._retry,
                )
                await asyncio.sleep(self._retry)
                continue
            dropped = asyncio.Event()
            conn.add_termination_listener(lambda _conn, dropped=dropped: dropped.set())
            failed = False
            try:
                async with self._lock:
                    for channel in sorted(self._channels()):
                        await conn.add_listener(channel, self._dispatch)
                    self._conn = conn
                    self._up.set()
                await dropped.wait()
                log.warning("%s: the LISTEN connection dropped; listening again", self.name)
            except Exception as exc:
                log.warning("%s: LISTEN failed (%s)", self.name, type(exc).__name__)
                failed = True
            finally:
                self._up.clear()
                self._conn = None
                for subscriber in tuple(self._subscribers):
                    subscriber.on_lost()
                if not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            if failed:
                await asyncio.sleep(self._retry)


class WakeLoop:
    def __init__(
        self,
        *,
        name: str,
        listener: Listener,
        channels: Sequence[str],
        max_sleep: float,
    ) -> None:
        self.name = name
        self._listener = listener
        self._channels = tuple(channels)
        self._max_sleep = max_sleep
        self._wake = asyncio.Event()
        #: When the sleep under way ends, in seconds since the epoch (None: at work, not asleep).
        self._asleep_until: float | None = None

    def _notified(self, channel: str, payload: str) -> None:
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
        """Alternate `work` and sleeping until `next_due` or a wake-up, until cancelled. A
        dropped LISTEN connection wakes the loop, which makes a full pass once it is back."""
        async with self._listener.subscribed(self._channels, self._notified, self._wake.set):
            while True:
                try:
                    conn = await self._listener.listening()
                    while self._listener.holds(conn):
                        self._wake.clear()
                        await work()
                        await self._sleep(await next_due())
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s failed; retrying in 1 s", self.name)
                    await asyncio.sleep(1)

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
        listener: Listener,
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
            listener=listener,
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
