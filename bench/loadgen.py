"""The open-loop load generator: screenings leave on a fixed schedule, whatever the answers do.

A closed loop ("send the next when the last one returned") slows down with the system and so
hides its slow responses (coordinated omission). Here every screening has a send time fixed
before the run, latencies are measured from that scheduled time, and a send that starts late
(the generator itself fell behind) is counted, so the run says when its own figures are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.client import HttpClient
from bench.workload import Screening

#: A send that starts this much after its scheduled time counts as late.
LATE_AFTER = 0.005


@dataclass
class Sent:
    """What happened to one screening's POST; times are `time.monotonic()`."""

    index: int
    flagged: bool
    scheduled: float
    started: float = 0.0
    finished: float = 0.0
    status: int | None = None
    screening_id: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (200, 202) and self.screening_id is not None


@dataclass
class Progress:
    """Counters the progress bar shows while the run goes on."""

    started: int = 0
    done: int = 0
    errors: int = 0
    late: int = 0


async def _post(client: HttpClient, raw: bytes, sent: Sent, progress: Progress) -> None:
    sent.started = time.monotonic()
    if sent.started - sent.scheduled > LATE_AFTER:
        progress.late += 1
    progress.started += 1
    try:
        status, body = await client.send(raw)
        sent.status = status
        if status in (200, 202):
            sent.screening_id = str(json.loads(body)["id"])
        else:
            sent.error = f"HTTP {status}"
    except (OSError, ValueError, KeyError) as exc:
        sent.error = type(exc).__name__
    sent.finished = time.monotonic()
    progress.done += 1
    if not sent.ok:
        progress.errors += 1


async def run_open_loop(
    intake_url: str,
    screenings: Sequence[Screening],
    *,
    rate: float,
    progress: Progress | None = None,
    max_connections: int = 256,
    api_key: str | None = None,
) -> list[Sent]:
    """POST `screenings` to intake at `rate` per second; returns one `Sent` per screening once
    every answer is in (or failed)."""
    progress = progress or Progress()
    client = HttpClient(intake_url, max_connections=max_connections, api_key=api_key)
    raws = [client.post_bytes("/v1/screenings", s.body) for s in screenings]
    start = time.monotonic() + 0.2
    sents = [
        Sent(index=i, flagged=s.flagged, scheduled=start + i / rate)
        for i, s in enumerate(screenings)
    ]
    tasks: set[asyncio.Task[None]] = set()
    try:
        for sent, raw in zip(sents, raws, strict=True):
            delay = sent.scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(_post(client, raw, sent, progress))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks))
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await client.aclose()
    return sents
