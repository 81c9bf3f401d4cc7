"""Rest-hooks: an EHR's RiskAssessments pushed back to it, signed, retried, never lost.

An integration registers an endpoint for the identifier system it stamps on its
QuestionnaireResponses. When intake applies the assessment of a screening that came with that
system, it queues one push per subscription in the same transaction (``enqueue_pushes``): the push
exists if and only if the assessment was recorded. A trigger NOTIFYs at commit and wakes the
pusher at once; between pushes it sleeps exactly until the next retry is due. Claims take a lease
with ``FOR UPDATE SKIP LOCKED``, so replicas never send one attempt twice, and a process that dies
mid-send leaves a lease that expires: at least once, with a constant ``X-Triage-Event-Id`` for the
EHR to deduplicate. Every attempt is recorded. A push takes at most FHIR_PUSH_TIMEOUT_SECONDS,
all of it, and reads a few KB of the answer at most (shared/webhooks.py `post_signed`), and one
endpoint (host and port) holds at most FHIR_PUSH_PER_ENDPOINT of the slots: an EHR whose
endpoint answers a byte at a time, or for ever, slows its own pushes and nobody else's.

The body is the RiskAssessment as rendered when the assessment was applied: it refers to the
EHR's own QuestionnaireResponse and Patient, and carries no PHI the EHR did not send.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import ColumnElement, false, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.db import sealed
from services.intake.fhir.models import FhirPush, FhirPushAttempt, FhirResponse, FhirSubscription
from services.intake.fhir.queries import CLAIM, NEXT_DUE, SUBSCRIBERS
from services.intake.fhir.risk import risk_assessment_json
from services.intake.fhir.schemas import SubscriptionIn
from services.intake.screenings.models import Screening
from services.intake.settings import IntakeSettings
from shared.auth import Principal, Visibility
from shared.db import SessionFactory, driver, transaction
from shared.errors import Forbidden, NotFound
from shared.events import utcnow
from shared.outbound import OutboundPolicy
from shared.phi import ring_of
from shared.runtime import Runtime
from shared.wakeup import Listener
from shared.webhooks import post_signed, redact, webhook_session
from shared.workqueue import Batch, WorkQueue, next_step, retry_at

log = logging.getLogger(__name__)

CHANNEL = "intake_fhir_pushes"
LEASE = timedelta(seconds=30)
(_SECRET,) = sealed("fhir_subscriptions")
FHIR_JSON = "application/fhir+json"

# --- registration ------------------------------------------------------------------------------


def _visible(principal: Principal) -> ColumnElement[bool]:
    """The rest-hooks a caller may see and stop: an ehr credential, those of its systems."""
    if principal.visibility == Visibility.ALL:
        return true()
    if principal.visibility == Visibility.SYSTEMS:
        return FhirSubscription.identifier_system.in_(principal.identifier_systems)
    return false()


async def register(
    session: AsyncSession, *, spec: SubscriptionIn, principal: Principal
) -> tuple[FhirSubscription, bool, str | None]:
    """Create or reactivate the rest-hook for (system, endpoint).

    Returns (subscription, created, generated secret). Registering the same pair again keeps its
    id and secret unless a new secret is given.
    """
    if (
        principal.visibility != Visibility.ALL
        and spec.identifier_system not in principal.identifier_systems
    ):
        raise Forbidden("this credential registers rest-hooks only for its own identifier systems")
    now = utcnow()
    generated = None if spec.secret else secrets.token_hex(32)
    sub_id = uuid.uuid4()
    inserted = await session.scalar(
        insert(FhirSubscription)
        .values(
            id=sub_id,
            identifier_system=spec.identifier_system,
            endpoint=spec.endpoint,
            secret=_SECRET.seal(ring_of(session), {"id": sub_id}, spec.secret or generated),
            status="active",
            created_at=now,
            updated_at=now,
            owner=principal.credential_id,
        )
        .on_conflict_do_nothing(index_elements=["identifier_system", "endpoint"])
        .returning(FhirSubscription.id)
    )
    if inserted is not None:
        sub = await session.get(FhirSubscription, inserted)
        assert sub is not None
        return sub, True, generated
    sub = await session.scalar(
        select(FhirSubscription)
        .where(
            FhirSubscription.identifier_system == spec.identifier_system,
            FhirSubscription.endpoint == spec.endpoint,
        )
        .with_for_update()
    )
    assert sub is not None
    sub.status = "active"
    if spec.secret:
        sub.secret = spec.secret
    sub.updated_at = now
    await session.flush()
    return sub, False, None


async def get_subscription(
    session: AsyncSession, *, subscription_id: uuid.UUID, principal: Principal
) -> FhirSubscription:
    sub = await session.scalar(
        select(FhirSubscription).where(FhirSubscription.id == subscription_id, _visible(principal))
    )
    if sub is None:
        raise NotFound(f"no subscription {subscription_id}")
    return sub


async def deactivate(
    session: AsyncSession, *, subscription_id: uuid.UUID, principal: Principal
) -> None:
    """Stop the rest-hook: nothing more is queued, and what is pending is cancelled."""
    sub = await session.scalar(
        select(FhirSubscription)
        .where(FhirSubscription.id == subscription_id, _visible(principal))
        .with_for_update()
    )
    if sub is None:
        raise NotFound(f"no subscription {subscription_id}")
    now = utcnow()
    sub.status, sub.updated_at = "off", now
    await session.execute(
        update(FhirPush)
        .where(FhirPush.subscription_id == subscription_id, FhirPush.status == "pending")
        .values(status="cancelled", finished_at=now, lease_until=None)
    )


# --- queueing ----------------------------------------------------------------------------------


async def subscriptions_of(
    session: AsyncSession, screening_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The active rest-hooks each of `screening_ids` is to be pushed to (by the identifier system
    its EHR sent it under), for `enqueue_pushes`; screenings nobody listens for are left out.
    One look-up for a poll's EHR screenings."""
    rows = await (await driver(session)).fetch(SUBSCRIBERS, screening_ids)
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    for screening_id, subscription_id in rows:
        found.setdefault(screening_id, []).append(subscription_id)
    return found


