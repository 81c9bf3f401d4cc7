"""What keeps `make run`'s stack alive: each child process with its output, and the loop that
starts again whatever dies (a service, the broker, PostgreSQL), with backoff, until a signal.

A child that dies is reported with its exit status or signal and the last lines it wrote, then
started again after its backoff: 1 s, doubling to 30 s, back to 1 s once it has stayed up for a
minute. The broker and PostgreSQL are watched through the local stack's pid files and started
again by `LocalStack.start`, which adopts what still runs. The log says when each part is back.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

from deploy.localstack import PROJECT_ROOT, LocalStack, LocalStackError

_PROBE_INTERVAL = 0.1
#: How often the broker and PostgreSQL are looked at (and how long a death may go unseen).
WATCH_SECONDS = 1.0


class Console:
    """Serialises prefixed lines from several pump threads onto one terminal."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._color = stream.isatty() and "NO_COLOR" not in os.environ

    def line(self, source: str, text: str, color: str = "1") -> None:
        prefix = f"{source:>8} │ "
        if self._color:
            prefix = f"\x1b[{color}m{prefix}\x1b[0m"
        with self._lock:
            self._stream.write(f"{prefix}{text}\n")
            self._stream.flush()

    def say(self, text: str) -> None:
        self.line("run", text)


def readable(raw: str) -> str:
    """A service's one-line JSON log entry as `12:00:01.234 INFO  logger: message`; anything
    else unchanged."""
    if not raw.startswith("{"):
        return raw
    try:
        entry = json.loads(raw)
        text = f"{entry['ts'][11:23]} {entry['level']:<5} {entry['logger']}: {entry['msg']}"
    except (ValueError, KeyError, TypeError):
        return raw
    if entry.get("correlation_id"):
        text += f" [{entry['correlation_id']}]"
    if entry.get("exc"):
        text += "\n" + str(entry["exc"])
    return text


class Child:
    """A supervised subprocess: its output is pumped to the console and a log file by a thread,
    and `exited` is set the moment it ends, so the main thread waits without polling."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        log_file: Path,
        console: Console,
        exited: threading.Event,
        color: str = "1",
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.env = dict(env)
        self.log_file = log_file
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self._console = console
        self.color = color
        self._exited = exited
        self.started_at = time.monotonic()
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=PROJECT_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._pump = threading.Thread(target=self._forward, name=f"pump-{name}", daemon=True)
        self._pump.start()

    def again(self) -> Child:
        """The same command started anew (after this one died)."""
        return Child(
            self.name,
            self.cmd,
            self.env,
            self.log_file,
            self._console,
            self._exited,
            self.color,
        )

    def _forward(self) -> None:
        assert self.proc.stdout is not None
        stdout: IO[bytes] = self.proc.stdout
        with self.log_file.open("a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {self.proc.pid}\n")
            for raw in iter(stdout.readline, b""):
                line = raw.decode(errors="replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                self.tail.append(line)
                for part in readable(line).splitlines() or [""]:
                    self._console.line(self.name, part, self.color)
        stdout.close()
        self.proc.wait()
        self._exited.set()

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    @property
    def how_it_ended(self) -> str:
        code = self.returncode
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def terminate(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        """Wait for the exit (after `terminate`, or of a one-shot job); SIGKILL when the time
        is up."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._console.say(f"{self.name} did not exit within {timeout:.0f} s; killing it")
            self.proc.kill()
            self.proc.wait()
        self.drain()

    def drain(self) -> None:
        """Let the pump forward the last lines a dead process wrote."""
        if self.proc.poll() is not None:
            self._pump.join(5)


def print_tail(console: Console, child: Child) -> None:
    child.drain()
    console.say(f"{child.name} {child.how_it_ended}; its last lines (full log: {child.log_file}):")
    for line in child.tail:
        for part in readable(line).splitlines() or [""]:
            console.line(child.name, part, child.color)


def ready(url: str) -> bool:
    """Whether `url`/readyz answers 200 now."""
    # URLError (not listening yet) and HTTPError (503: not ready yet) are OSErrors
    with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
        return bool(r.status == 200)
    return False


