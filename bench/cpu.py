"""CPU used by each part of the system during the load, to say what limits the rate."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence

import psutil


def _cpu_seconds(pid: int) -> float | None:
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    return None


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores), from boot."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0))


class CpuMeter:
    """`start()` then `stop()`: % of one core used in between, per named group of processes,
    plus `other`: whatever else kept the machine busy meanwhile (another test suite, say),
    which makes the run's figures worse than the system's and must be read with them.

    The groups are asked for again at the stop, so PostgreSQL backends opened meanwhile count
    (from their start); a process that ended in between is missed, which the pooled
    connections of the services make rare.
    """

    def __init__(self, groups: Callable[[], Mapping[str, Sequence[int]]]) -> None:
        self._groups = groups
        self._before: dict[int, float] = {}
        self._t0 = 0.0
        self._machine0 = 0.0
        self.wall = 0.0  # seconds between start and stop

    def start(self) -> None:
        self._before = {
            pid: t
            for pids in self._groups().values()
            for pid in pids
            if (t := _cpu_seconds(pid)) is not None
        }
        self._t0 = time.monotonic()
        self._machine0 = _machine_busy()

    def stop(self) -> dict[str, float]:
        wall = self.wall = time.monotonic() - self._t0
        out: dict[str, float] = {}
        for name, pids in self._groups().items():
            used = 0.0
            for pid in pids:
                now = _cpu_seconds(pid)
                if now is not None:
                    used += now - self._before.get(pid, 0.0)
            out[name] = 100.0 * used / wall if wall > 0 else 0.0
        machine = 100.0 * (_machine_busy() - self._machine0) / wall if wall > 0 else 0.0
        out["other"] = max(0.0, machine - sum(out.values()))
        return out