async def enqueue_pushes(
    session: AsyncSession,
    *,
    screening_id: uuid.UUID,
    assessment_id: uuid.UUID,
    subscriptions: list[uuid.UUID],
) -> int:
    """Queue the screening's RiskAssessment for each of `subscriptions` (`subscriptions_of`).

    Called by ``record_assessments`` in its transaction, after the case records the assessment.
    Returns how many pushes were queued.
    """
    screening = await session.get(Screening, screening_id)
    source = await session.get(FhirResponse, screening_id)
    assert screening is not None and source is not None
    body = risk_assessment_json(screening, source)
    now = utcnow()
    await session.execute(
        insert(FhirPush)
        .values(
            [
                {
                    "id": uuid.uuid4(),
                    "subscription_id": sub_id,
                    "screening_id": screening.id,
                    "assessment_id": assessment_id,
                    "body": body,
                    "status": "pending",
                    "attempts": 0,
                    "due_at": now,
                    "created_at": now,
                }
                for sub_id in subscriptions
            ]
        )
        .on_conflict_do_nothing(index_elements=["subscription_id", "assessment_id"])
    )
    return len(subscriptions)


# --- delivery ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    push_id: uuid.UUID
    attempt: int
    body: str
    endpoint: str
    secret: str


class Pusher:
    """Sends due pushes; woken by NOTIFY after commit, sleeping only until the next due retry.

    The loop, the slots and the drain are the shared leased work queue (shared/workqueue.py);
    what is the pusher's own is its claim, which keeps each endpoint to its share of the slots.
    """

    def __init__(
        self, *, sessions: SessionFactory, settings: IntakeSettings, listener: Listener
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._http: aiohttp.ClientSession | None = None
        # A push on the wire is due again only when its lease expires: that bounds the sleep.
        self._queue: WorkQueue[Claimed] = WorkQueue(
            name="fhir pusher",
            listener=listener,
            channels=[CHANNEL],
            max_sleep=LEASE.total_seconds(),
            concurrency=settings.fhir_push_concurrency,
            drain_seconds=self.deadline + 1,
            jobs=self,
        )

    @property
    def deadline(self) -> float:
        """How long one push may take, all of it: FHIR_PUSH_TIMEOUT_SECONDS, and well within the
        lease, so that no replica sends it again while it can still succeed."""
        return min(self._settings.fhir_push_timeout_seconds, 0.8 * LEASE.total_seconds())

    async def run(self) -> None:
        # Every endpoint came through the API: connections go only where the policy allows.
        guard = OutboundPolicy.from_settings(self._settings)
        limit = self._settings.fhir_push_concurrency
        async with webhook_session(limit=limit, guard=guard) as http:
            self._http = http
            await self._queue.run()

    async def run_due(self) -> None:
        await self._queue.run_due()

    async def claim(self, free: int) -> Batch[Claimed]:
        if free <= 0:
            return Batch()
        async with transaction(self._sessions) as session:
            rows = (
                await session.execute(
                    CLAIM,
                    {
                        "lease": LEASE,
                        "limit": free,
                        "share": self._settings.fhir_push_endpoint_slots,
                    },
                )
            ).mappings()
            ring = ring_of(session)
            return Batch(
                [
                    Claimed(
                        r["id"],
                        r["attempts"],
                        r["body"],
                        r["endpoint"],
                        _SECRET.open(ring, {"id": r["subscription_id"]}, r["secret"]),
                    )
                    for r in rows
                ]
            )

    async def next_due(self) -> datetime | None:
        if self._queue.free <= 0:
            return None  # every slot is busy; a finished push wakes the loop
        # A push on the wire is due again only when its lease expires (or its outcome wakes us);
        # one whose endpoint holds its share waits until one of that endpoint's pushes ends.
        async with self._sessions() as session:
            next_due: datetime | None = await session.scalar(
                NEXT_DUE, {"share": self._settings.fhir_push_endpoint_slots}
            )
        return next_due

    async def send(self, push: Claimed) -> None:
        assert self._http is not None, "the pusher sends only while it runs"
        await self._send(self._http, push)

    async def _send(self, http: aiohttp.ClientSession, push: Claimed) -> None:
        started = utcnow()
        # Within the deadline, all of it, the answer read only a little (shared/webhooks.py).
        answer = await post_signed(
            http,
            push.endpoint,
            push.body.encode(),
            secrets=[push.secret],
            event_id=push.push_id,
            deadline=self.deadline,
            content_type=FHIR_JSON,
        )
        status, outcome, error = answer.http_status, answer.outcome, answer.error
        if outcome != "delivered":
            log.warning("fhir push %s attempt %d: %s", push.push_id, push.attempt, error)
        attempt = FhirPushAttempt(
            push_id=push.push_id,
            attempt=push.attempt,
            target=redact(push.endpoint),
            started_at=started,
            finished_at=utcnow(),
            http_status=status,
            outcome=outcome,
            error=error,
        )
        try:
            async with transaction(self._sessions) as session:
                await record_outcome(session, attempt=attempt, settings=self._settings)
        except Exception:
            # The lease expires and the push is sent again: at least once, never lost.
            log.exception("could not record the outcome of fhir push %s", push.push_id)
        self._queue.wake()


async def record_outcome(
    session: AsyncSession, *, attempt: FhirPushAttempt, settings: IntakeSettings
) -> None:
    """Record one attempt and decide what follows: done, a retry after backoff, or given up."""
    push = await session.get(FhirPush, attempt.push_id, with_for_update=True)
    assert push is not None
    session.add(attempt)
    if push.status != "pending":  # cancelled while in flight
        return
    now = utcnow()
    push.lease_until = None
    step = next_step(attempt.outcome, push.attempts, settings.fhir_push_max_attempts)
    if step == "retry":
        push.due_at = retry_at(
            push.attempts,
            base=settings.fhir_push_retry_base_seconds,
            ceiling=settings.fhir_push_retry_max_seconds,
            now=now,
        )
        return
    push.status = step
    push.finished_at = now


def start_pusher(runtime: Runtime, settings: IntakeSettings) -> Pusher:
    """Run the pusher for the service's lifetime (one line in the lifespan)."""
    pusher = Pusher(sessions=runtime.sessions, settings=settings, listener=runtime.listener)
    runtime.spawn(pusher.run(), name="intake-fhir-pusher")
    return pusher


async def recent_pushes(
    session: AsyncSession, *, subscription_id: uuid.UUID, limit: int = 20
) -> list[dict[str, Any]]:
    """The subscription's latest pushes, for the integrator to see what arrived (no bodies)."""
    pushes = await session.scalars(
        select(FhirPush)
        .where(FhirPush.subscription_id == subscription_id)
        .order_by(FhirPush.created_at.desc())
        .limit(limit)
    )
    return [
        {
            "id": str(p.id),
            "screening_id": str(p.screening_id),
            "status": p.status,
            "attempts": p.attempts,
            "due_at": p.due_at.isoformat(),
            "finished_at": p.finished_at.isoformat() if p.finished_at else None,
        }
        for p in pushes
    ]
