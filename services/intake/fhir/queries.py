"""The rest-hooks' statements: who listens for a screening's RiskAssessment, and the pusher's
claim of due pushes with its share per endpoint.

The look-up of subscribers runs for every assessment, so it goes straight to asyncpg; the
pusher's statements are SQLAlchemy Core, built once (`claim`, `next_due`), parameters `share`,
`limit` and `lease` bound at each call.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Interval,
    Select,
    Update,
    bindparam,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, aliased

from services.intake.fhir.models import FhirPush, FhirSubscription

#: The active rest-hooks of the identifier systems these screenings' QuestionnaireResponses came
#: with, by screening; none for a screening that did not come over FHIR (one look-up a poll).
SUBSCRIBERS = """
    SELECT r.screening_id, s.id FROM intake.fhir_responses AS r
      JOIN intake.fhir_subscriptions AS s ON s.identifier_system = r.identifier_system
     WHERE r.screening_id = ANY($1::uuid[]) AND s.status = 'active'
"""

#: Where a push goes, for sharing the slots out: the endpoint's scheme-less authority (host and
#: port), so one EHR's endpoints on one host share one share.
_AUTHORITY = r"^[^:/?#]+://([^/?#]*)"


def _origin(endpoint: InstrumentedAttribute[str]) -> ColumnElement[str]:
    return func.lower(func.substring(endpoint, literal(_AUTHORITY)))


def _claimable(push: type[FhirPush]) -> ColumnElement[bool]:
    """Pending, and not on the wire: never leased, or its lease ran out."""
    return or_(push.lease_until.is_(None), push.lease_until < func.now())


def _line() -> CTE:
    """Pushes due now, each with its origin's place in line: pushes of that origin on the wire
    (leased, by any replica) plus its rank among that origin's due ones. A push whose place is
    past the share waits: one endpoint, however slow, holds at most its share of the slots."""
    bp, bs = aliased(FhirPush, name="bp"), aliased(FhirSubscription, name="bs")
    busy_origin = _origin(bs.endpoint).label("origin")
    busy = (
        select(busy_origin, func.count().label("n"))
        .join_from(bp, bs, bs.id == bp.subscription_id)
        .where(bp.status == "pending", bp.lease_until >= func.now())
        .group_by(busy_origin)
        .cte("busy")
    )
    dp, ds = aliased(FhirPush, name="dp"), aliased(FhirSubscription, name="ds")
    due = (
        select(dp.id, dp.due_at, _origin(ds.endpoint).label("origin"))
        .join_from(dp, ds, ds.id == dp.subscription_id)
        .where(dp.status == "pending", dp.due_at <= func.now(), _claimable(dp))
        .cte("due")
    )
    rank = func.row_number().over(partition_by=due.c.origin, order_by=(due.c.due_at, due.c.id))
    return (
        select(
            due.c.id,
            due.c.due_at,
            due.c.origin,
            (func.coalesce(busy.c.n, 0) + rank).label("place"),
        )
        .outerjoin_from(due, busy, busy.c.origin == due.c.origin)
        .cte("line")
    )


def _claim() -> Update:
    """Lease up to `limit` pushes within their origins' `share`, for `lease`; each claimed once
    across replicas (`FOR UPDATE SKIP LOCKED`, re-checked under the lock)."""
    line = _line()
    chosen = (
        select(line.c.id)
        .where(line.c.place <= bindparam("share"))
        .order_by(line.c.due_at)
        .limit(bindparam("limit"))
    )
    locked = aliased(FhirPush, name="locked")
    free = (
        select(locked.id)
        .where(
            locked.id.in_(chosen),
            locked.status == "pending",
            locked.due_at <= func.now(),
            _claimable(locked),
        )
        .with_for_update(skip_locked=True)
    )
    return (
        update(FhirPush)
        .where(FhirSubscription.id == FhirPush.subscription_id, FhirPush.id.in_(free))
        .values(
            lease_until=func.now() + bindparam("lease", type_=Interval()),
            attempts=FhirPush.attempts + 1,
        )
        .returning(
            FhirPush.id,
            FhirPush.attempts,
            FhirPush.body,
            FhirSubscription.endpoint,
            FhirSubscription.id.label("subscription_id"),
            FhirSubscription.secret,
        )
        # A plain UPDATE: nothing of it is in the session to synchronise.
        .execution_options(synchronize_session=False)
    )


def _next_due() -> Select[tuple[Any]]:
    """When the next push may start: the next due one of an origin with a free place in its
    share, or the first lease that runs out (a push on the wire is due again, or frees a place,
    then), or the next retry."""
    line = _line()
    leased, waiting = aliased(FhirPush, name="leased"), aliased(FhirPush, name="waiting")
    return select(
        func.least(
            select(func.min(line.c.due_at))
            .where(line.c.place <= bindparam("share"))
            .scalar_subquery(),
            select(func.min(func.greatest(leased.due_at, leased.lease_until)))
            .where(leased.status == "pending", leased.lease_until >= func.now())
            .scalar_subquery(),
            select(func.min(waiting.due_at))
            .where(waiting.status == "pending", waiting.due_at > func.now(), _claimable(waiting))
            .scalar_subquery(),
        )
    )


CLAIM = _claim()
NEXT_DUE = _next_due()
