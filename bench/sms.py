"""`make bench BENCH_ARGS="--sms"`: every flagged screening pages one clinician by text message,
through notify's Twilio channel and the bundled Twilio stand-in (deploy/phones), and the run
times POST to the text's arrival at the provider (its creation, to the microsecond)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import asyncpg
import httpx

from bench.receiver import Arrival
from shared.db import asyncpg_dsn

#: The on-call clinician's phone in an SMS run.
PHONE = "+15555550123"
#: Every risk level that pages follows the bench's policy: one level, this clinician's phone.
FLAGGED_LEVELS = ["moderate", "high", "imminent"]


async def page_by_text(notify_url: str, api_key: str) -> None:
    """The bench's on-call set-up: one clinician, one sms method, a policy for every level."""
    auth = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=notify_url, headers=auth, timeout=30) as notify:
        made = await notify.post(
            "/v1/clinicians",
            json={"name": "Bench On Call", "contact_methods": [{"kind": "sms", "address": PHONE}]},
        )
        made.raise_for_status()
        policy = await notify.post(
            "/v1/policies",
            json={
                "name": "bench: text the on-call phone",
                "risk_levels": FLAGGED_LEVELS,
                "levels": [{"clinician_ids": [made.json()["id"]], "delay_seconds": 3600}],
            },
        )
        policy.raise_for_status()


class TextSource:
    """The pages of an SMS run: the texts the provider took for the bench's phone."""

    def __init__(self, phones_url: str, database_url: str) -> None:
        self._http = httpx.AsyncClient(base_url=phones_url, timeout=30)
        self._dsn = asyncpg_dsn(database_url)
        self._screenings: dict[uuid.UUID, str] = {}
        #: time.time() minus time.monotonic(): the provider's clock in the bench's.
        self._offset = time.time() - time.monotonic()

    async def _texts(self) -> list[dict[str, object]]:
        found = await self._http.get(f"/_local/phones/{PHONE}")
        if found.status_code == 404:
            return []
        found.raise_for_status()
        return [m for m in found.json()["messages"] if m["direction"] == "outbound-api"]

    async def count(self) -> int:
        return len(await self._texts())

    async def arrivals(self) -> list[Arrival]:
        texts = await self._texts()
        alert_ids = {_alert_of(str(t["body"])) for t in texts} - {None}
        missing = [a for a in alert_ids if a not in self._screenings]
        if missing:
            conn = await asyncpg.connect(self._dsn)
            try:
                rows = await conn.fetch(
                    "SELECT id, screening_id FROM notify.alerts WHERE id = ANY($1::uuid[])",
                    missing,
                )
            finally:
                await conn.close()
            self._screenings.update({r["id"]: str(r["screening_id"]) for r in rows})
        out = []
        for text in texts:
            alert_id = _alert_of(str(text["body"]))
            screening = self._screenings.get(alert_id) if alert_id else None
            if screening is None:
                continue
            created = datetime.fromisoformat(str(text["created_at"])).timestamp()
            out.append(Arrival(screening, created - self._offset, 0, True, str(text["sid"])))
        return out

    async def aclose(self) -> None:
        await self._http.aclose()


def _alert_of(body: str) -> uuid.UUID | None:
    """The alert a page's text names (the console's link ends with its id)."""
    _, _, tail = body.rpartition("/alerts/")
    try:
        return uuid.UUID(tail.strip()[:36])
    except ValueError:
        return None
