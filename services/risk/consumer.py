"""Kafka handlers of the risk service."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.risk.rules import RuleSet
from services.risk.service import assess_screening
from shared.events import Envelope, ScreeningSubmitted
from shared.kafka import Idempotent
from shared.topics import SCREENING_SUBMITTED


def handlers(*, ruleset: RuleSet) -> dict[str, Idempotent]:
    async def on_screening_submitted(session: AsyncSession, envelope: Envelope) -> None:
        submitted = ScreeningSubmitted.model_validate(envelope.data)
        await assess_screening(
            session,
            submitted=submitted,
            ruleset=ruleset,
            correlation_id=envelope.correlation_id,
            event_id=envelope.event_id,
        )

    # One automatic assessment per screening (a unique index), queued with its event and its
    # event id recorded as applied, in one statement: alone in a poll, one round trip.
    return {SCREENING_SUBMITTED: Idempotent(on_screening_submitted)}
