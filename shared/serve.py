"""Run one service's app under uvicorn (the `__main__` of each service), and stop it gently.

SIGTERM (a rolling restart, `make run` stopping) or Ctrl-C:
1. readiness answers 503 at once (`STOPPING`), while requests are still served for
   SHUTDOWN_DELAY_SECONDS, the time a load balancer needs to notice;
2. the listener closes and requests in flight get SHUTDOWN_GRACE_SECONDS to finish;
3. the app's lifespan ends (shared/runtime.py): the consumer finishes its batch, commits its
   offsets and leaves its group; the relay publishes what was committed; the producer flushes.
A second signal stops at once. A request that got a 2xx was committed first, so no stop loses it.
A stop that still has not ended STOP_DEADLINE_EXTRA_SECONDS after the delay and the grace exits
anyway, logging what was still running (an orchestrator would kill it; a test waits for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

from shared import tracing
from shared.logging import configure_logging
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

#: Set when the process was asked to stop: readiness answers 503 from then on (shared/http.py).
STOPPING = threading.Event()
#: The app's own end (consumers leaving their groups, pages in flight recorded) gets this long
#: after the delay and the grace; past it the process exits, naming what had not finished.
STOP_DEADLINE_EXTRA_SECONDS = 10.0
#: How often the server's own loop wakes (the Date header, the request limit).
TICK_SECONDS = 1.0


def _where(task: asyncio.Task[object]) -> str:
    """A task's name and the chain of coroutines it waits in, outermost first, with the
    innermost place (`Task-2: __aexit__ > lifespan > never_ends > wait at locks.py:213`)."""
    coro: object = task.get_coro()
    names, place = [], "?"
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            names.append(frame.f_code.co_name)
            place = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return f"{task.get_name()}: {' > '.join(names) or '?'} at {place}"


def _exit_after(seconds: float, loop: asyncio.AbstractEventLoop | None) -> None:
    """Exit the process if it is still stopping `seconds` from now."""

    def expire() -> None:
        running = sorted(_where(t) for t in asyncio.all_tasks(loop)) if loop else []
        log.error(
            "the stop did not finish in %.0f s; exiting. Still running: %s",
            seconds,
            "; ".join(running) or "(unknown)",
        )
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


class GentleServer(uvicorn.Server):
    """uvicorn's server, with a delay between the stop signal and closing the listener."""

    def __init__(self, config: uvicorn.Config, *, delay_seconds: float) -> None:
        super().__init__(config)
        self._delay = delay_seconds
        self._stop_at: float | None = None
        grace = config.timeout_graceful_shutdown or 0
        self._deadline = delay_seconds + grace + STOP_DEADLINE_EXTRA_SECONDS
        #: Wakes `main_loop` (thread- and signal-safe); None until it runs.
        self._wake_soon: Callable[[], object] | None = None

    async def main_loop(self) -> None:
        """uvicorn's loop, woken once a second (uvicorn's wakes ten times a second: a tenth of
        an idle service's wake-ups), and at once by a stop signal or when the delay ends.

        Each wake is a second to `on_tick`, which refreshes the Date header then."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        self._wake_soon = lambda: loop.call_soon_threadsafe(wake.set)
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000
            timeout = TICK_SECONDS
            if self._stop_at is not None:
                timeout = min(timeout, max(0.0, self._stop_at - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
            wake.clear()
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._wake_soon is not None:
            # The loop notices the signal now, not at its next tick (a closed loop: no matter).
            with contextlib.suppress(RuntimeError):
                self._wake_soon()
        if STOPPING.is_set():  # asked twice: stop now, as uvicorn does
            self._stop_at = None
            super().handle_exit(sig, frame)
            return
        STOPPING.set()
        self._captured_signals.append(sig)
        self._stop_at = time.monotonic() + self._delay
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        _exit_after(self._deadline, loop)
        log.info(
            "%s: not ready from now; closing in %.1f s",
            signal.Signals(sig).name,
            self._delay,
        )

    async def on_tick(self, counter: int) -> bool:
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit = True
        return await super().on_tick(counter)


def http_stack() -> tuple[str, str]:
    """uvicorn's event loop and HTTP parser: uvloop and httptools (C, a fraction of the CPU per
    request of asyncio's loop and h11), asyncio and h11 where they are not installed."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    return loop, http


def serve(app_factory: str, settings: ServiceSettings, *, service: str) -> None:
    configure_logging(settings.log_level, service=service, fmt=settings.log_format)
    # Before the app is made: base_app instruments it when tracing is on.
    tracing.setup(service)
    loop, http = http_stack()
    log.info("serving with %s and %s", loop, http)
    config = uvicorn.Config(
        app_factory,
        factory=True,
        loop=loop,
        http=http,
        host=getattr(settings, "host", "127.0.0.1"),
        port=getattr(settings, "port", 8000),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        # HTTPS when both are set (docs/security.md, "Transport"); else HTTP on 127.0.0.1.
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )
    GentleServer(config, delay_seconds=settings.shutdown_delay_seconds).run()
