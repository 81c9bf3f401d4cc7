"""`make run`: the local stack, the migrations and the three services, in the foreground.

Why a Python supervisor rather than a shell script: shutdown order matters (services first, so
nothing is mid-write when Kafka and PostgreSQL go away), whatever dies (a service, the broker,
PostgreSQL) must be started again and say so, not leave a half-working system until someone
restarts it by hand (deploy/supervise.py), and the services' JSON logs are easier to follow as
one prefixed, readable stream. Every child runs in a session of its own, so a Ctrl-C reaches
this process only and the teardown happens in order: services (SIGTERM, then SIGKILL), Kafka,
PostgreSQL. Only Ctrl-C or SIGTERM (or SIGHUP) stops the run.

Service output is shown on the console and kept in `.local/run/logs/<service>.log`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from deploy.localstack import PROJECT_ROOT, LocalStack, LocalStackError, port_in_use
from deploy.supervise import Child, Console, Supervisor, print_tail, wait_ready
from services.console.session import new_session_key
from services.intake.audit.checkpoints import new_signing_key, public_key_text, signing_key
from shared.auth.credentials import new_key
from shared.auth.signing import new_access_key_pair, verify_key_of
from shared.phi import new_phi_key

DEFAULT_DATA_DIR = PROJECT_ROOT / ".local" / "run"
READY_TIMEOUT = 60.0  # seconds for a service to answer /readyz after its start
STOP_TIMEOUT = 15.0  # seconds a service gets to drain after SIGTERM before SIGKILL


@dataclass(frozen=True)
class Service:
    """One of the services (or the console), as `python -m services.<name>` with its port
    variables."""

    name: str
    default_port: int
    color: str  # ANSI colour of its console prefix
    module_name: str | None = None  # when not services.<name>

    @property
    def module(self) -> str:
        return self.module_name or f"services.{self.name}"

    def port(self, env: Mapping[str, str]) -> int:
        return int(env.get(f"{self.name.upper()}_PORT", self.default_port))

    def url(self, env: Mapping[str, str]) -> str:
        """Where it answers; a wildcard bind (INTAKE_HOST=0.0.0.0) answers on loopback too."""
        host = env.get(f"{self.name.upper()}_HOST", "127.0.0.1")
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port(env)}"


SERVICES = (
    Service("intake", 8001, "36"),
    Service("risk", 8002, "35"),
    Service("notify", 8003, "33"),
)
#: The web console: started last, since it only calls the three services' HTTP APIs.
CONSOLE = Service("console", 8004, "32")
#: What `make run` starts (the benchmarks and `make chaos` start the three services only).
EVERYTHING = (*SERVICES, CONSOLE)
#: The local Twilio stand-in (deploy/phones): started first, beside notify, when no real
#: Twilio account is configured (TWILIO_ACCOUNT_SID unset), so paging by SMS and voice works
#: on a laptop; its pages are the clinicians' phones.
PHONES = Service("phones", 8005, "34", module_name="deploy.phones")
#: The number the local provider texts and calls from (a fictional 555-01xx number).
LOCAL_TWILIO_NUMBER = "+15555550100"
#: The local provider's second number: intake's Caring Contacts send from it, and the person's
#: replies to it go to intake (the first number's go to notify).
LOCAL_CARING_NUMBER = "+15555550101"


class _Shutdown(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP: unwinds into the teardown."""


class _ConsoleLogHandler(logging.Handler):
    """The local stack's progress (jar fetch, initdb, topic creation) on the same console."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        self._console.line("stack", record.getMessage())


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGINT/SIGTERM/SIGHUP into `_Shutdown` in the main thread, wherever it is blocked
    (a stack start, a readiness probe, the final wait)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Shutdown(signum)

    previous = {
        sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _single_run_lock(data_dir: Path) -> IO[str] | None:
    """One `make run` per data dir: a second one would adopt the first one's stack and then
    stop it on its way out."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / "run.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def local_secret(data_dir: Path, name: str, make: Callable[[], str]) -> Path:
    """A secret of the local stack (the admin API key, the audit signing key), made once and
    kept outside the database in a file only its owner can read; never printed (the console is
    a log)."""
    path = data_dir / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(make() + "\n")
    return path


def _new_account_sid() -> str:
    return "AC" + secrets.token_hex(16)


def _new_auth_token() -> str:
    return secrets.token_hex(16)


