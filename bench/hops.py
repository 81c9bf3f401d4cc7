"""Where the time goes between the POST and the page, hop by hop.

The services store when each step happened (intake's received_at, risk's assessed_at, notify's
alert created_at and first delivery attempt), in wall-clock time, so for the run's flagged
screenings the latency of each hop can be read back and shown as a distribution. The bench
reads the three schemas directly: it is a tool, not a service. If a column it reads is renamed
some day, the breakdown is left out of the report rather than failing the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import asyncpg

from bench.loadgen import Sent
from bench.receiver import Arrival
from bench.report import Distribution
from shared.db import asyncpg_dsn

log = logging.getLogger(__name__)

_STAGES = """
SELECT s.id::text AS screening_id,
       extract(epoch FROM s.received_at) AS received,
       extract(epoch FROM a.assessed_at) AS assessed,
       extract(epoch FROM al.created_at) AS alerted,
       (SELECT extract(epoch FROM min(da.started_at))
          FROM notify.deliveries d JOIN notify.delivery_attempts da ON da.delivery_id = d.id
         WHERE d.alert_id = al.id AND d.escalation_level = 0) AS sending
  FROM intake.screenings s
  JOIN risk.assessments a ON a.screening_id = s.id AND a.kind = 'automatic'
  JOIN notify.alerts al ON al.screening_id = s.id
 WHERE s.id = ANY($1::uuid[])
"""

HOPS = (
    ("POST to intake's handler", "scheduled", "received"),
    ("intake -> risk (relay, Kafka)", "received", "assessed"),
    ("risk -> notify (relay, Kafka)", "assessed", "alerted"),
    ("alert -> page sent (deliverer)", "alerted", "sending"),
    ("page sent -> received", "sending", "arrived"),
)


async def hop_breakdown(
    database_url: str, sents: Sequence[Sent], arrivals: Sequence[Arrival]
) -> dict[str, Distribution]:
    """Each hop's latency distribution for the flagged screenings that paged."""
    wall = time.time() - time.monotonic()  # monotonic -> wall clock, on this machine
    flagged = {s.screening_id: s for s in sents if s.ok and s.flagged}
    arrived: dict[str, float] = {}
    for a in arrivals:
        if a.escalation_level == 0 and a.screening_id in flagged:
            arrived[a.screening_id] = min(arrived.get(a.screening_id, a.at), a.at) + wall
    try:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            rows = await conn.fetch(_STAGES, list(flagged))
        finally:
            await conn.close()
    except (asyncpg.PostgresError, OSError) as exc:
        log.warning("no hop breakdown: %s", exc)
        return {}
    samples: dict[str, list[float]] = {name: [] for name, _, _ in HOPS}
    for row in rows:
        sid = row["screening_id"]
        if sid not in arrived or row["sending"] is None:
            continue
        times = {
            "scheduled": flagged[sid].scheduled + wall,
            "received": float(row["received"]),
            "assessed": float(row["assessed"]),
            "alerted": float(row["alerted"]),
            "sending": float(row["sending"]),
            "arrived": arrived[sid],
        }
        for name, start, end in HOPS:
            samples[name].append(max(0.0, times[end] - times[start]))
    return {name: Distribution.of(values) for name, values in samples.items() if values}
