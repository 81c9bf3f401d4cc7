"""The deliverer: sends due pages, on time, once per claim, and never sleeps on the hot path.

Due work lives in PostgreSQL (deliveries.due_at, alerts.escalate_at), so a restarted process
resumes every pending page and escalation. The loop sleeps exactly until the next due time, and a
NOTIFY from the triggers on those timers wakes it the moment a page is added or a timer moves
(in any replica). Claims take a lease with `FOR UPDATE SKIP LOCKED`, so two replicas never send
the same attempt, and escalations lock their alert the same way, so two replicas never start the
same step; a process that dies mid-send leaves a lease that expires, and the page is sent again
(at least once, with the same X-Triage-Event-Id for the receiver to deduplicate).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import datetime

import asyncpg
from opentelemetry.trace import SpanKind

from services.notify.alerts.service import (
    Recorded,
    escalate_overdue,
    record_outcome,
    wait_for_target,
)
from services.notify.delivery.channels import Channel, Outcome, Page, page_payload
from services.notify.delivery.signing import ack_link
from services.notify.metrics import Metrics
from services.notify.models import DELIVERIES_CHANNEL, DeliveryAttempt, sealed
from services.notify.settings import NotifySettings
from shared import tracing
from shared.db import SessionFactory, driver, transaction
from shared.events import utcnow
from shared.phi import KeyRing, PhiUnreadable
from shared.wakeup import WakeLoop
from shared.webhooks import redact

log = logging.getLogger(__name__)

_TARGET = sealed("deliveries")

#: Claims up to $2 due pages: first the pages of a round 0 (an alert's first page, an
#: escalation's, and their retries: pages nobody has had yet), oldest first, then repeats of
#: unanswered pages, at most $3 of them. A backlog of alerts nobody acknowledges (paged again
#: every few minutes) must not hold up a new alert's first page: it would wait behind every
#: repeat due before it, and for a slot, when those repeats go to addresses that answer slowly.
_CLAIM = """
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
              a.id AS alert_id, a.screening_id, a.risk_level, a.urgency, a.reasons, a.created_at,
              a.traceparent
"""
# When the next page is due (a leased page when its lease runs out: its sender may have died),
# and when the next acknowledgement deadline runs out.
#: First wait for any acknowledgement of the alert in progress (it locks the alert FOR UPDATE and
#: only then reads the clock), then read the delivery afresh, in a statement of its own: after a
#: lock wait a single statement would still see the delivery as its snapshot had it (READ
#: COMMITTED re-reads only the locked rows). So an acknowledgement is either committed before the
#: read, and the page is not sent, or timed after this page's attempt began.
_WAIT_FOR_ACK = """
    SELECT 1 FROM notify.alerts
     WHERE id = (SELECT alert_id FROM notify.deliveries WHERE id = $1) FOR KEY SHARE
"""
_STILL_PENDING = "SELECT status = 'pending' FROM notify.deliveries WHERE id = $1"
_NEXT_DUE = """
    SELECT (SELECT min(greatest(due_at, coalesce(lease_until, due_at)))
              FROM notify.deliveries WHERE status = 'pending' AND repeat_round = 0) AS page,
           (SELECT min(greatest(due_at, coalesce(lease_until, due_at)))
              FROM notify.deliveries WHERE status = 'pending' AND repeat_round > 0) AS repeat,
           (SELECT min(escalate_at) FROM notify.alerts
             WHERE escalate_at IS NOT NULL AND status IN ('delivered', 'escalated')) AS escalation