def _local_twilio(env: dict[str, str], data_dir: Path) -> None:
    """The local provider's account (made once, kept with the other secrets), given to it as
    PHONES_* and to notify and intake as TWILIO_*, as a real account would be. Replies to the
    first number go to notify; replies to the Caring Contacts number (CARING_FROM_NUMBER) go to
    intake."""
    sid = local_secret(data_dir, "twilio-account-sid", _new_account_sid).read_text().strip()
    token = local_secret(data_dir, "twilio-auth-token", _new_auth_token).read_text().strip()
    number = env.setdefault("PHONES_NUMBER", LOCAL_TWILIO_NUMBER)
    env.update(
        PHONES_ACCOUNT_SID=sid,
        PHONES_AUTH_TOKEN=token,
        TWILIO_ACCOUNT_SID=sid,
        TWILIO_AUTH_TOKEN=token,
        TWILIO_API_BASE=PHONES.url(env),
        TWILIO_FROM_NUMBER=number,
    )
    env.setdefault("PHONES_SMS_URL", env["NOTIFY_URL"] + "/v1/twilio/sms")
    caring = env.setdefault("CARING_FROM_NUMBER", LOCAL_CARING_NUMBER)
    env.setdefault("INTAKE_PUBLIC_URL", env["INTAKE_URL"])
    env.setdefault("PHONES_NUMBERS", f"{caring}={env['INTAKE_PUBLIC_URL']}/v1/twilio/sms")


def _access_keys(env: dict[str, str], data_dir: Path) -> str:
    """The access topic's key pair: ACCESS_VERIFY_KEY put in `env` (every service), and
    ACCESS_SIGNING_KEY taken out of it and returned (intake's alone). From the environment when
    set there, else made once and kept beside the other local secrets."""
    signing = env.pop("ACCESS_SIGNING_KEY", "")
    if signing:
        env.setdefault("ACCESS_VERIFY_KEY", verify_key_of(signing))
        return signing
    signing = (
        local_secret(data_dir, "access-signing-key", lambda: new_access_key_pair()[0])
        .read_text()
        .strip()
    )
    if not env.get("ACCESS_VERIFY_KEY"):
        verify = local_secret(data_dir, "access-verify-key", lambda: verify_key_of(signing))
        env["ACCESS_VERIFY_KEY"] = verify.read_text().strip()
    return signing


def run(
    data_dir: Path = DEFAULT_DATA_DIR,
    services: Sequence[Service] = EVERYTHING,
    console: Console | None = None,
    *,
    kafka_port: int = 9092,
    controller_port: int = 9093,
    partitions: int = 6,
    brokers: int = 1,
) -> int:
    """Start everything, keep it up (restarting what dies) until a signal, stop everything; the
    exit code is 0 after a requested stop and 1 when the start failed."""
    console = console or Console()
    env = dict(os.environ)
    lock = _single_run_lock(data_dir)
    if lock is None:
        console.say(f"another `make run` is already running on {data_dir}")
        return 1
    if any(s.name == "notify" for s in services) and not env.get("TWILIO_ACCOUNT_SID"):
        services = (PHONES, *services)
    for service in services:
        if port_in_use(service.port(env)):
            console.say(
                f"port {service.port(env)} for {service.name} is already in use "
                f"(set {service.name.upper()}_PORT to use another)"
            )
            return 1

    admin_key_file = None
    if not env.get("API_KEYS_BOOTSTRAP"):
        admin_key_file = local_secret(data_dir, "admin-api-key", new_key)
        key = admin_key_file.read_text().strip()
        env["API_KEYS_BOOTSTRAP"] = f"local-admin:admin:{key}"
    if not env.get("AUDIT_SIGNING_KEY"):
        signing = local_secret(data_dir, "audit-signing-key", new_signing_key)
        env["AUDIT_SIGNING_KEY"] = signing.read_text().strip()
    if not env.get("AUDIT_VERIFY_KEY"):  # what `triage audit verify` needs: the public half
        env["AUDIT_VERIFY_KEY"] = public_key_text(signing_key(env["AUDIT_SIGNING_KEY"]))
    verify_key = data_dir / "secrets" / "audit-verify-key"  # for `triage` in another shell
    verify_key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    verify_key.write_text(env["AUDIT_VERIFY_KEY"] + "\n")
    if not env.get("PHI_KEYS"):
        env["PHI_KEYS"] = local_secret(data_dir, "phi-keys", new_phi_key).read_text().strip()
    access_signing = _access_keys(env, data_dir)
    if not env.get("CONSOLE_SESSION_KEYS"):
        sealed = local_secret(data_dir, "console-session-key", new_session_key)
        env["CONSOLE_SESSION_KEYS"] = sealed.read_text().strip()
    for service in services:  # the console finds the services where this run starts them
        env.setdefault(f"{service.name.upper()}_URL", service.url(env))
    if PHONES in services:
        _local_twilio(env, data_dir)

    stack_log = logging.getLogger("deploy.localstack")
    stack_log.addHandler(_ConsoleLogHandler(console))
    stack_log.setLevel(logging.INFO)
    t0 = time.monotonic()
    stack = LocalStack.from_env(
        data_dir,
        kafka_port=kafka_port,
        controller_port=controller_port,
        partitions=partitions,
        brokers=brokers,
    )
    stack_was_up = any(part.managed and part.running for part in stack.status())
    children: list[Child] = []
    exited = threading.Event()
    code = 0
    try:
        with _signals_raise():
            console.say(f"starting PostgreSQL and Kafka in {data_dir} …")
            stack.start()
            console.say(
                f"stack ready in {time.monotonic() - t0:.1f} s: "
                f"{stack.database_url}  kafka {stack.bootstrap_servers}"
            )
            env.update(
                DATABASE_URL=stack.database_url,
                KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap_servers,
                PYTHONUNBUFFERED="1",
            )

            t1 = time.monotonic()
            migrate = Child(
                "migrate",
                [sys.executable, "-m", "shared.migrate"],
                env,
                data_dir / "logs" / "migrate.log",
                console,
                threading.Event(),
            )
            children.append(migrate)  # so an interrupt meanwhile stops it too
            migrate.wait(120.0)
            children.remove(migrate)
            if migrate.returncode != 0:  # its output is just above
                raise RuntimeError(
                    f"database migrations failed (exit {migrate.returncode}; "
                    f"log: {migrate.log_file})"
                )
            console.say(f"migrations done in {time.monotonic() - t1:.1f} s")

            for service in services:
                children.append(
                    Child(
                        service.name,
                        [sys.executable, "-m", service.module],
                        # Intake alone signs the access topic's records; all verify them.
                        {**env, "ACCESS_SIGNING_KEY": access_signing}
                        if service.name == "intake"
                        else env,
                        data_dir / "logs" / f"{service.name}.log",
                        console,
                        exited,
                        service.color,
                    )
                )
            deadline = time.monotonic() + READY_TIMEOUT
            for service, child in zip(services, children, strict=True):
                wait_ready(child, service.url(env), deadline)
            console.say(
                f"ready in {time.monotonic() - t0:.1f} s (stack, migrations and "
                "services); Ctrl-C stops everything"
            )
            for service in services:
                console.say(f"  {service.name:<7} {service.url(env)}")
            if PHONES in services:
                console.say(
                    f"pages by SMS and voice go to the local phones: {PHONES.url(env)}/ "
                    "(no Twilio account set; each phone's texts and calls, reply and press 1 there)"
                )
            if admin_key_file is not None:
                console.say(
                    f"admin API key in {admin_key_file}: "
                    f'-H "Authorization: Bearer $(cat {admin_key_file})"'
                )

            urls = {service.name: service.url(env) for service in services}
            # Until a signal (it raises _Shutdown here): whatever dies is started again.
            Supervisor(console, stack, children, urls, exited).run()
    except _Shutdown as stop:
        console.say(f"{signal.Signals(stop.args[0]).name} received; stopping …")
    except (LocalStackError, RuntimeError) as exc:
        for child in children:
            if child.returncode is not None:
                print_tail(console, child)
        console.say(f"failed: {exc}")
        code = 1
    finally:
        _teardown(console, children, stack, keep_stack=stack_was_up)
        lock.close()
    return code


