"""Setting up on-call configuration through notify's HTTP API, and cleaning it up after a test.

Policies are global (one per risk level), so a test that binds one must unbind it before the
next test: `Roster.cleanup` resolves the alerts that followed the test's policies (no page of
theirs goes out later) and deletes the policies.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from tests.support.cases import IMMINENT_ASQ, screening
from tests.support.pagers import Pagers
from tests.support.receiver import Receiver


@dataclass(frozen=True)
class Clinician:
    id: str
    pager: str  # the pager's name in Pagers


@dataclass
class Roster:
    notify: httpx.AsyncClient
    pagers: Pagers
    db: asyncpg.Pool
    policies: list[str] = field(default_factory=list)

    async def clinician(
        self, name: str, *, email: str | None = None, webhook: bool = True, delay: int = 0
    ) -> Clinician:
        pager = f"{name}-{uuid.uuid4().hex[:6]}"
        methods: list[dict[str, Any]] = []
        if webhook:
            methods.append({"kind": "webhook", "address": self.pagers.url(pager)})
        if email:
            methods.append({"kind": "email", "address": email, "delay_seconds": delay})
        response = await self.notify.post(
            "/v1/clinicians", json={"name": name, "contact_methods": methods}
        )
        assert response.status_code == 201, response.text
        return Clinician(response.json()["id"], pager)

    async def policy(
        self, risk_levels: list[str], levels: list[dict[str, Any]], *, repeats: int = 0
    ) -> str:
        body = {"name": f"test {uuid.uuid4().hex[:6]}", "risk_levels": risk_levels}
        response = await self.notify.post(
            "/v1/policies", json={**body, "levels": levels, "repeats": repeats}
        )
        assert response.status_code == 201, response.text
        self.policies.append(response.json()["id"])
        return response.json()["id"]

    async def cleanup(self) -> None:
        for policy_id in self.policies:
            open_alerts = await self.db.fetch(
                "SELECT id FROM notify.alerts WHERE policy_id = $1 AND status <> 'resolved'",
                uuid.UUID(policy_id),
            )
            for row in open_alerts:
                await self.notify.post(f"/v1/alerts/{row['id']}/resolve")
            await self.notify.delete(f"/v1/policies/{policy_id}")
        self.policies.clear()


async def wait_until(check, *, timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll an async `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} not reached in {timeout} s")


async def delivered_at(db: asyncpg.Pool, alert_id: str, level: int, repeat: int = 0) -> float:
    """When a step's first page was recorded delivered (its deadline counts from then)."""
    row = await wait_until(
        lambda: db.fetchrow(
            "SELECT extract(epoch FROM min(finished_at)) AS t FROM notify.deliveries"
            " WHERE alert_id = $1 AND escalation_level = $2 AND repeat_round = $3"
            " AND status = 'delivered' HAVING count(*) > 0",
            uuid.UUID(alert_id),
            level,
            repeat,
        ),
        what=f"level {level} delivered",
    )
    return float(row["t"])


async def probe_pipeline(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, receiver: Receiver
) -> None:
    """Wait until the session's notify consumes and pages again (after its restart), then ack."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sid = (await intake.post("/v1/screenings", json=screening(IMMINENT_ASQ))).json()["id"]
        pages = await receiver.wait_for(sid, timeout=20)
        if pages:
            await notify.post(f"/v1/alerts/{pages[0].json['alert_id']}/ack", json={})
            return
    raise AssertionError("the session's notify did not page again after its restart")
