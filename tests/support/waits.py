"""Waiting for the system to reach a state, without fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx


async def wait_case(
    intake: httpx.AsyncClient, sid: str, until: Callable[[dict], bool], timeout: float = 10.0
) -> dict:
    deadline = time.monotonic() + timeout
    case: dict = {}
    while time.monotonic() < deadline:
        case = (await intake.get(f"/v1/screenings/{sid}")).json()
        if until(case):
            return case
        await asyncio.sleep(0.05)
    raise AssertionError(f"case {sid} never reached the expected state: {case}")


async def wait_alert(
    notify: httpx.AsyncClient, alert_id: str, until: Callable[[dict], bool], timeout: float = 10.0
) -> dict:
    """Notify's view of an alert once `until` holds (a page can arrive before its commit)."""
    deadline = time.monotonic() + timeout
    alert: dict = {}
    while time.monotonic() < deadline:
        alert = (await notify.get(f"/v1/alerts/{alert_id}")).json()
        if until(alert):
            return alert
        await asyncio.sleep(0.05)
    raise AssertionError(f"alert {alert_id} never reached the expected state: {alert}")
