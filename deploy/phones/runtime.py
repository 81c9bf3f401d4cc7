"""What the messaging and voice halves share: settings, store, signed webhooks, and the
background tasks that play the network's side (delivery receipts, ringing, timeouts).

The tasks are kept so they can be cancelled at shutdown, and so a test can wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from deploy.phones.settings import PhonesSettings
from deploy.phones.store import Store
from deploy.phones.webhooks import Webhooks


class Runtime:
    def __init__(self, settings: PhonesSettings, webhooks: Webhooks) -> None:
        self.settings = settings
        self.store = Store(settings.max_items, settings.max_phones)
        self.webhooks = webhooks
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any], *, timer: bool = False) -> None:
        """Run `work` in the background; a `timer` (a call's ring timeout) is not waited for
        by `idle`."""
        task = asyncio.get_running_loop().create_task(work)
        kept = self._timers if timer else self._tasks
        kept.add(task)
        task.add_done_callback(kept.discard)

    async def idle(self) -> None:
        """Until no background work is left (tests: every callback has been made)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        every = [*self._tasks, *self._timers]
        for task in every:
            task.cancel()
        for task in every:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
