"""A single webhook standing in for the on-call fallback pager (or an EHR's rest-hook).

A thin view of `Pagers` with one path, `/hook`: the same server, recording and scripted replies,
kept under the names the single-webhook tests use (`got`, `fail_next`, `wait_for` that returns
what arrived rather than failing, since some tests wait to see that nothing more came).
"""

from __future__ import annotations

from collections import deque

from tests.support.pagers import Got, Pagers, Reply, serve, shut

__all__ = ["Received", "Receiver", "serve", "shut"]

#: What the webhook got: when, headers, body (`.json`).
Received = Got

_NAME = "hook"


class Receiver:
    def __init__(self, port: int) -> None:
        self._pagers = Pagers(port)

    @property
    def port(self) -> int:
        return self._pagers.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{_NAME}"

    @property
    def got(self) -> list[Got]:
        return self._pagers.got[_NAME]

    @property
    def script(self) -> deque[Reply]:
        """Replies still to give before answering 200 again (retry tests)."""
        return self._pagers._script[_NAME]

    def fail_next(self, *statuses: int) -> None:
        self._pagers.script(_NAME, *statuses)

    def for_screening(self, screening_id: str) -> list[Got]:
        return self._pagers.pages(_NAME, screening_id)

    async def wait_for(
        self, screening_id: str, *, count: int = 1, timeout: float = 5.0
    ) -> list[Got]:
        try:
            return await self._pagers.wait_for(_NAME, screening_id, count=count, timeout=timeout)
        except AssertionError:
            return self.for_screening(screening_id)

    async def start(self) -> None:
        await self._pagers.start()

    async def stop(self) -> None:
        await self._pagers.stop()
