"""The benchmark's own stack: PostgreSQL, Kafka, the three services and the pager receiver.

Why its own, rather than the services of a running `make run`: those send their pages to
whatever ONCALL_WEBHOOK_URL that run was started with, and keep the data of earlier runs. The
benchmark starts everything the way `make run` does (`deploy.localstack` for PostgreSQL and
Kafka, `python -m shared.migrate`, `python -m services.<name>`), but on free ports and in
`.local/bench/stack`, wiped at every start so each run begins from empty tables and topics,
with ONCALL_WEBHOOK_URL pointing at its receiver and a signing secret it knows. A `make run` on
the same machine keeps running undisturbed (it only shares the two cores).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from deploy.localstack import PROJECT_ROOT, LocalStack, free_port
from deploy.run import SERVICES
from shared.auth.signing import new_access_key_pair
from shared.phi import new_phi_key

DEFAULT_DIR = PROJECT_ROOT / ".local" / "bench"
READY_TIMEOUT = 90.0
#: Escalations would page the receiver again (level 1, 2, ...) while the run is measured; the
#: benchmark measures first pages, so acknowledgement deadlines are pushed out of its way.
NO_ESCALATION = json.dumps({"imminent": 86400, "high": 86400, "moderate": 86400})


def _get(url: str, timeout: float = 2.0) -> bytes | None:
    """The body of a 200 answer, or None (not listening yet, not ready, ...)."""
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=timeout) as response:
        if response.status == 200:
            return bytes(response.read())
    return None


@dataclass
class Process:
    """A child process with its log file; started in its own session so a Ctrl-C reaches the
    benchmark only, which then stops its children in order."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, cmd: list[str], env: dict[str, str], log: Path) -> Process:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                cmd,
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, popen, log)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_ready(self, url: str, deadline: float) -> None:
        while _get(url) is None:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer {url} in time:\n{self.tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def migrated_env(database_url: str, bootstrap_servers: str) -> dict[str, str]:
    """The services' environment on a fresh stack (none of the user's `make run` settings),
    once the migrations ran against it."""
    env = {key: value for key, value in os.environ.items() if key not in _SERVICE_SETTINGS}
    env.update(
        DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers, PYTHONUNBUFFERED="1"
    )
    migrate = subprocess.run(
        [sys.executable, "-m", "shared.migrate"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"migrations failed:\n{migrate.stdout}{migrate.stderr}")
    return env


@dataclass
class BenchStack:
    """Start with `start()`, stop with `stop()` (services, receiver, Kafka, PostgreSQL)."""

    root: Path = DEFAULT_DIR
    partitions: int = 6
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    #: The bench posts as admin (admin credentials are not rate-limited).
    api_key: str = field(default_factory=lambda: "bench-admin-" + secrets.token_urlsafe(24))
    #: Signs the audit trail's checkpoints, so verifying the run's trail checks them too.
    audit_signing_key: str = field(
        default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode()
    )
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    local: LocalStack | None = None
    #: Trace everything (100 % sampled) to the receiver's OTLP stand-in.
    trace: bool = False
    #: Page by SMS through the bundled Twilio stand-in (bench/sms.py), not the webhook.
    sms: bool = False
    twilio_token: str = field(default_factory=lambda: secrets.token_hex(16))
    twilio_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))

    @property
    def stack_dir(self) -> Path:
        return self.root / "stack"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def receiver_url(self) -> str:
        return self.url("receiver")

    @property
    def database_url(self) -> str:
        assert self.local is not None
        return self.local.database_url

    @property
    def bootstrap_servers(self) -> str:
        assert self.local is not None
        return self.local.bootstrap_servers

    def start(self, say: Callable[[str], None] = print) -> None:
        """Everything from scratch; on failure whatever was started is stopped again."""
        try:
            self._start(say)
        except BaseException:
            self.stop()
            raise

    def _start(self, say: Callable[[str], None]) -> None:
        t0 = time.monotonic()
        # A previous run that was killed may have left its broker and database running.
        LocalStack(self.stack_dir).stop()
        shutil.rmtree(self.stack_dir, ignore_errors=True)
        shutil.rmtree(self.log_dir, ignore_errors=True)
        say(f"starting PostgreSQL and Kafka in {self.stack_dir} …")
        self.local = LocalStack(
            self.stack_dir,
            kafka_port=free_port(),
            controller_port=free_port(),
            partitions=self.partitions,
        )
        self.local.start()
        env = migrated_env(self.database_url, self.bootstrap_servers)
        self.ports = {
            name: free_port() for name in ("receiver", "phones", *(s.name for s in SERVICES))
        }
        receiver = Process.start(
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
            self.log_dir / "receiver.log",
        )
        self.processes["receiver"] = receiver
        deadline = time.monotonic() + READY_TIMEOUT
        receiver.wait_ready(f"{self.receiver_url}/healthz", deadline)  # up before any page
        access_signing, access_verify = new_access_key_pair()
        env.update(
            ONCALL_WEBHOOK_URL=f"{self.receiver_url}/hook",
            ALERT_WEBHOOK_SECRET=self.secret,
            ACK_DEADLINE_SECONDS=NO_ESCALATION,
            API_KEYS_BOOTSTRAP=f"bench:admin:{self.api_key}",
            PHI_KEYS=new_phi_key(),
            AUDIT_SIGNING_KEY=self.audit_signing_key,
            ACCESS_VERIFY_KEY=access_verify,
        )
        if self.trace:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.receiver_url
        if self.sms:
            self._start_phones(env, deadline)
        for service in SERVICES:
            name = service.name
            service_env = {
                **env,
                f"{name.upper()}_PORT": str(self.ports[name]),
                f"{name.upper()}_HOST": "127.0.0.1",
                # Intake alone signs the access topic's records; every service verifies them.
                **({"ACCESS_SIGNING_KEY": access_signing} if name == "intake" else {}),
            }
            if name == "notify":
                service_env["NOTIFY_PUBLIC_URL"] = self.url("notify")
            self.processes[name] = Process.start(
                name,
                [sys.executable, "-m", service.module],
                service_env,
                self.log_dir / f"{name}.log",
            )
        for service in SERVICES:
            self.processes[service.name].wait_ready(f"{self.url(service.name)}/readyz", deadline)
        say(f"stack and services ready in {time.monotonic() - t0:.1f} s (logs: {self.log_dir})")

    def _start_phones(self, env: dict[str, str], deadline: float) -> None:
        """The Twilio stand-in notify texts through, keeping every text of the run."""
        phones = Process.start(
            "phones",
            [sys.executable, "-m", "deploy.phones"],
            {
                **env,
                "PHONES_PORT": str(self.ports["phones"]),
                "PHONES_ACCOUNT_SID": self.twilio_sid,
                "PHONES_AUTH_TOKEN": self.twilio_token,
                "PHONES_NUMBER": "+15555550100",
                "PHONES_MAX_ITEMS": "1000000",
                "PHONES_SMS_URL": f"{self.url('notify')}/v1/twilio/sms",
                "PHONES_LOG_LEVEL": "WARNING",
            },
            self.log_dir / "phones.log",
        )
        self.processes["phones"] = phones
        phones.wait_ready(f"{self.url('phones')}/_local/phones", deadline)
        env.update(
            TWILIO_ACCOUNT_SID=self.twilio_sid,
            TWILIO_AUTH_TOKEN=self.twilio_token,
            TWILIO_API_BASE=self.url("phones"),
            TWILIO_FROM_NUMBER="+15555550100",
        )

    def stop(self) -> None:
        """Services first (so none is mid-write), then the receiver, Kafka and PostgreSQL."""
        for name in reversed(list(self.processes)):
            self.processes[name].stop()
        self.processes.clear()
        if self.local is not None:
            self.local.stop()
            self.local = None

    def pids(self) -> dict[str, list[int]]:
        """The processes whose CPU the report shows: each service, the receiver, the broker
        and every PostgreSQL process (the postmaster and its backends)."""
        out = {name: [proc.pid] for name, proc in self.processes.items()}
        if self.local is not None:
            for part in self.local.status():
                if part.pid is None:
                    continue
                pids = [part.pid]
                if part.name == "postgres":
                    with contextlib.suppress(psutil.Error):
                        pids += [c.pid for c in psutil.Process(part.pid).children(recursive=True)]
                out[part.name] = pids
        return out


#: Settings of the services a user's shell may carry for `make run`; the bench sets its own.
_SERVICE_SETTINGS = frozenset(
    {
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "ONCALL_WEBHOOK_URL",
        "ALERT_WEBHOOK_SECRET",
        "ACK_LINK_SECRET",
        "NOTIFY_PUBLIC_URL",
        "ACK_DEADLINE_SECONDS",
        "API_KEYS_BOOTSTRAP",
        "PHI_KEYS",
        "AUDIT_SIGNING_KEY",
        "ACCESS_SIGNING_KEY",
        "ACCESS_VERIFY_KEY",
        *(f"{s.name.upper()}_{what}" for s in SERVICES for what in ("PORT", "HOST")),
    }
)
