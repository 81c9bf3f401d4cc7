"""The deliverer: sends due pages, on time, once per claim, and never sleeps on the hot path.

Due work lives in PostgreSQL (deliveries.due_at, alerts.escalate_at), so a restarted process
resumes every pending page and escalation. The loop sleeps exactly until the next due time, and a
NOTIFY from the deliveries trigger wakes it the moment a new page is committed. Claims take a
lease with `FOR UPDATE SKIP LOCKED`, so two replicas never send the same attempt; a process that
dies mid-send leaves a lease that expires, and the page is sent again (at least once, with the
same X-Triage-Event-Id for the receiver to deduplicate).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy import func, select, text

from services.notify.models import DELIVERIES_CHANNEL, Alert, Delivery, DeliveryAttempt
from services.notify.service import escalate_overdue, record_outcome
from services.notify.settings import NotifySettings
from services.notify.signing import ack_link, webhook_signature
from shared.db import SessionFactory, transaction
from shared.events import utcnow

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)
_CLAIM = text(
    """
    UPDATE notify.deliveries AS d
       SET lease_until = now() + make_interval(secs => :lease), attempts = d.attempts + 1
      FROM notify.alerts AS a
     WHERE a.id = d.alert_id
       AND d.id IN (SELECT id FROM notify.deliveries
                     WHERE status = 'pending' AND due_at <= now()
                       AND (lease_until IS NULL OR lease_until < now())
                     ORDER BY due_at
                     LIMIT :limit
                     FOR UPDATE SKIP LOCKED)
    RETURNING d.id, d.attempts, d.escalation_level, a.id AS alert_id, a.screening_id,
              a.risk_level, a.urgency, a.reasons, a.created_at
    """
)


@dataclass(frozen=True)
class Page:
    """One claimed attempt, with what the webhook needs; no PHI."""

    delivery_id: uuid.UUID
    attempt: int
    escalation_level: int
    alert_id: uuid.UUID
    screening_id: uuid.UUID
    risk_level: str
    urgency: str | None
    reasons: list[str]
    created_at: datetime


class Deliverer:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        http: httpx.AsyncClient,
        settings: NotifySettings,
        secrets: list[str],
        listen_dsn: str,
    ) -> None:
        self._sessions = sessions
        self._http = http
        self._settings = settings
        self._secrets = secrets
        self._listen_dsn = listen_dsn
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(settings.delivery_concurrency)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._listen_dsn)
                await conn.add_listener(DELIVERIES_CHANNEL, lambda *_: self._wake.set())
                while not conn.is_closed():
                    self._wake.clear()
                    await self.run_due()
                    await self._sleep_until_next_due()
            except asyncio.CancelledError:
                await self._drain()
                raise
            except Exception:
                log.exception("deliverer loop failed; retrying in 1 s")
                await asyncio.sleep(1)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()

    async def _drain(self) -> None:
        """Let pages already on the wire finish and be recorded (shutdown)."""
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self._settings.delivery_timeout_seconds + 1)

    async def run_due(self) -> None:
        """Escalate what is overdue, then claim and start every due page."""
        async with transaction(self._sessions) as session:
            await escalate_overdue(session, settings=self._settings)
        while True:
            free = self._settings.delivery_concurrency - len(self._in_flight)
            if free <= 0:
                return
            pages = await self._claim(free)
            for page in pages:
                task = asyncio.create_task(self._send(page))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if len(pages) < free:
                return

    async def _claim(self, limit: int) -> list[Page]:
        async with transaction(self._sessions) as session:
            rows = (
                await session.execute(_CLAIM, {"lease": LEASE.total_seconds(), "limit": limit})
            ).mappings()
            return [
                Page(
                    delivery_id=r["id"],
                    attempt=r["attempts"],
                    escalation_level=r["escalation_level"],
                    alert_id=r["alert_id"],
                    screening_id=r["screening_id"],
                    risk_level=r["risk_level"],
                    urgency=r["urgency"],
                    reasons=list(r["reasons"]),
                    created_at=r["created_at"],
                )
                for r in rows
            ]

    async def _sleep_until_next_due(self) -> None:
        async with self._sessions() as session:
            next_page = await session.scalar(
                select(func.min(Delivery.due_at)).where(Delivery.status == "pending")
            )
            next_escalation = await session.scalar(
                select(func.min(Alert.escalate_at)).where(Alert.status.in_(("delivered", "escalated")))
            )
        due = [t for t in (next_page, next_escalation) if t is not None]
        # A leased page is retried when its lease expires; cap the sleep so that is noticed too.
        timeout = LEASE.total_seconds()
        if due:
            timeout = min(timeout, max(0.0, (min(due) - utcnow()).total_seconds()))
        if timeout > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                pass

    def payload(self, page: Page) -> dict[str, Any]:
        return {
            "alert_id": str(page.alert_id),
            "screening_id": str(page.screening_id),
            "risk_level": page.risk_level,
            "urgency": page.urgency,
            "reasons": page.reasons,
            "escalation_level": page.escalation_level,
            "created_at": page.created_at.isoformat(),
            "ack_url": ack_link(
                self._settings.public_url,
                self._secrets[0],
                page.alert_id,
                self._settings.ack_link_ttl_seconds,
            ),
        }

    def target(self, page: Page) -> str | None:
        """Who is paged: the fallback webhook until schedules decide (notify's schedules work)."""
        return self._settings.oncall_webhook_url

    async def _send(self, page: Page) -> None:
        async with self._slots:
            started = utcnow()
            target = self.target(page)
            status: int | None = None
            error: str | None = None
            if target is None:
                outcome, error = "temporary_failure", "no on-call target configured"
            else:
                body = json.dumps(self.payload(page), separators=(",", ":")).encode()
                timestamp = int(time.time())
                headers = {
                    "Content-Type": "application/json",
                    "X-Triage-Event-Id": str(page.delivery_id),
                    "X-Triage-Timestamp": str(timestamp),
                    "X-Triage-Signature": webhook_signature(self._secrets, timestamp, body),
                }
                try:
                    response = await self._http.post(target, content=body, headers=headers)
                    status = response.status_code
                    outcome = classify(status)
                    error = None if outcome == "delivered" else f"HTTP {status}"
                except httpx.HTTPError as exc:
                    outcome, error = "temporary_failure", type(exc).__name__
            attempt = DeliveryAttempt(
                delivery_id=page.delivery_id,
                attempt=page.attempt,
                target=_redact(target),
                started_at=started,
                finished_at=utcnow(),
                http_status=status,
                outcome=outcome,
                error=error,
            )
            if outcome != "delivered":
                log.warning("page %s attempt %d: %s", page.delivery_id, page.attempt, error)
            try:
                async with transaction(self._sessions) as session:
                    await record_outcome(
                        session, delivery_id=page.delivery_id, attempt=attempt, settings=self._settings
                    )
            except Exception:
                # The lease expires and the page is retried: at least once, never lost.
                log.exception("could not record the outcome of page %s", page.delivery_id)
            if outcome != "delivered" and target is None:
                await self._defer_no_target(page.delivery_id)
            self._wake.set()

    async def _defer_no_target(self, delivery_id: uuid.UUID) -> None:
        async with transaction(self._sessions) as session:
            delivery = await session.get(Delivery, delivery_id, with_for_update=True)
            if delivery is not None and delivery.status == "pending":
                delivery.attempts = 0  # waiting for a target is not a failed attempt
                delivery.due_at = utcnow() + timedelta(seconds=self._settings.no_target_retry_seconds)


def classify(status: int) -> str:
    """2xx delivered; 408, 429 and 5xx may pass; any other answer will not change by retrying."""
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 425, 429) or status >= 500:
        return "temporary_failure"
    return "permanent_failure"


def _redact(url: str | None) -> str:
    """The target as recorded: scheme, host and path; a query may carry a token."""
    if url is None:
        return "(none)"
    return httpx.URL(url).copy_with(query=None, fragment=None).__str__()
