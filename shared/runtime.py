"""The long-lived resources of one service, opened and closed by its lifespan.

Every service has the same skeleton: an engine and session factory, an idempotent producer, an
outbox relay, and (for the services that consume) one consumer loop. `Runtime` opens them in
order and closes them in reverse, letting in-flight work finish, so the three apps' lifespans stay
a few lines each.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth.credentials import parse_bootstrap
from shared.auth.directory import CredentialDirectory, follow_access_topic
from shared.auth.guard import Gate
from shared.auth.oidc import OidcVerifier
from shared.auth.ratelimit import RateLimits
from shared.auth.signing import RecordVerifier
from shared.db import (
    SessionFactory,
    asyncpg_dsn,
    create_engine,
    create_session_factory,
    database_ready,
    read_session_factory,
    warm_pool,
)
from shared.kafka import (
    Batch,
    EventConsumer,
    Handler,
    Idempotent,
    Producer,
    create_producer,
    processed_events_table,
)
from shared.metrics import Probe, ServiceMetrics
from shared.outbox import OutboxRelay, notify_channel, outbox_table
from shared.phi import RING, KeyRing, Sealed, check_sealed, require_ring, watch_sealed
from shared.retention import Pruner, Rule, processed_events
from shared.settings import ServiceSettings
from shared.wakeup import Listener

log = logging.getLogger(__name__)


def plumbing_tables(metadata: MetaData) -> tuple:
    """The outbox and processed-events tables in `metadata`'s schema."""
    return outbox_table(metadata), processed_events_table(metadata)


