"""The three services as real processes (`python -m services.X`), as `make run` starts them."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deploy.localstack import free_port
from tests.support.phones import Phones

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "risk", "notify")
#: The session console's port, known before the services start: notify's ack page links there.
CONSOLE_PORT = free_port()


@dataclass
class ServiceProcesses:
    env: dict[str, str]
    ports: dict[str, int]
    log_dir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: A CA file when the services serve HTTPS (TLS_CERT_FILE in `env`).
    ca_file: str | None = None
    #: The Twilio stand-in notify pages phones through, when the session started one.
    phones: Phones | None = None

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True

    def url(self, service: str) -> str:
        scheme = "https" if self.ca_file else "http"
        return f"{scheme}://127.0.0.1:{self.ports[service]}"

    def start(self, *services: str, timeout: float = 60.0) -> None:
        for name in services or SERVICES:
            env = {**self.env, f"{name.upper()}_PORT": str(self.ports[name])}
            with (self.log_dir / f"{name}.log").open("ab") as log:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        try:
            self.wait_ready(*(services or SERVICES), timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, *services: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for name in services:
            while True:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}"
                    )
                try:
                    ready = httpx.get(f"{self.url(name)}/readyz", timeout=2, verify=self.verify)
                    if ready.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready in {timeout} s:\n{self.log_tail(name)}")
                time.sleep(0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            del self.procs[name]

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def env_for(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **self.env, **extra}
