"""The console as a real process in front of the session's services, and Debian's Chromium
driven by Playwright (it cannot download its own browser here).

The console is given a database URL and a Kafka address that lead nowhere: it must not need
them (it holds no state, and only calls the services' HTTP APIs).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from deploy.localstack import free_port
from services.console.session import new_session_key
from tests.support.services import CONSOLE_PORT, ServiceProcesses

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
#: Screenshots of the journeys: in .local/screenshots on every run, and in docs/screenshots (the
#: README's) with `make screenshots` (SCREENSHOTS_DIR), so a test run leaves the tree clean.
SCREENSHOTS = ROOT / os.environ.get("SCREENSHOTS_DIR", ".local/screenshots")
#: Where nothing listens: the console must never try its database or a topic.
NOWHERE = {
    "DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/none",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
}


def _console(
    services: ServiceProcesses, log_dir: Path, port: int, **settings: str
) -> Iterator[ServiceProcesses]:
    procs = ServiceProcesses(
        env={
            **NOWHERE,
            "INTAKE_URL": services.url("intake"),
            "RISK_URL": services.url("risk"),
            "NOTIFY_URL": services.url("notify"),
            "CONSOLE_SESSION_KEYS": new_session_key(),
            "CONSOLE_LIVE_SECONDS": "1",
            "LOG_FORMAT": "text",
            "PATH": __import__("os").environ["PATH"],
            **settings,
        },
        ports={"console": port},
        log_dir=log_dir,
    )
    procs.start("console")
    try:
        yield procs
    finally:
        procs.stop()


@pytest.fixture(scope="session")
def console(
    services: ServiceProcesses, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    yield from _console(services, tmp_path_factory.mktemp("console-logs"), CONSOLE_PORT)


@pytest.fixture(scope="session")
def hasty_console(
    services: ServiceProcesses, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    """A console that logs off after 3 idle seconds (the real default is 15 minutes)."""
    yield from _console(
        services,
        tmp_path_factory.mktemp("hasty-console-logs"),
        free_port(),
        CONSOLE_IDLE_MINUTES="0.05",
    )


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(
            f"no Chromium at {CHROMIUM}: the browser tests need Debian's package "
            "(`apt-get install chromium`; `.ci/run` installs it when run as root)"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        await chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
