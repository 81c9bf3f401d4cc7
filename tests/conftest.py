"""Fixtures: the real local stack (Kafka and PostgreSQL), migrated, with the three services.

One stack per test session, on free ports and in a temporary folder, so a `make run` on the same
machine is not disturbed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from deploy.localstack import LocalStack, free_port
from shared.db import asyncpg_dsn
from shared.migrate import migrate
from tests.support.keys import (
    ACCESS_SIGNING_KEY,
    ACCESS_VERIFY_KEY,
    ADMIN,
    AUDIT_SIGNING_KEY,
    BOOTSTRAP,
    PHI_KEYS,
)
from tests.support.otlp import Collector
from tests.support.pagers import Pagers
from tests.support.phones import Phones
from tests.support.receiver import Receiver
from tests.support.roster import Roster
from tests.support.services import CONSOLE_PORT, ServiceProcesses
from tests.support.slow import SlowServer

WEBHOOK_SECRET = "test-webhook-secret"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(
        tmp_path_factory.mktemp("stack"),
        kafka_port=free_port(),
        controller_port=free_port(),
        partitions=3,
    )
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
async def database_url(stack: LocalStack) -> str:
    await migrate(stack.database_url)
    return stack.database_url


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A plain asyncpg pool for tests to look at what the services stored."""
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver(port=free_port())
    await hook.start()
    yield hook
    await hook.stop()


@pytest.fixture(scope="session")
async def collector() -> AsyncIterator[Collector]:
    """Where the session's services export their traces (OTLP/HTTP)."""
    otlp = Collector(port=free_port())
    await otlp.start()
    yield otlp
    await otlp.stop()


@pytest.fixture(scope="session")
def services(
    stack: LocalStack,
    database_url: str,
    receiver: Receiver,
    collector: Collector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcesses]:
    ports = {name: free_port() for name in ("intake", "risk", "notify")}
    logs = tmp_path_factory.mktemp("logs")
    notify_url = f"http://127.0.0.1:{ports['notify']}"
    # Pages by SMS and voice go to the bundled Twilio stand-in, as `make run` has it.
    phones = Phones(
        port=free_port(), sms_url=f"{notify_url}/v1/twilio/sms", log=logs / "phones.log"
    )
    phones.start()
    procs = ServiceProcesses(
        env={
            **phones.notify_env(),
            "NOTIFY_PUBLIC_URL": notify_url,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
            "ONCALL_WEBHOOK_URL": receiver.url,
            "ALERT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "RETRY_BASE_SECONDS": "0.1",
            # A rest-hook push gives up after 3 s, all of it
            # (tests/intake/fhir/test_resthook_limits.py).
            "FHIR_PUSH_TIMEOUT_SECONDS": "3",
            "FINAL_REPAGE_SECONDS": "1",
            # Some tests leave a screening unassessed on purpose (the dead-letter test's poison
            # submission). With the default 30 s, notify's watchdog pages it "assessment
            # delayed" at `high` half a minute later, through whatever policy another test has
            # bound to `high` by then, and that page takes a reply scripted for that test's
            # pager (seen: the final-repage test got 2 pages of 3, its scripted 410 spent on the
            # watchdog's page). The watchdog is tested on a notify of its own
            # (tests/notify/watchdog/test_assessment_watchdog.py, 2 s).
            "ASSESSMENT_DEADLINE_SECONDS": "3600",
            "API_KEYS_BOOTSTRAP": BOOTSTRAP,
            # The route matrix alone presents ~50 bad credentials from 127.0.0.1; the limit on
            # them is tested on an intake of its own (tests/e2e/test_access_settings.py).
            "AUTH_FAILURE_LIMIT": "100000/minute",
            "AUDIT_SIGNING_KEY": AUDIT_SIGNING_KEY,
            "PHI_KEYS": PHI_KEYS,
            # The test processes share one environment: intake uses the first, all the second.
            "ACCESS_SIGNING_KEY": ACCESS_SIGNING_KEY,
            "ACCESS_VERIFY_KEY": ACCESS_VERIFY_KEY,
            "AUDIT_CHECKPOINT_SECONDS": "1",
            # Clinicians' webhooks and EHR rest-hooks of the tests are plain HTTP on loopback.
            "OUTBOUND_ALLOW_HTTP": "true",
            "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
            # Every e2e test runs traced: spans go to the session's collector, in 0.1 s.
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            # The ack page's link to the case (tests/console).
            "CONSOLE_PUBLIC_URL": f"http://127.0.0.1:{CONSOLE_PORT}",
            "PATH": __import__("os").environ["PATH"],
        },
        ports=ports,
        log_dir=logs,
        phones=phones,
    )
    procs.start()
    try:
        yield procs
    finally:
        procs.stop()
        phones.stop()


@pytest.fixture(scope="session")
def phones(services: ServiceProcesses) -> Phones:
    """The clinicians' phones: the bundled Twilio stand-in notify texts and calls."""
    assert services.phones is not None
    return services.phones


@pytest.fixture
async def intake(services: ServiceProcesses) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=services.url("intake"), timeout=10, headers=ADMIN
    ) as client:
        yield client


@pytest.fixture
async def notify(services: ServiceProcesses) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=services.url("notify"), timeout=10, headers=ADMIN
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def pagers() -> AsyncIterator[Pagers]:
    """The clinicians' webhook endpoints, one server per module."""
    server = Pagers(port=free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def roster(
    notify: httpx.AsyncClient, pagers: Pagers, db: asyncpg.Pool
) -> AsyncIterator[Roster]:
    """Clinicians, schedules and policies a test makes through notify's API, removed after it."""
    on_call = Roster(notify, pagers, db)
    yield on_call
    await on_call.cleanup()


@pytest.fixture
async def drip() -> AsyncIterator[SlowServer]:
    """An endpoint that answers a byte at a time, slower than any deadline."""
    server = SlowServer(port=free_port(), mode="drip")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def endless() -> AsyncIterator[SlowServer]:
    """An endpoint whose answer never ends."""
    server = SlowServer(port=free_port(), mode="endless")
    await server.start()
    yield server
    await server.stop()
