"""Running notify processes of a test's own, with the session's notify stopped meanwhile.

The session's notify shares the database, so it would claim (and send) the pages a test means
its own notify to send. A test module that needs notify with other settings, or kills notify,
stops the session's one first and restarts it afterwards, then waits until it pages again (its
consumer has to rejoin the group).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient

from deploy.localstack import free_port
from shared.db import asyncpg_dsn
from tests.support.keys import ADMIN
from tests.support.receiver import Receiver
from tests.support.roster import probe_pipeline
from tests.support.services import ROOT, ServiceProcesses


@dataclass
class SoloNotify:
    """One notify process at a time on a fixed port, startable again after a kill."""

    base_env: dict[str, str]
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, wait_for: str = "/healthz", timeout: float = 60.0) -> float:
        """Start it; returns the seconds until `wait_for` answers 200.

        `/healthz` is the process serving (its deliverer runs from then on); `/readyz` also
        waits for its consumer to join the group, which after a SIGKILL takes until Kafka
        drops the dead member.
        """
        env = {
            **self.base_env,
            **self.extra_env,
            "NOTIFY_PORT": str(self.port),
            "NOTIFY_PUBLIC_URL": self.url,
        }
        loop = asyncio.get_running_loop()
        started = loop.time()
        with (self.log_dir / "notify.log").open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; waits are async
                [sys.executable, "-m", "services.notify"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        async with httpx.AsyncClient(base_url=self.url, timeout=2, headers=ADMIN) as client:
            while loop.time() - started < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"notify exited with {self.proc.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(wait_for)).status_code == 200:
                        return loop.time() - started
                await asyncio.sleep(0.02)
        raise RuntimeError(f"notify did not answer {wait_for} in {timeout} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)


@asynccontextmanager
async def session_notify_stopped(
    services: ServiceProcesses, receiver: Receiver
) -> AsyncIterator[None]:
    services.kill("notify", signal.SIGTERM)
    # Alerts of earlier modules would otherwise escalate under this module's notify settings.
    await _close_open_alerts(services.env["DATABASE_URL"])
    try:
        yield
    finally:
        await _close_open_alerts(services.env["DATABASE_URL"])
        receiver.script.clear()
        await asyncio.to_thread(services.start, "notify")
        # A notify this module killed stays a member of the group until its session times out,
        # holding partitions nobody consumes: wait until the group is the session's notify alone.
        await _group_settles(services.env["KAFKA_BOOTSTRAP_SERVERS"], "notify", members=1)
        async with (
            httpx.AsyncClient(base_url=services.url("intake"), timeout=10, headers=ADMIN) as intake,
            httpx.AsyncClient(base_url=services.url("notify"), timeout=10, headers=ADMIN) as notify,
        ):
            await probe_pipeline(intake, notify, receiver)


async def _group_settles(bootstrap: str, group: str, *, members: int, timeout: float = 60) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            [response] = await admin.describe_consumer_groups([group])
            _error, _group, state, _type, _protocol, joined = response.groups[0][:6]
            if state == "Stable" and len(joined) == members:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"group {group} did not settle: {state}, {len(joined)}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _close_open_alerts(database_url: str) -> None:
    """Resolve every alert still paging, so that the alerts of this module (and those it left
    escalating under other settings) do not page into later modules' receivers."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with conn.transaction():
            await conn.execute(
                "UPDATE notify.deliveries SET status = 'cancelled', finished_at = now()"
                " WHERE status = 'pending'"
            )
            await conn.execute(
                "UPDATE notify.alerts SET status = 'resolved', escalate_at = NULL"
                " WHERE status NOT IN ('acknowledged', 'resolved')"
            )
    finally:
        await conn.close()
