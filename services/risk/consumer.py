"""Kafka handlers of the risk service."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.risk.rules import RuleSet
from services.risk.service import assess_screening
from shared.events import Envelope, ScreeningSubmitted
from shared.kafka import Handler
from shared.topics import SCREENING_SUBMITTED


def handlers(*, ruleset: RuleSet) -> dict[str, Handler]:
    async def on_screening_submitted(session: AsyncSession, envelope: Envelope) -> None:
        submitted = ScreeningSubmitted.model_validate(envelope.data)
        await assess_screening(
            session, submitted=submitted, ruleset=ruleset, correlation_id=envelope.correlation_id
        )

    return {SCREENING_SUBMITTED: on_screening_submitted}