def wait_ready(child: Child, url: str, deadline: float) -> None:
    """Poll /readyz every 100 ms until it answers 200; fail fast if the process ends."""
    while not ready(url):
        if child.returncode is not None:
            raise RuntimeError(f"{child.name} {child.how_it_ended} while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not answer {url}/readyz with 200 in time")
        time.sleep(_PROBE_INTERVAL)


@dataclass
class Backoff:
    """1 s, doubling to 30 s; back to the first delay once the part stayed up `reset_after`."""

    first: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0
    _next: float = field(default=0.0, init=False)

    def delay(self, up_for: float) -> float:
        """The wait before the next start of a part that died after `up_for` seconds up."""
        if up_for >= self.reset_after or self._next == 0.0:
            self._next = self.first
        delay, self._next = self._next, min(self._next * 2, self.cap)
        return delay


@dataclass
class _Down:
    """A part that died: since when, and when it is to be started again."""

    since: float
    restart_at: float


class Supervisor:
    """Restarts what dies, until a signal raises in the main thread (`make run`'s teardown).

    `children` is the live list of service processes (the teardown stops what it holds), and
    `urls` says where each one answers /readyz, to report when it is back.
    """

    def __init__(
        self,
        console: Console,
        stack: LocalStack,
        children: list[Child],
        urls: Mapping[str, str],
        exited: threading.Event,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._console = console
        self._stack = stack
        self._children = children
        self._urls = urls
        self._exited = exited
        self._clock = clock
        self._backoff: dict[str, Backoff] = collections.defaultdict(Backoff)
        self._down: dict[str, _Down] = {}
        self._coming_back: dict[str, tuple[Child, float]] = {}
        self._stack_up_since = clock()

    def run(self) -> None:
        while True:
            self._exited.wait(WATCH_SECONDS)  # a signal interrupts this wait
            self._exited.clear()
            self._watch_services()
            self._watch_stack()
            self._report_back()

    def _watch_services(self) -> None:
        now = self._clock()
        for i, child in enumerate(self._children):
            if child.returncode is None:
                continue
            if child.name not in self._down:
                print_tail(self._console, child)
                self._went_down(child.name, up_for=now - child.started_at)
                self._coming_back.pop(child.name, None)
            elif now >= self._down[child.name].restart_at:
                self._children[i] = again = child.again()
                self._console.say(f"{child.name} started again (pid {again.proc.pid})")
                self._coming_back[child.name] = (again, self._down.pop(child.name).since)

    def _went_down(self, name: str, *, up_for: float) -> None:
        now = self._clock()
        delay = self._backoff[name].delay(up_for)
        if name in self._down:  # a start that failed: it has been down since it died
            self._down[name].restart_at = now + delay
            self._console.say(f"{name}: trying again in {delay:.0f} s")
            return
        self._down[name] = _Down(since=now, restart_at=now + delay)
        self._console.say(
            f"{name} died at {time.strftime('%H:%M:%S')} after {up_for:.0f} s up; "
            f"starting it again in {delay:.0f} s"
        )

    def _watch_stack(self) -> None:
        dead = [p.name for p in self._stack.status() if p.managed and not p.running]
        now = self._clock()
        for name in dead:
            if name not in self._down:
                self._went_down(name, up_for=now - self._stack_up_since)
        due = [n for n in dead if now >= self._down[n].restart_at]
        if not due:
            return
        self._console.say(f"starting {' and '.join(due)} again …")
        try:
            self._stack.start()  # adopts what runs, starts what does not
        except LocalStackError as exc:
            self._console.say(f"{' and '.join(due)} did not come back: {exc}")
            for name in due:
                self._went_down(name, up_for=0.0)
            return
        self._stack_up_since = self._clock()
        for name in due:
            since = self._down.pop(name).since
            self._console.say(f"{name} is back, {self._stack_up_since - since:.1f} s after it died")

    def _report_back(self) -> None:
        for name, (child, since) in list(self._coming_back.items()):
            if child.returncode is not None:
                del self._coming_back[name]
            elif ready(self._urls[name]):
                del self._coming_back[name]
                self._console.say(f"{name} is back, {self._clock() - since:.1f} s after it died")
