"""`make run` keeps its stack alive: a service process, the broker or PostgreSQL killed with
SIGKILL is started again and the log says what died, how, and when it was back; the stack then
still takes a screening through to its assessment; SIGTERM still stops everything cleanly.

`python -m deploy.run` on free ports in a folder of its own, so neither a running `make run` nor
the session stack is disturbed.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from deploy.localstack import PROJECT_ROOT, free_port
from services.intake.audit.checkpoints import public_key_text, signing_key
from shared.auth.signing import verify_key_of
from tests.support.cases import HIGH_CSSRS, screening

pytestmark = pytest.mark.integration


class Run:
    """A `make run` in the background, its console captured in a file."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ports = {
            name: free_port() for name in ("intake", "risk", "notify", "console", "phones")
        }
        self.console = data_dir / "console.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "API_KEYS_BOOTSTRAP")
            and not k.startswith(("TWILIO_", "PHONES_"))
        }
        env.update({f"{n.upper()}_PORT": str(p) for n, p in self.ports.items()}, NO_COLOR="1")
        data_dir.mkdir(parents=True, exist_ok=True)
        with self.console.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "deploy.run",
                    "--data-dir",
                    str(data_dir),
                    "--kafka-port",
                    str(free_port()),
                    "--controller-port",
                    str(free_port()),
                    "--partitions",
                    "2",
                ],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.console.read_text(errors="replace")

    def wait_for(self, what: Callable[[str], bool], timeout: float, why: str) -> None:
        deadline = time.monotonic() + timeout
        while not what(self.text()):
            if self.proc.poll() is not None:
                raise AssertionError(f"make run ended ({self.proc.returncode}) waiting for {why}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {why} in {timeout} s:\n{self.text()[-3000:]}")
            time.sleep(0.2)

    def said(self, line: str, timeout: float = 60.0) -> None:
        self.wait_for(lambda text: line in text, timeout, repr(line))

    def service_pid(self, name: str) -> int:
        for child in psutil.Process(self.proc.pid).children():
            if f"services.{name}" in " ".join(child.cmdline()):
                return child.pid
        raise AssertionError(f"no {name} process under make run")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def request(self, name: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        key = (self.data_dir / "secrets" / "admin-api-key").read_text().strip()
        request = urllib.request.Request(
            self.url(name) + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, {}
        except OSError:
            return 0, {}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(90)
        finally:
            _kill_all_of(self.data_dir)


def _processes_of(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and str(data_dir) in " ".join(
            proc.info["cmdline"] or ()
        ):
            found.append(proc)
    return found


def _kill_all_of(data_dir: Path) -> None:
    for proc in _processes_of(data_dir):
        proc.kill()


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    started = Run(tmp_path / "run")
    try:
        started.said("Ctrl-C stops everything", timeout=180)
        yield started
    finally:
        started.stop()


def _pid_file(path: Path) -> int:
    return int(path.read_text().split()[0])


def test_make_run_starts_again_whatever_dies_and_stops_on_sigterm(run: Run) -> None:
    # `triage audit verify` needs the public key only: the run derives it and passes it on.
    secrets = run.data_dir / "secrets"
    public = (secrets / "audit-verify-key").read_text().strip()
    signing = signing_key((secrets / "audit-signing-key").read_text().strip())
    assert public == public_key_text(signing)
    assert psutil.Process(run.service_pid("intake")).environ()["AUDIT_VERIFY_KEY"] == public
    # The console is served too, and signs in with the run's own admin key.
    assert run.request("console", "/readyz")[0] == 200
    with urllib.request.urlopen(run.url("console") + "/login", timeout=10) as login:
        assert 'name="key"' in login.read().decode()
    # No Twilio account configured: the local stand-in runs beside notify, with the run's own
    # generated account, and notify is told where it is.
    assert f"phones  {run.url('phones')}" in run.text()
    account = (run.data_dir / "secrets" / "twilio-account-sid").read_text().strip()
    token = (run.data_dir / "secrets" / "twilio-auth-token").read_text().strip()
    text = urllib.request.Request(
        f"{run.url('phones')}/2010-04-01/Accounts/{account}/Messages.json",
        data=urllib.parse.urlencode(
            {"To": "+15551230001", "From": "+15555550100", "Body": "hi"}
        ).encode(),
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{account}:{token}".encode()).decode()
        },
    )
    with urllib.request.urlopen(text, timeout=10) as created:
        assert created.status == 201
    notify_env = psutil.Process(run.service_pid("notify")).environ()
    assert notify_env["TWILIO_API_BASE"] == run.url("phones")
    assert notify_env["TWILIO_ACCOUNT_SID"] == account
    assert notify_env["TWILIO_FROM_NUMBER"] == "+15555550100"
    # The access topic's key pair is made once and kept; intake alone has the private half.
    secrets = run.data_dir / "secrets"
    signing = (secrets / "access-signing-key").read_text().strip()
    assert (secrets / "access-verify-key").read_text().strip() == verify_key_of(signing)
    assert (secrets / "access-signing-key").stat().st_mode & 0o077 == 0
    for name in ("intake", "risk", "notify", "console"):
        environ = psutil.Process(run.service_pid(name)).environ()
        assert ("ACCESS_SIGNING_KEY" in environ) == (name == "intake"), name
        assert name == "console" or environ["ACCESS_VERIFY_KEY"] == verify_key_of(signing)
    notify = run.service_pid("notify")
    os.kill(notify, signal.SIGKILL)
    run.said("notify killed by SIGKILL")
    run.said("notify is back")
    assert run.service_pid("notify") != notify
    assert run.request("notify", "/readyz")[0] == 200

    os.kill(_pid_file(run.data_dir / "kafka" / "kafka.pid"), signal.SIGKILL)
    run.said("kafka died at")
    run.said("kafka is back", timeout=120)

    os.kill(_pid_file(run.data_dir / "postgres" / "postmaster.pid"), signal.SIGKILL)
    run.said("postgres died at")
    run.said("postgres is back", timeout=120)

    # Whole again: a flagged screening is accepted and assessed.
    deadline = time.monotonic() + 60
    status, body = 0, {}
    while status != 202 and time.monotonic() < deadline:
        status, body = run.request("intake", "/v1/screenings", screening(HIGH_CSSRS))
        time.sleep(0.5)
    assert status == 202, run.text()[-3000:]
    case: dict = {}
    while time.monotonic() < deadline and case.get("status") != "assessed":
        case = run.request("intake", f"/v1/screenings/{body['id']}")[1]
        time.sleep(0.2)
    assert case.get("status") == "assessed", run.text()[-3000:]

    assert run.stop() == 0
    assert "SIGTERM received; stopping" in run.text() and "stopped in" in run.text()
    assert _processes_of(run.data_dir) == [], "nothing of the run is left"