"""
#: Upper bound of one sleep: a safety net for a wake-up lost while LISTEN was reconnecting.
MAX_SLEEP_SECONDS = 30.0


class Deliverer:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        channels: dict[str, Channel],
        settings: NotifySettings,
        ack_keys: list[bytes],
        listen_dsn: str,
        metrics: Metrics,
        phi: KeyRing | None = None,
    ) -> None:
        self._sessions = sessions
        self._phi = phi
        self._channels = channels
        self._settings = settings
        #: The first signs the ack links in pages (services/notify/signing.py).
        self._ack_keys = ack_keys
        self._metrics = metrics
        self._loop = WakeLoop(
            name="deliverer",
            listen_dsn=listen_dsn,
            channels=[DELIVERIES_CHANNEL],
            max_sleep=MAX_SLEEP_SECONDS,
        )
        self._in_flight: set[asyncio.Task] = set()
        #: The sends of repeats among them: they never take the slots kept for first pages.
        self._repeats_in_flight: set[asyncio.Task] = set()
        #: When the next page and the next escalation are due (None: nothing pending), read by
        #: each pass; before the first pass nothing is known, so it looks for overdue alerts.
        self._next_page: datetime | None = None
        self._next_repeat: datetime | None = None
        self._next_escalation: datetime | None = None
        self._deadlines_read = False
        self._slots = asyncio.Semaphore(settings.delivery_concurrency)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def wake(self) -> None:
        self._loop.wake()

    async def run(self) -> None:
        try:
            await self._loop.run(self.run_due, self._next_due_in)
        except asyncio.CancelledError:
            await self._drain()
            raise

    async def _drain(self) -> None:
        """Let pages already on the wire finish and be recorded (shutdown)."""
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self._settings.delivery_timeout_seconds + 1)

    async def run_due(self) -> None:
        """Escalate what is overdue (only when a deadline has run out), then start due pages,
        the ones those escalations added included, and read when the next page and the next
        deadline are due (the loop sleeps until then).

        The claim is one UPDATE, atomic by itself, and the read needs no transaction either:
        both go without BEGIN and COMMIT, two round trips fewer on every page's path.
        """
        while True:
            lags: list[float] = []
            if self._escalation_due():
                async with transaction(self._sessions) as session:
                    lags = await escalate_overdue(session, settings=self._settings)
            free = self._settings.delivery_concurrency - len(self._in_flight)
            repeats = min(free, self._settings.repeat_slots - len(self._repeats_in_flight))
            async with self._sessions() as session:
                conn = await driver(session, begin=False)
                pages = await self._claim(conn, free, max(repeats, 0)) if free > 0 else []
                due = await conn.fetchrow(_NEXT_DUE)
            self._next_page, self._next_repeat = due["page"], due["repeat"]
            self._next_escalation = due["escalation"]
            self._deadlines_read = True
            for page in pages:
                task = asyncio.create_task(self._send(page))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                if page.repeat_round:
                    self._repeats_in_flight.add(task)
                    task.add_done_callback(self._repeats_in_flight.discard)
            for lag in lags:
                self._metrics.escalation_lag.observe(max(0.0, lag))
                self._metrics.escalations.labels(reason="timeout").inc()
            if not lags and (free <= 0 or len(pages) < free):
                return

    def _escalation_due(self) -> bool:
        """Whether a deadline may have run out (always, before the first pass has read them)."""
        if not self._deadlines_read:
            return True
        return self._next_escalation is not None and self._next_escalation <= utcnow()

    async def _claim(self, conn: asyncpg.Connection, limit: int, repeats: int) -> list[Page]:
        rows = await conn.fetch(_CLAIM, self._settings.delivery_lease_seconds, limit, repeats)
        return [self._page(r) for r in rows]

    def _page(self, r: asyncpg.Record) -> Page:
        target = self._target(r)
        return Page(
            delivery_id=r["id"],
            attempt=r["attempts"],
            escalation_level=r["escalation_level"],
            repeat_round=r["repeat_round"],
            alert_id=r["alert_id"],
            screening_id=r["screening_id"],
            risk_level=r["risk_level"],
            urgency=r["urgency"],
            reasons=list(r["reasons"]),
            created_at=r["created_at"],
            # The fallback is a webhook: an email method whose address is refused too.
            channel=r["channel"] if target is not None else "webhook",
            target=target,
            traceparent=r["traceparent"],
        )

    def _target(self, row: asyncpg.Record) -> str | None:
        """The page's planned address in clear. One that does not decrypt (its key left the
        ring), or is refused (in clear in a sealed database: planted), must not stop paging:
        the page goes to the fallback, ONCALL_WEBHOOK_URL."""
        try:
            target: str | None = _TARGET.open(self._phi, row, row["target"])
        except PhiUnreadable:
            log.error("page %s: its address does not decrypt; paging the fallback", row["id"])
            return None
        return target

    async def _next_due_in(self) -> float | None:
        """Seconds until the next page or deadline, as read by the last pass."""
        free = len(self._in_flight) < self._settings.delivery_concurrency
        due = [
            at
            for at in (
                # Every slot busy: a due page cannot start before one frees, and each finished
                # send wakes the loop. Without this the loop would spin on a due time past.
                self._next_page if free else None,
                self._next_repeat if free and self._repeat_slot_free() else None,
                self._next_escalation,
            )
            if at is not None
        ]
        return (min(due) - utcnow()).total_seconds() if due else None

    def payload(self, page: Page) -> dict:
        ack_url = ack_link(
            self._settings.public_url,
            self._ack_keys[0],
            page.alert_id,
            self._settings.ack_link_ttl_seconds,
        )
        case_url = (
            f"{self._settings.intake_public_url.rstrip('/')}/v1/screenings/{page.screening_id}"
        )
        return page_payload(page, ack_url=ack_url, case_url=case_url)

    def address(self, page: Page) -> str | None:
        """Where the page goes: its planned address, else the fallback ONCALL_WEBHOOK_URL."""
        return page.target if page.target is not None else self._settings.oncall_webhook_url

    async def _send(self, page: Page) -> None:
        try:
            async with self._slots:
                await self._attempt(page)
        finally:
            self._release(page)

    def _release(self, page: Page) -> None:
        """Free the send's slot, and wake the loop if a due page may be waiting for it, also
        when the send stopped early (its alert was acknowledged meanwhile)."""
        held_last = len(self._in_flight) >= self._settings.delivery_concurrency or (
            page.repeat_round > 0 and not self._repeat_slot_free()
        )
        # Free from here (the loop woken below must count it free; the tasks' done callbacks
        # would come later).
        if (this := asyncio.current_task()) is not None:
            self._in_flight.discard(this)
            self._repeats_in_flight.discard(this)
        if held_last:
            # Every other change a recorded outcome makes (a retry's due time, a deadline, the
            # pages of an escalation) wakes the loop through the triggers on those columns.
            self._loop.wake()

    async def _attempt(self, page: Page) -> None:
        """One attempt of `page`, recorded."""
        started = utcnow()
        # Claimed a moment ago, but acknowledged (or resolved) since? A claimed page may
        # have waited for a slot, or its process may have been paused: no attempt starts
        # after its alert was acknowledged. (One on the wire when the ack lands goes out.)
        if not await self._still_pending(page):
            return
        address = self.address(page)
        if address is None:
            outcome = Outcome("temporary_failure", error="no on-call target configured")
        else:
            try:
                # The whole exchange, not each step of it (an SMTP conversation is a dozen
                # steps, each with the channel's own timeout): a send that outlived its
                # lease could be sent again by another replica meanwhile.
                async with asyncio.timeout(self._settings.send_budget_seconds):
                    with tracing.span(
                        f"page {page.channel}",
                        parent=page.traceparent,
                        kind=SpanKind.CLIENT,
                        attributes={
                            "triage.escalation_level": page.escalation_level,
                            "triage.attempt": page.attempt,
                        },
                    ):
                        outcome = await self._channels[page.channel].send(
                            page, address, self.payload(page)
                        )
            except TimeoutError:
                outcome = Outcome(
                    "temporary_failure",
                    error=f"no answer in {self._settings.send_budget_seconds:g} s",
                )
            except Exception as exc:
                # A bug or a bad address must not kill the send: the attempt is recorded
                # and retried, then escalated, like any failure.
                log.exception("page %s: the %s channel raised", page.delivery_id, page.channel)
                outcome = Outcome("temporary_failure", error=type(exc).__name__)
        attempt = DeliveryAttempt(
            delivery_id=page.delivery_id,
            attempt=page.attempt,
            target=_recorded_target(page.channel, address),
            started_at=started,
            finished_at=utcnow(),
            http_status=outcome.http_status,
            outcome=outcome.outcome,
            error=outcome.error,
            worker=self.worker,
        )
        self._count(page, outcome)
        if outcome.outcome != "delivered":
            log.warning("page %s attempt %d: %s", page.delivery_id, page.attempt, outcome.error)
        try:
            await self._record(page, attempt, outcome, waiting=address is None)
        except Exception:
            # The lease expires and the page is retried: at least once, never lost.
            log.exception("could not record the outcome of page %s", page.delivery_id)

    def _repeat_slot_free(self) -> bool:
        return len(self._repeats_in_flight) < self._settings.repeat_slots

    async def _still_pending(self, page: Page) -> bool:
        try:
            async with self._sessions() as session:
                conn = await driver(session, begin=False)
                await conn.execute(_WAIT_FOR_ACK, page.delivery_id)
                return bool(await conn.fetchval(_STILL_PENDING, page.delivery_id))
        except Exception:
            log.exception("page %s: could not check it is still due; sending", page.delivery_id)
            return True  # a page sent twice beats a page not sent

    async def _record(
        self, page: Page, attempt: DeliveryAttempt, outcome: Outcome, *, waiting: bool
    ) -> None:
        async with transaction(self._sessions) as session:
            if waiting:
                await wait_for_target(
                    session, delivery_id=page.delivery_id, attempt=attempt, settings=self._settings
                )
                return
            recorded: Recorded = await record_outcome(
                session,
                delivery_id=page.delivery_id,
                alert_id=page.alert_id,
                attempt=attempt,
                outcome=outcome,
                settings=self._settings,
            )
        if recorded.first_delivery_after is not None:
            self._metrics.assessment_to_first_delivery.labels(risk_level=page.risk_level).observe(
                recorded.first_delivery_after
            )
        if recorded.escalated:
            self._metrics.escalations.labels(reason="failed").inc()

    def _count(self, page: Page, outcome: Outcome) -> None:
        self._metrics.deliveries.labels(channel=page.channel, outcome=outcome.outcome).inc()
        if outcome.outcome != "delivered":
            kind = "temporary" if outcome.outcome == "temporary_failure" else "permanent"
            self._metrics.delivery_failures.labels(kind=kind, channel=page.channel).inc()


def _recorded_target(channel: str, address: str | None) -> str:
    """The target as recorded: a URL without its query (it may carry a token), or mailto:."""
    if address is None:
        return "(none)"
    if channel == "email":
        return f"mailto:{address}"
    return redact(address)
