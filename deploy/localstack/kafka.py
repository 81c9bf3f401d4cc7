"""Apache Kafka 4.x (KRaft, broker and controller in one JVM) from its Maven Central jars, and
the topics the services need."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import psutil

from deploy.localstack.common import (
    _POLL,
    KAFKA_LIBS,
    KAFKA_POM,
    LocalStackError,
    _alive,
    _file_lock,
    _tail,
    _tcp_open,
    _terminate,
    port_in_use,
)
from shared.topics import TOPIC_CONFIGS

_log = logging.getLogger(__name__)

# Kafka jars


def ensure_kafka_jars(pom: Path = KAFKA_POM, libs: Path = KAFKA_LIBS) -> Path:
    """Fetch the broker's jars with Maven unless libs/ already matches the pom.

    A checksum of the pom is kept next to the jars: editing the pom (a version bump, a logging
    binding) refetches instead of leaving two versions of a jar on the classpath.
    """
    marker = libs / ".pom.sha256"
    want = hashlib.sha256(pom.read_bytes()).hexdigest()

    def current() -> bool:
        return marker.exists() and marker.read_text().strip() == want

    if current():  # the common case, lock-free: libs/ may be read-only for this user
        return libs
    with _file_lock(libs / ".lock"):
        if current():  # another process fetched them while we waited
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalStackError(
                f"the Kafka jars are missing from {libs} and Maven (`mvn`) is not on PATH"
            )
        for jar in libs.glob("*.jar"):
            jar.unlink()
        _log.info("fetching the Kafka jars with Maven into %s", libs)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise LocalStackError(
                f"Maven could not fetch the Kafka jars ({' '.join(cmd)}):\n"
                f"{done.stdout[-4000:]}{done.stderr[-4000:]}"
            )
        marker.write_text(want + "\n")
    return libs


# --------------------------------------------------------------------------------------------
# Kafka


def _cluster_id() -> str:
    """A KRaft cluster id as Kafka's Uuid.randomUuid prints it (URL-safe base64, no padding,
    never starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def replication(brokers: int) -> tuple[int, int]:
    """Replication factor and min.insync.replicas for a cluster of `brokers` nodes: 1 and 1
    alone; 3 and 2 from three nodes on (one broker may die and no acks=all write fails)."""
    return (1, 1) if brokers < 3 else (3, 2)


