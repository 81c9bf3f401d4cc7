from __future__ import annotations

import pytest

from shared.settings import ServiceSettings


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://app:pw@db-rw:5432/app", "postgresql+asyncpg://app:pw@db-rw:5432/app"),
        ("postgres://app:pw@db-rw/app", "postgresql+asyncpg://app:pw@db-rw/app"),
        ("postgresql+asyncpg://x@h/d", "postgresql+asyncpg://x@h/d"),
    ],
)
def test_a_plain_postgresql_url_uses_asyncpg(
    monkeypatch: pytest.MonkeyPatch, given: str, used: str
) -> None:
    """CloudNativePG's app secret holds a plain URL; the chart passes it as DATABASE_URL."""
    monkeypatch.setenv("DATABASE_URL", given)
    assert ServiceSettings().database_url == used
