"""SIGTERM under load, as in a rolling restart: readiness answers 503 at once while requests are
still served, requests in flight finish, the consumer leaves its group (its partitions move at
once, not after the session timeout), and every screening that got a 2xx is stored and assessed.

A second intake of the test's own takes the load and the signal; the session's intake (same
database, same consumer group) stays up, as the other replica of a rolling restart does.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import asyncpg
import httpx
import pytest

from deploy.localstack import free_port
from tests.support.cases import HIGH_CSSRS, LOW_CSSRS, screening
from tests.support.keys import ADMIN
from tests.support.services import ServiceProcesses
from tests.support.solo import _group_settles

WORKERS = 8
DELAY = 1.5


async def _load(client: httpx.AsyncClient, accepted: list[str], refused: list[str]) -> None:
    """POST screenings until the connection is refused (the listener closed)."""
    i = 0
    while True:
        i += 1
        body = screening(HIGH_CSSRS if i % 3 == 0 else LOW_CSSRS)
        try:
            response = await client.post("/v1/screenings", json=body)
        except httpx.ConnectError:
            return
        except httpx.HTTPError as exc:  # cut mid-request: the client retries elsewhere
            refused.append(type(exc).__name__)
            return
        if response.status_code < 300:
            accepted.append(response.json()["id"])
        else:
            refused.append(str(response.status_code))


async def test_sigterm_under_load_loses_no_accepted_screening(
    services: ServiceProcesses, db: asyncpg.Pool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    second = ServiceProcesses(
        env={**services.env, "SHUTDOWN_DELAY_SECONDS": str(DELAY)},
        ports={"intake": free_port()},
        log_dir=tmp_path_factory.mktemp("graceful"),
    )
    await asyncio.to_thread(second.start, "intake")
    await _group_settles(services.env["KAFKA_BOOTSTRAP_SERVERS"], "intake", members=2)
    accepted: list[str] = []
    refused: list[str] = []
    async with httpx.AsyncClient(base_url=second.url("intake"), headers=ADMIN, timeout=30) as c:
        load = [asyncio.create_task(_load(c, accepted, refused)) for _ in range(WORKERS)]
        await asyncio.sleep(1.0)
        before = len(accepted)
        assert before > 0, f"no screening accepted before the signal: {refused}"
        proc = second.procs["intake"]
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        # Not ready at once, while it still serves (the delay a load balancer needs).
        async with httpx.AsyncClient(base_url=second.url("intake"), timeout=2) as probe:
            ready = await probe.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"]["running"] is False
            assert time.monotonic() - signalled < DELAY
            assert (await probe.get("/healthz")).status_code == 200

        await asyncio.wait_for(asyncio.gather(*load), timeout=30)
        exited_at = time.monotonic()
        returncode = await asyncio.to_thread(proc.wait, 60)  # a loaded CI machine is slow
    assert len(accepted) > before, "requests were served during the delay"
    assert not [r for r in refused if r.startswith("5")], refused
    assert returncode in (0, -signal.SIGTERM), second.log_tail("intake")

    # It left the group: the session's intake holds every partition again within seconds, not
    # after the ten-second session timeout a vanished member costs.
    await _group_settles(services.env["KAFKA_BOOTSTRAP_SERVERS"], "intake", members=1, timeout=5)
    assert time.monotonic() - exited_at < 8

    # Every 2xx: stored, and its event reached risk (assessed), none lost on the way out.
    ids = [uuid.UUID(sid) for sid in accepted]
    deadline = time.monotonic() + 30
    while True:
        statuses = dict(
            await db.fetch("SELECT id, status FROM intake.screenings WHERE id = ANY($1)", ids)
        )
        waiting = [sid for sid in ids if statuses.get(sid) in (None, "received")]
        if not waiting or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert len(statuses) == len(ids), "a screening answered 2xx is not stored"
    assert not waiting, f"{len(waiting)} of {len(ids)} accepted screenings never assessed"
    log = second.log_tail("intake", lines=200)
    assert "not ready from now" in log, log