def _teardown(
    console: Console, children: list[Child], stack: LocalStack, *, keep_stack: bool
) -> None:
    """Services first, so none is mid-write when Kafka and PostgreSQL go; a second Ctrl-C
    meanwhile is ignored rather than leaving half of it running."""
    signal.signal(signal.SIGINT, lambda *_: console.say("still stopping, please wait …"))
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    t0 = time.monotonic()
    for child in reversed(children):
        child.terminate()
    for child in reversed(children):
        child.wait(STOP_TIMEOUT)
    if keep_stack:
        console.say("the stack was already up before this run (localstack up); leaving it up")
    else:
        stack.stop()
    console.say(f"stopped in {time.monotonic() - t0:.1f} s")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--kafka-port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=9093)
    parser.add_argument(
        "--partitions",
        type=int,
        default=int(os.environ.get("KAFKA_PARTITIONS", "6")),
        help="partitions of each topic created (bounds consumer parallelism); env KAFKA_PARTITIONS",
    )
    parser.add_argument("--only", help="comma-separated subset of services, e.g. intake,risk")
    parser.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        default=int(os.environ.get("BROKERS") or 1),
        help="Kafka nodes: 3 is a KRaft cluster with replication factor 3 and"
        " min.insync.replicas 2 (its own data dir, .local/run-3-brokers); env BROKERS",
    )
    args = parser.parse_args(argv)
    if args.brokers > 1 and args.data_dir == DEFAULT_DATA_DIR:
        args.data_dir = DEFAULT_DATA_DIR.with_name(f"run-{args.brokers}-brokers")
    services: tuple[Service, ...] = EVERYTHING
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        unknown = wanted - {s.name for s in EVERYTHING}
        if unknown:
            parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
        services = tuple(s for s in EVERYTHING if s.name in wanted)
    return run(
        args.data_dir.resolve(),
        services,
        kafka_port=args.kafka_port,
        controller_port=args.controller_port,
        partitions=args.partitions,
        brokers=args.brokers,
    )


if __name__ == "__main__":
    sys.exit(main())