def _server_properties(
    *,
    data: Path,
    port: int,
    controller_port: int,
    partitions: int,
    node_id: int = 1,
    voters: str | None = None,
    brokers: int = 1,
) -> str:
    """A combined broker+controller tuned for one developer machine with 2 cores.

    Static voters (not `--standalone`) so the controller port may change between runs.
    Internal topics get few partitions: creating and loading 50 offset partitions would delay
    the first consumer group join by a second. In a cluster every node is a voter and the
    internal topics are replicated like the others (`replication`).
    """
    factor, min_isr = replication(brokers)
    settings = {
        **(
            {
                # A broker that died is fenced, and its partitions led elsewhere, within 3 s
                # (9 s by default): writes and the access topic's readers move on quickly.
                "broker.session.timeout.ms": "3000",
                "broker.heartbeat.interval.ms": "1000",
            }
            if brokers > 1
            else {}
        ),
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": str(partitions),
        "default.replication.factor": str(factor),
        "min.insync.replicas": str(min_isr),
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": str(factor),
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": str(factor),
        "transaction.state.log.min.isr": str(min_isr),
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": str(factor),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        "group.initial.rebalance.delay.ms": "0",
        # The controller writes a no-op record to the metadata log whenever it has been idle
        # this long (KIP-835: only so that monitoring sees the log advance), 500 ms by default:
        # two appends a second on an idle stack, about a third of an idle broker's CPU here.
        "metadata.max.idle.interval.ms": "5000",
        # threads and buffers sized for 2 cores and a small heap
        "num.network.threads": "2",
        "num.io.threads": "4",
        "background.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.threads": "1",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        # bounded disk use for a long-lived dev data dir
        "log.retention.hours": "168",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _log4j2_properties(logs: Path) -> str:
    """Broker logs go to a rolling file in the data dir; nothing reaches the console."""
    return f"""status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {logs / "server.log"}
appender.file.filePattern = {logs / "server.log.%i"}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise LocalStackError("Kafka needs Java 17+; `java` is not on PATH and JAVA_HOME is unset")
    return java


class _Kafka:
    """One KRaft node in a JVM of its own session, so a Ctrl-C in the terminal reaches the
    orchestrating Python process only and shutdown happens in the right order. In a cluster
    (`brokers` > 1) node n keeps its data in `kafka-n` (node 1 in `kafka`, as alone), and
    every node lists every other as a voter; all share node 1's cluster id."""

    def __init__(
        self,
        root: Path,
        port: int,
        controller_port: int,
        partitions: int,
        jvm_options: Sequence[str],
        *,
        node_id: int = 1,
        brokers: int = 1,
    ) -> None:
        self.node_id = node_id
        self.brokers = brokers
        self.voters: str | None = None  # set by the stack for a cluster
        self.name = "kafka" if brokers == 1 else f"kafka-{node_id}"
        self.cluster_file = root / "kafka" / "cluster.id"
        self.dir = root / ("kafka" if node_id == 1 else f"kafka-{node_id}")
        self.data = self.dir / "data"
        self.logs = self.dir / "logs"
        self.pid_file = self.dir / "kafka.pid"
        self.properties = self.dir / "server.properties"
        self.port = port
        self.controller_port = controller_port
        self.partitions = partitions
        self.jvm_options = tuple(jvm_options)
        self._child: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # where this run's part of server.log begins

    def log_tail(self) -> str:
        """This run's broker log and JVM console output, for error messages."""
        out = self.logs / "kafka.out"
        return (
            f"{self.server_log}:\n{_tail(self.server_log, since=self._log_offset)}\n"
            f"{out}:\n{_tail(out, 15)}"
        )

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"

    def process(self) -> psutil.Process | None:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return _alive(pid, needle=str(self.properties))

    def advertised(self) -> str:
        """host:port the running broker advertises (the CLI may not know its ports)."""
        with contextlib.suppress(OSError):
            for line in self.properties.read_text().splitlines():
                if line.startswith("advertised.listeners=PLAINTEXT://"):
                    return line.split("//", 1)[1]
        return f"127.0.0.1:{self.port}"

    def _classpath(self) -> str:
        return str(ensure_kafka_jars() / "*")

    def _format_once(self, java: str, classpath: str, timeout: float) -> None:
        """Format log.dirs on first start only: reformatting would throw the data away."""
        if (self.data / "meta.properties").exists():
            return
        cluster_file = self.cluster_file
        cluster_file.parent.mkdir(parents=True, exist_ok=True)
        if not cluster_file.exists():
            cluster_file.write_text(_cluster_id() + "\n")
        log4j = self.dir / "log4j2.properties"
        cmd = [
            java,
            "-cp",
            classpath,
            f"-Dlog4j2.configurationFile={log4j}",
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            cluster_file.read_text().strip(),
            "-c",
            str(self.properties),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise LocalStackError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")

    def start(self, timeout: float) -> None:
        """Start the broker unless this data dir's broker already runs; wait until it accepts
        connections."""
        self.launch(timeout)
        self.wait_listening(timeout)

    def launch(self, timeout: float) -> None:
        """Start the JVM (unless this node runs already) without waiting for it: the nodes of a
        cluster open their ports only once a quorum of them runs."""
        if self._child is not None and self._child.poll() is not None:
            self._child = None  # ours, and dead (killed): reaped
        running = self.process()
        if running is not None:
            if f"127.0.0.1:{self.port}," not in self.properties.read_text():
                raise LocalStackError(
                    f"the Kafka of {self.dir} already runs (pid {running.pid}) on other ports; "
                    "stop it first"
                )
            _log.info("Kafka already running (pid %s)", running.pid)
            return
        for port in (self.port, self.controller_port):
            if port_in_use(port):
                raise LocalStackError(f"Kafka port {port} is already in use on 127.0.0.1")
        java = _java()
        classpath = self._classpath()
        self.logs.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(
            _server_properties(
                data=self.data,
                port=self.port,
                controller_port=self.controller_port,
                partitions=self.partitions,
                node_id=self.node_id,
                voters=self.voters,
                brokers=self.brokers,
            )
        )
        log4j = self.dir / "log4j2.properties"
        log4j.write_text(_log4j2_properties(self.logs))
        self._format_once(java, classpath, timeout)
        cmd = [
            java,
            *self.jvm_options,
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.logs}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.properties),
        ]
        self._log_offset = self.server_log.stat().st_size if self.server_log.exists() else 0
        with (self.logs / "kafka.out").open("wb") as out:  # JVM crash output of this run only
            self._child = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._child.pid}\n")

    def wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not _tcp_open("127.0.0.1", self.port):
            if self._child is not None and self._child.poll() is not None:
                raise LocalStackError(
                    f"Kafka exited with {self._child.returncode} during startup; {self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise LocalStackError(
                    f"Kafka did not accept connections on port {self.port} within {timeout:.0f} "
                    f"s; {self.log_tail()}"
                )
            time.sleep(_POLL)

    def signal_stop(self) -> None:
        """Ask the node to stop (SIGTERM) without waiting; `stop` waits."""
        proc = self.process()
        if proc is not None:
            with contextlib.suppress(psutil.Error):
                proc.terminate()

    def stop(self, timeout: float) -> None:
        proc = self.process()
        if proc is not None:
            _terminate(proc, timeout)
        if self._child is not None:
            self._child.wait()  # reap our own child; psutil waited only for its exit
            self._child = None
        self.pid_file.unlink(missing_ok=True)


