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
