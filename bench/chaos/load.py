"""The hotline tool under chaos: an open-loop load that retries as such a tool must.

Every screening carries an `Idempotency-Key`; a connection error, a 5xx or a 429 is retried
with the same key (the other replica first, backoff from 0.2 s to 2 s), for up to GIVE_UP
seconds. Each request's history is kept: when it was first sent, when it was answered 2xx (if
ever), with which screening id, and after how many attempts. A clinician acknowledges half the
alerts as their first page arrives (the others escalate).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import zlib
from dataclasses import dataclass, field

import asyncpg
import httpx

from bench.receiver import Arrival, parse_results
from bench.workload import Screening

GIVE_UP = 90.0


@dataclass
class Sent:
    key: str
    flagged: bool
    first_at: float  # time.monotonic()
    accepted_at: float | None = None
    screening_id: str | None = None
    attempts: int = 0
    statuses: list[str] = field(default_factory=list)
    #: When each failed attempt was answered (or failed), beside its status.
    failed_at: list[float] = field(default_factory=list)

    @property
    def gave_up(self) -> bool:
        return self.accepted_at is None


class Hotline:
    def __init__(self, urls: list[str], api_key: str) -> None:
        self._urls = urls
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=2.0),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=200),
        )
        self.sent: list[Sent] = []
        self._next = 0

    async def post(self, screening: Screening) -> None:
        sent = Sent(key=str(uuid.uuid4()), flagged=screening.flagged, first_at=time.monotonic())
        self.sent.append(sent)
        delay = 0.2
        while time.monotonic() - sent.first_at < GIVE_UP:
            url = self._urls[self._next % len(self._urls)]
            self._next += 1
            sent.attempts += 1
            try:
                response = await self._http.post(
                    f"{url}/v1/screenings",
                    content=screening.body,
                    headers={"Idempotency-Key": sent.key},
                )
            except httpx.HTTPError as exc:
                sent.statuses.append(type(exc).__name__)
                sent.failed_at.append(time.monotonic())
            else:
                if response.status_code < 300:
                    sent.accepted_at = time.monotonic()
                    sent.screening_id = response.json()["id"]
                    return
                sent.statuses.append(str(response.status_code))
                sent.failed_at.append(time.monotonic())
                if response.status_code < 500 and response.status_code != 429:
                    return  # refused for good: a bug in the load, counted as given up
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    async def run(
        self,
        screenings: list[Screening],
        rate: float,
        until: asyncio.Event,
        limit: int | None = None,
    ) -> None:
        """Open loop: one screening every 1/rate s, whatever the answers, until `until` is set
        (or `limit` were sent, which then sets it)."""
        tasks: set[asyncio.Task] = set()
        start = time.monotonic()
        i = 0
        while not until.is_set():
            if limit is not None and i >= limit:
                until.set()
                break
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(self.post(screenings[i % len(screenings)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if tasks:
            await asyncio.gather(*tasks)

    async def aclose(self) -> None:
        await self._http.aclose()


#: The share of alerts the clinician acknowledges at their first page (the others escalate).
ACK_SHARE = 0.5


def acknowledges(screening_id: str, share: float = ACK_SHARE) -> bool:
    """Whether the clinician acknowledges this alert (`share` of them, the same every run)."""
    return zlib.crc32(screening_id.encode()) % 1000 < share * 1000


@dataclass
class Clinician:
    """Acknowledges `share` of the alerts at their first page, through notify's API (any
    replica). The soak acknowledges them all: alerts nobody answers are re-paged every minute for
    ever, a load that grows with the run and is not what a soak measures."""

    receiver_url: str
    notify_urls: list[str]
    api_key: str
    database_url: str
    share: float = ACK_SHARE
    acked: dict[str, float] = field(default_factory=dict)  # screening id -> monotonic time
    pages: list[Arrival] = field(default_factory=list)
    #: Screening ids whose first page arrived and that are still to acknowledge.
    _due: set[str] = field(default_factory=set)

    async def run(self, until: asyncio.Event) -> None:
        async with httpx.AsyncClient(
            timeout=5, headers={"Authorization": f"Bearer {self.api_key}"}
        ) as http:
            while not until.is_set():
                # A fault in progress (PostgreSQL or notify down): the next pass.
                with contextlib.suppress(httpx.HTTPError, OSError, asyncpg.PostgresError):
                    await self._pass(http)
                await asyncio.sleep(0.5)

    async def _pass(self, http: httpx.AsyncClient) -> None:
        # Only the pages that arrived since the last pass (the whole list grows with the run).
        new = parse_results(
            (await http.get(f"{self.receiver_url}/results?from={len(self.pages)}")).content
        )
        self.pages.extend(new)
        self._due.update(
            p.screening_id
            for p in new
            if p.escalation_level == 0 and acknowledges(p.screening_id, self.share)
        )
        self._due.difference_update(self.acked)
        due = set(self._due)
        if not due:
            return
        conn = await asyncpg.connect(self.database_url, timeout=3)
        try:
            rows = await conn.fetch(
                "SELECT id, screening_id FROM notify.alerts WHERE screening_id = ANY($1::uuid[])",
                list(due),
            )
        finally:
            await conn.close()
        # A few at a time: one by one, the soak's clinician (~14 alerts/s) fell behind, and the
        # alerts it had not reached yet escalated and were paged again.
        gate = asyncio.Semaphore(8)

        async def ack(row: asyncpg.Record) -> None:
            async with gate:
                for url in self.notify_urls:
                    try:
                        response = await http.post(f"{url}/v1/alerts/{row['id']}/ack")
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 200:
                        self.acked[str(row["screening_id"])] = time.monotonic()
                        return

        await asyncio.gather(*(ack(row) for row in rows), return_exceptions=True)
