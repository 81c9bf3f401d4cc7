"""The chaos run's own stack: PostgreSQL, Kafka, the pager receiver and N replicas of each
service, each replica a process the run can kill, pause and start again (as `make run`'s
supervisor would: one second after it died)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.stack import Process, _get, migrated_env
from deploy.localstack import PROJECT_ROOT, LocalStack, free_port
from deploy.run import SERVICES
from shared.auth.signing import new_access_key_pair
from shared.phi import new_phi_key

DEFAULT_DIR = PROJECT_ROOT / ".local" / "chaos"
READY_TIMEOUT = 90.0
#: Short acknowledgement deadlines, so that escalations fall due during the run (and some of
#: them inside fault windows).
ACK_DEADLINES = {"imminent": 20, "high": 20, "moderate": 20}


@dataclass
class ChaosStack:
    root: Path = DEFAULT_DIR
    replicas: int = 2
    brokers: int = 1
    partitions: int = 6
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    api_key: str = field(default_factory=lambda: "chaos-admin-" + secrets.token_urlsafe(24))
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    #: Settings of every service besides the run's own (the soak's short retention).
    extra_env: dict[str, str] = field(default_factory=dict)
    local: LocalStack | None = None
    _database_url: str = ""

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def broker_names(self) -> list[str]:
        return (
            ["kafka"] if self.brokers == 1 else [f"kafka-{n}" for n in range(1, self.brokers + 1)]
        )

    def replicas_of(self, service: str) -> list[str]:
        return [f"{service}-{i}" for i in range(1, self.replicas + 1)]

    @property
    def database_url(self) -> str:
        """Read once: PostgreSQL keeps its port across restarts, and may be down when asked."""
        if not self._database_url:
            assert self.local is not None
            self._database_url = self.local.database_url
        return self._database_url

    @property
    def bootstrap_servers(self) -> str:
        assert self.local is not None
        return self.local.bootstrap_servers

    def start(self, say=print) -> None:
        try:
            self._start(say)
        except BaseException:
            self.stop()
            raise

    def _start(self, say) -> None:
        t0 = time.monotonic()
        stack_dir = self.root / "stack"
        LocalStack(stack_dir).stop()
        shutil.rmtree(self.root, ignore_errors=True)
        say(f"starting PostgreSQL and Kafka in {stack_dir} …")
        self.local = LocalStack(
            stack_dir,
            kafka_port=free_port(),
            controller_port=free_port(),
            partitions=self.partitions,
            brokers=self.brokers,
        )
        self.local.start()
        env = migrated_env(self.database_url, self.bootstrap_servers)
        names = [r for s in SERVICES for r in self.replicas_of(s.name)]
        self.ports = {name: free_port() for name in ("receiver", *names)}
        self._launch(
            "receiver",
            [
                sys.executable,
                "-m",
                "bench.receiver",
                "--port",
                str(self.ports["receiver"]),
                "--secret",
                self.secret,
            ],
            env,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        self.processes["receiver"].wait_ready(f"{self.url('receiver')}/healthz", deadline)
        access_signing, access_verify = new_access_key_pair()
        env.update(
            ONCALL_WEBHOOK_URL=f"{self.url('receiver')}/hook",
            ALERT_WEBHOOK_SECRET=self.secret,
            ACK_DEADLINE_SECONDS=json.dumps(ACK_DEADLINES),
            API_KEYS_BOOTSTRAP=f"chaos:admin:{self.api_key}",
            PHI_KEYS=new_phi_key(),
            AUDIT_SIGNING_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
            ACCESS_VERIFY_KEY=access_verify,
            DB_POOL_SIZE="8",  # six processes share PostgreSQL's 200 connections
            RETRY_BASE_SECONDS="0.2",
            FINAL_REPAGE_SECONDS="600",
        )
        env.update(self.extra_env)
        for service in SERVICES:
            for name in self.replicas_of(service.name):
                replica_env = {
                    **env,
                    f"{service.name.upper()}_PORT": str(self.ports[name]),
                    f"{service.name.upper()}_HOST": "127.0.0.1",
                }
                if service.name == "intake":  # it alone signs the access topic's records
                    replica_env["ACCESS_SIGNING_KEY"] = access_signing
                if service.name == "notify":
                    replica_env["NOTIFY_PUBLIC_URL"] = self.url(name)
                self._launch(name, [sys.executable, "-m", service.module], replica_env)
        for name in names:
            self.processes[name].wait_ready(f"{self.url(name)}/readyz", deadline)
        say(f"{len(names)} service replicas ready in {time.monotonic() - t0:.1f} s")

    def _launch(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.commands[name] = (cmd, env)
        self.processes[name] = Process.start(name, cmd, env, self.log_dir / f"{name}.log")

    def restart(self, name: str) -> None:
        cmd, env = self.commands[name]
        self.processes[name] = Process.start(name, cmd, env, self.log_dir / f"{name}.log")

    def wait_ready(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        self.processes[name].wait_ready(f"{self.url(name)}/readyz", time.monotonic() + timeout)

    def signal(self, name: str, sig: int) -> None:
        """Send `sig` to a service replica, the broker ("kafka") or PostgreSQL ("postgres")."""
        os.kill(self.pid(name), sig)
        if sig == signal.SIGKILL and name in self.processes:
            self.processes[name].popen.wait(10)

    def pid(self, name: str) -> int:
        if name in self.processes:
            return self.processes[name].pid
        assert self.local is not None
        [part] = [p for p in self.local.status() if p.name == name]
        assert part.pid is not None, f"{name} is not running"
        return part.pid

    def dead(self, name: str) -> bool:
        if name in self.processes:
            return self.processes[name].popen.poll() is not None
        assert self.local is not None
        return not any(p.running for p in self.local.status() if p.name == name)

    def restart_stack(self) -> None:
        """Start whichever of the broker and PostgreSQL is down (LocalStack adopts the rest)."""
        assert self.local is not None
        self.local.start()

    def any_ready(self, service: str) -> str | None:
        for name in self.replicas_of(service):
            if _get(f"{self.url(name)}/readyz") is not None:
                return name
        return None

    def rss(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, proc in self.processes.items():
            try:
                out[name] = psutil.Process(proc.pid).memory_info().rss
            except psutil.Error:
                continue
        return out

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)  # a paused one must hear the SIGTERM
            proc.stop()
        self.processes.clear()
        if self.local is not None:
            for part in self.local.status():
                if part.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(part.pid, signal.SIGCONT)
            self.local.stop()
            self.local = None