async def _prepare_kafka(
    bootstrap: str, topics: Sequence[str], partitions: int, deadline: float, brokers: int = 1
) -> None:
    """Wait until the broker answers metadata requests, create the missing topics, and make
    the consumer offsets topic exist, so the first consumer group join is fast."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import (
        CoordinatorNotAvailableError,
        KafkaConnectionError,
        KafkaTimeoutError,
        NotControllerError,
        TopicAlreadyExistsError,
    )

    last_error: Exception | None = None

    def expired() -> bool:
        return time.monotonic() > deadline

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, client_id="localstack"
    )
    while True:
        try:
            await admin.start()
            await admin.describe_cluster()
            break
        except (KafkaConnectionError, KafkaTimeoutError, NotControllerError) as exc:
            last_error = exc
            await admin.close()
            if expired():
                raise LocalStackError(f"Kafka at {bootstrap} did not answer: {exc!r}") from exc
            await asyncio.sleep(_POLL * 2)
            admin = AIOKafkaAdminClient(
                bootstrap_servers=bootstrap, request_timeout_ms=10_000, client_id="localstack"
            )
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=t,
                        num_partitions=partitions,
                        replication_factor=replication(brokers)[0],
                        topic_configs={
                            "min.insync.replicas": str(replication(brokers)[1]),
                            **TOPIC_CONFIGS.get(t, {}),
                        },
                    )
                    for t in missing
                ]
            )
            for name, code, message in (e[:3] for e in response.topic_errors):
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise LocalStackError(f"creating topic {name} failed: {code} {message}")
            _log.info("created %d topics with %d partitions each", len(missing), partitions)
        while True:
            try:
                await admin.find_coordinator("localstack-warmup")
                return
            except CoordinatorNotAvailableError as exc:  # offsets topic being created / loaded
                last_error = exc
                if expired():
                    raise LocalStackError(
                        f"Kafka's group coordinator did not come up: {last_error!r}"
                    ) from exc
                await asyncio.sleep(_POLL)
    finally:
        await admin.close()
