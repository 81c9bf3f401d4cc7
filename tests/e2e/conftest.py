"""Fixtures of the end-to-end modules that page clinicians of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from deploy.localstack import free_port
from tests.notify.pagers import Pagers


@pytest.fixture(scope="module")
async def pagers() -> AsyncIterator[Pagers]:
    """The clinicians' webhook endpoints, one server per module."""
    server = Pagers(port=free_port())
    await server.start()
    yield server
    await server.stop()
