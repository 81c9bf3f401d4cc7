"""Notify's background loops, each started the same way: built from the runtime, run as one task
for the service's lifetime, and stopped together before the HTTP clients they send through close.

- the deliverer (delivery/deliverer.py): due pages and escalations;
- the reminder sender (reminders/sender.py): overdue safety plans' reminders;
- the assessment watchdog (watchdog/service.py): screenings not assessed in time.

Each sleeps until its next due time and is woken by a NOTIFY (shared/wakeup.py): no polling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from services.notify.delivery.channels import Channel, WebhookChannel
from services.notify.delivery.deliverer import Deliverer
from services.notify.metrics import Metrics
from services.notify.reminders.sender import ReminderSender
from services.notify.settings import NotifySettings
from services.notify.watchdog.service import AssessmentWatchdog
from shared.runtime import Runtime


class Worker(Protocol):
    async def run(self) -> None:
        """Work until cancelled."""


@dataclass(frozen=True)
class Workers:
    deliverer: Deliverer
    reminders: ReminderSender
    watchdog: AssessmentWatchdog
    tasks: tuple[asyncio.Task[None], ...]

    async def stop(self) -> None:
        """Cancel every loop and wait for it: pages in flight are recorded first."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def start_workers(
    runtime: Runtime,
    *,
    settings: NotifySettings,
    webhook: WebhookChannel,
    channels: Mapping[str, Channel],
    ack_keys: list[bytes],
    metrics: Metrics,
) -> Workers:
    """Build every loop and run each in a task of the runtime (a crash is logged)."""
    deliverer = Deliverer(
        sessions=runtime.sessions,
        channels=dict(channels),
        settings=settings,
        ack_keys=ack_keys,
        listener=runtime.listener,
        metrics=metrics,
        phi=runtime.phi,
    )
    reminders = ReminderSender(
        sessions=runtime.sessions, settings=settings, channel=webhook, listener=runtime.listener
    )
    watchdog = AssessmentWatchdog(
        sessions=runtime.sessions, settings=settings, listener=runtime.listener
    )
    loops: dict[str, Worker] = {
        "notify-assessment-watchdog": watchdog,
        "notify-reminders": reminders,
        "notify-deliverer": deliverer,
    }
    tasks = tuple(runtime.spawn(loop.run(), name=name) for name, loop in loops.items())
    return Workers(deliverer=deliverer, reminders=reminders, watchdog=watchdog, tasks=tasks)