@dataclass
class Runtime:
    settings: ServiceSettings
    schema: str
    engine: AsyncEngine
    sessions: SessionFactory
    producer: Producer
    relay: OutboxRelay
    #: The LISTEN connection the service's wake loops share (shared/wakeup.py).
    listener: Listener
    gate: Gate
    #: The service's outbox (its events and its audit entries go out through it).
    outbox: Table
    #: A small pool of its own for the audit entries a request writes beside its work (a read,
    #: a refusal): a request holding the main pool's connection never waits on the same pool.
    audit_sessions: SessionFactory
    #: Sessions of the same pool that open no transaction: each statement commits on its own
    #: (shared/http.py `Session`, the read routes' session; see `read_session_factory`).
    reads: SessionFactory | None = None
    #: The PHI key ring (PHI_KEYS); None when unset. Sessions carry it in `info` too.
    phi: KeyRing | None = None
    consumer: EventConsumer | None = None
    consumer_task: asyncio.Task | None = None
    pruner: Pruner | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def readiness(self) -> dict[str, bool]:
        checks = {
            "database": await database_ready(self.engine),
            "kafka": await self._kafka_ready(),
            # Until the access topic is read to its end every key is refused (fail closed), but
            # on intake, which asks its own table of keys meanwhile.
            "credentials": self.gate.directory.answering,
        }
        if self.consumer is not None:
            # Joined, and with partitions, or without for less than a rebalance's worth (a
            # replica more than the partitions stays idle: not ready for what it cannot do).
            checks["consumer_group"] = (
                self.consumer.joined.is_set()
                and self.consumer.partitionless_for < PARTITIONLESS_READY_SECONDS
            )
        return checks

    async def _kafka_ready(self) -> bool:
        if not self.producer.healthy:  # its sender died: nothing would be published
            return False
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), timeout=2)
        except Exception:
            return False
        return all(not t.done() for t in self.tasks)

    def spawn(self, coro: Coroutine[Any, Any, object], *, name: str) -> asyncio.Task:
        """Run a background loop for the service's lifetime; a crash is logged, not swallowed."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_log_crash)
        self.tasks.append(task)
        return task


#: How long a consumer may be without partitions (a rebalance) and its replica still be ready.
PARTITIONLESS_READY_SECONDS = 30.0
#: How long the consumer may take to finish its batch, commit and leave its group at a stop.
CONSUMER_STOP_SECONDS = 5.0
#: How long the last relay pass may take at a stop (what is left goes out at the next start).
RELAY_STOP_SECONDS = 5.0
#: Net allocations between two young garbage collections (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


async def _stop(rt: Runtime) -> None:
    """The end of a graceful stop (shared/serve.py), after the last request: the consumer
    leaves its group with its offsets committed, the other loops end (a page on the wire is let
    finish), and events committed until now are published."""
    if rt.consumer is not None and rt.consumer_task is not None:
        rt.consumer.close()
        done, _ = await asyncio.wait([rt.consumer_task], timeout=CONSUMER_STOP_SECONDS)
        if not done:
            log.warning("consumer did not stop in %.0f s; cancelling it", CONSUMER_STOP_SECONDS)
    for task in reversed(rt.tasks):
        task.cancel()
    await asyncio.gather(*rt.tasks, return_exceptions=True)
    try:
        await asyncio.wait_for(rt.relay.publish_all(), RELAY_STOP_SECONDS)
    except Exception as exc:  # the broker is away: the outbox keeps them for the next start
        log.warning(
            "outbox not emptied at stop (%s); the next start sends the rest", type(exc).__name__
        )
    finally:
        await rt.relay.close()


async def _keep_producing(producer: Producer, every: float = 1.0) -> None:
    """Renew a producer whose sender died even while nothing is sent (readiness recovers)."""
    while True:
        await asyncio.sleep(every)
        if not producer.healthy:
            try:
                await producer.renew()
            except Exception:
                log.exception("could not make a new Kafka producer; trying again")


def _log_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s died", task.get_name(), exc_info=task.exception())


def access_verifier_of(settings: ServiceSettings) -> RecordVerifier:
    """ACCESS_VERIFY_KEY, required: a service that cannot tell intake's records of the access
    topic from anyone else's would either take every key written there (whoever can write to
    Kafka could mint an admin key) or none (every key refused); it says so and does not start."""
    if not settings.access_verify_key:
        raise RuntimeError(
            "ACCESS_VERIFY_KEY is not set: give every service intake's public key for the access"
            " topic (make run keeps it in .local/run/secrets/access-verify-key)"
        )
    return RecordVerifier.from_setting(settings.access_verify_key)


@contextlib.asynccontextmanager
async def open_runtime(
    settings: ServiceSettings,
    *,
    schema: str,
    metadata: MetaData,
    consumer_group: str | None = None,
    handlers: Mapping[str, Handler | Batch | Idempotent] | None = None,
    gathered: Collection[str] = (),
    prepare: Callable[[SessionFactory], Awaitable[None]] | None = None,
    sealed: Sequence[Sealed] = (),
    retention: Sequence[Rule] = (),
    metrics: ServiceMetrics | None = None,
    probes: Sequence[Probe] = (),
    access_verifier: RecordVerifier | None = None,
) -> AsyncIterator[Runtime]:
    """Open everything a service needs; on exit stop intake of work first, then the rest.

    `prepare` runs against the database before any consumer or relay starts. `sealed` are the
    service's encrypted columns: with encrypted rows there and no PHI_KEYS it refuses to start.
    `retention`: the service's tables pruned besides its processed events (shared/retention.py).
    `metrics`: the app's (shared/metrics.py), given the runtime's counters and the service's
    `probes`, gauges asked of its database at scrape time. `access_verifier`: intake's public key
    for the access topic's records; ACCESS_VERIFY_KEY's when not given, and without either the
    service refuses to start.
    """
    verifier = access_verifier or access_verifier_of(settings)
    outbox, processed = (
        metadata.tables[f"{schema}.outbox"],
        metadata.tables[f"{schema}.processed_events"],
    )
    security = settings.kafka_options()
    directory = CredentialDirectory(
        bootstrap=parse_bootstrap(settings.api_keys_bootstrap),
        max_staleness=settings.credentials_max_staleness_seconds,
        verifier=verifier,
    )
    ring = KeyRing.parse(settings.phi_keys)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    sessions = create_session_factory(engine, info={RING: ring})
    await warm_pool(engine, min(4, settings.db_pool_size))
    await require_ring(sessions, ring, sealed)
    sealed_at_start = await check_sealed(sessions, ring, sealed, schema)
    if prepare is not None:
        await prepare(sessions)
    producer = Producer(
        lambda: create_producer(settings.kafka_bootstrap_servers, client_id=schema, **security)
    )
    await producer.start()
    dsn = asyncpg_dsn(settings.database_url)
    listener = Listener(dsn, name=f"{schema} listener")
    relay = OutboxRelay(
        sessions=sessions,
        outbox=outbox,
        producer=producer,
        dsn=dsn,
        listener=listener,
        channel=notify_channel(schema),
        sweep_seconds=settings.outbox_sweep_seconds,
        on_published=metrics.outbox_publish.observe if metrics is not None else None,
    )
    oidc_http = httpx.AsyncClient(timeout=5)
    gate = Gate(
        directory=directory,
        limits=RateLimits(
            writes=settings.rate_limits,
            failed_auth=settings.auth_failure_limit,
            storage_uri=settings.rate_limit_storage_uri,
            recorded_refusals=settings.audit_refusal_limit,
        ),
        oidc=OidcVerifier(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience or "",
            roles_claim=settings.oidc_roles_claim,
            systems_claim=settings.oidc_systems_claim,
            refresh_seconds=settings.oidc_jwks_refresh_seconds,
            http=oidc_http,
        )
        if settings.oidc_issuer
        else None,
    )
    audit_engine = create_engine(
        settings.database_url, pool_size=max(2, settings.db_pool_size // 4)
    )
    rt = Runtime(
        settings,
        schema,
        engine,
        sessions,
        producer,
        relay,
        listener,
        gate,
        outbox,
        create_session_factory(audit_engine),
        read_session_factory(engine, info={RING: ring}),
        ring,
    )
    rt.spawn(
        follow_access_topic(
            directory,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=f"{schema}-credentials",
            security=security,
        ),
        name=f"{schema}-credentials",
    )
    rt.spawn(relay.run(), name=f"{schema}-outbox-relay")
    if ring is not None and sealed and not sealed_at_start:
        rt.spawn(watch_sealed(sessions, ring, schema), name=f"{schema}-phi-sealed")
    rt.spawn(_keep_producing(producer), name=f"{schema}-producer-watch")
    rt.pruner = Pruner(
        sessions=sessions,
        rules=[*retention, processed_events(schema, settings.processed_events_days)],
        interval_seconds=settings.prune_interval_seconds,
    )
    rt.spawn(rt.pruner.run(), name=f"{schema}-retention")
    if handlers:
        rt.consumer = EventConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=consumer_group or schema,
            handlers=handlers,
            sessions=sessions,
            processed_events=processed,
            producer=producer,
            security=security,
            gathered=gathered,
        )
        rt.consumer_task = rt.spawn(rt.consumer.run(), name=f"{schema}-consumer")
    if metrics is not None:
        metrics.attach(rt, probes)
    # Everything loaded at start (FastAPI's and pydantic's models, FHIR's, the rule set: some
    # 190,000 objects) moves to the permanent generation, so a full collection scans only what
    # requests allocate: ~0.01 ms instead of a ~105 ms pause of every request in flight.
    gc.collect()
    gc.freeze()
    # A young collection every 10,000 allocations net, not every 700: a request's or a poll's
    # temporaries mostly die by reference counting before one runs, so each finds little and
    # they run a fourteenth as often (young collections were ~3 % of intake's CPU under load).
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    try:
        yield rt
    finally:
        await _stop(rt)
        await producer.stop()  # flushes what is still buffered
        await oidc_http.aclose()
        await audit_engine.dispose()
        await engine.dispose()
