"""The alert's short code ("Reply 7K3Q or 1"): given at its first text, kept for its life,
unique among the open alerts, and not reused within a day of an alert's last change."""

from __future__ import annotations

import secrets
import uuid

import asyncpg

from services.notify.phones.queries import ALERT_CODE, SET_CODE
from services.notify.phones.replies import CODE_ALPHABET, CODE_LENGTH

#: Codes drawn before giving up (with a few hundred open alerts, one draw nearly always does).
DRAWS = 20


def draw() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


async def code_of(conn: asyncpg.Connection, alert_id: uuid.UUID) -> str:
    """The alert's code, given now if it has none (in a transaction of its own)."""
    async with conn.transaction():
        found: str | None = await conn.fetchval(ALERT_CODE.sql, *ALERT_CODE.args(id=alert_id))
        if found:
            return found
        for _ in range(DRAWS):
            try:
                async with conn.transaction():  # a savepoint: a lost race only costs a draw
                    given: str | None = await conn.fetchval(
                        SET_CODE.sql, *SET_CODE.args(id=alert_id, code=draw())
                    )
            except asyncpg.UniqueViolationError:
                continue
            if given:
                return given
    raise RuntimeError("no free alert code after many draws")
