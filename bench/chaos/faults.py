"""The faults, one at a time with recovery between, then all of them close together.

Each fault records when it began and when the part was back (restarted and ready, resumed, or
the gateway well again): the check measures the pages around those moments. A killed process
is started again one second after it died, as `make run`'s supervisor does.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from bench.chaos.stack import ChaosStack
from deploy.localstack import LocalStackError

#: Seconds a killed process stays dead before it is started again (the supervisor's first wait).
RESTART_AFTER = 1.0
PAUSE = 10.0
GATEWAY_HANG, GATEWAY_FAIL = 6.0, 20.0


@dataclass
class Window:
    name: str
    start: float
    back: float = 0.0

    def json(self, t0: float) -> dict[str, float | str]:
        return {"fault": self.name, "start_s": self.start - t0, "back_s": self.back - t0}


@dataclass
class Fault:
    name: str
    act: Callable[[ChaosStack], Awaitable[None]]


async def _kill_and_restart(stack: ChaosStack, name: str) -> None:
    await asyncio.to_thread(stack.signal, name, signal.SIGKILL)
    await asyncio.sleep(RESTART_AFTER)
    # As the supervisor does: again after 1 s, 2 s, 4 s ... while it will not start (a service
    # started while the broker or PostgreSQL is down exits; a killed postmaster's backends take
    # a moment to notice and go).
    wait = RESTART_AFTER
    deadline = time.monotonic() + 120
    while True:
        try:
            if name in stack.processes:
                stack.restart(name)
                await asyncio.to_thread(stack.wait_ready, name)
            else:  # the broker or PostgreSQL
                await asyncio.to_thread(stack.restart_stack)
            return
        except (LocalStackError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(wait)
            wait = min(30.0, wait * 2)


async def _pause(stack: ChaosStack, name: str, seconds: float = PAUSE) -> None:
    stack.signal(name, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        stack.signal(name, signal.SIGCONT)


async def _gateway(stack: ChaosStack) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(
            f"{stack.url('receiver')}/fault",
            params={"hang": GATEWAY_HANG, "fail": GATEWAY_FAIL},
        )
        response.raise_for_status()
    await asyncio.sleep(GATEWAY_HANG + GATEWAY_FAIL)


def kill(name: str) -> Fault:
    return Fault(f"SIGKILL {name}", lambda stack: _kill_and_restart(stack, name))


def pause(name: str) -> Fault:
    return Fault(f"SIGSTOP {name} {PAUSE:g} s", lambda stack: _pause(stack, name))


def gateway() -> Fault:
    return Fault(
        f"pager gateway hangs {GATEWAY_HANG:g} s, then 500 for {GATEWAY_FAIL:g} s", _gateway
    )


async def _together(stack: ChaosStack) -> None:
    """Everything again, two seconds apart, each recovering on its own."""
    acts = [
        lambda: _kill_and_restart(stack, stack.replicas_of("intake")[0]),
        lambda: _kill_and_restart(stack, stack.replicas_of("risk")[-1]),
        lambda: _kill_and_restart(stack, stack.replicas_of("notify")[0]),
        lambda: _kill_and_restart(stack, stack.broker_names()[0]),
        lambda: _pause(stack, stack.replicas_of("notify")[-1]),
        lambda: _kill_and_restart(stack, "postgres"),
        lambda: _gateway(stack),
    ]
    tasks = []
    for act in acts:
        tasks.append(asyncio.create_task(act()))
        await asyncio.sleep(2)
    await asyncio.gather(*tasks)


def schedule(stack: ChaosStack, *, short: bool = False) -> list[Fault]:
    """The full run's faults, or the short run's (`make test`): kill notify, kill the broker."""
    if short:
        return [kill(stack.replicas_of("notify")[0]), kill(stack.broker_names()[0])]
    replicas = [r for s in ("intake", "risk", "notify") for r in stack.replicas_of(s)]
    return [
        *(kill(r) for r in replicas),
        kill(stack.broker_names()[0]),
        kill("postgres"),
        pause(stack.replicas_of("notify")[-1]),
        pause(stack.broker_names()[-1]),
        gateway(),
        Fault("all of them, 2 s apart", _together),
    ]


@dataclass
class Faults:
    stack: ChaosStack
    faults: list[Fault]
    settle: float = 8.0  # load flows undisturbed this long between two faults
    windows: list[Window] = field(default_factory=list)

    async def run(self, say: Callable[[str], None]) -> None:
        await asyncio.sleep(self.settle)
        for fault in self.faults:
            window = Window(fault.name, time.monotonic())
            self.windows.append(window)
            say(f"fault: {fault.name}")
            await fault.act(self.stack)
            window.back = time.monotonic()
            say(f"  back after {window.back - window.start:.1f} s")
            await asyncio.sleep(self.settle)
