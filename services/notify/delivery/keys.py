"""The secrets pages are signed with: the webhook secret (`X-Triage-Signature`) and the ack-link
secret (delivery/signing.py derives its key), each configured, or generated at first start and
kept, sealed, in notify.settings."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.models import Setting, sealed
from shared.phi import PhiUnreadable, ring_of

log = logging.getLogger(__name__)

SECRET_KEY = "alert_webhook_secret"
#: The secret ack links are signed with (a key derived from it: delivery/signing.py).
ACK_SECRET_KEY = "ack_link_secret"


async def webhook_secret(session: AsyncSession, *, configured: str | None) -> str:
    """The configured secret, or the one generated at first start (kept across restarts)."""
    return await stored_secret(session, SECRET_KEY, configured=configured)


async def ack_link_secret(session: AsyncSession, *, configured: str | None) -> str:
    """ACK_LINK_SECRET, or the one generated at first start (kept across restarts)."""
    return await stored_secret(session, ACK_SECRET_KEY, configured=configured)


async def stored_secret(session: AsyncSession, key: str, *, configured: str | None) -> str:
    """The configured secret, or the one stored under `key`, generated (sealed) at first start;
    replicas starting together agree on the first one stored.

    A stored secret that cannot be read (its key left the ring, or one planted in clear in a
    sealed database: whoever chose it could sign pages or acknowledgement links) is replaced by
    a new one, logged, rather than keeping notify from starting: paging goes on, and receivers
    take the new secret (or the operator configures one)."""
    if configured:
        return configured
    ring, column, row = ring_of(session), sealed("settings"), {"key": key}
    value = column.seal(ring, row, secrets.token_hex(32))
    await session.execute(insert(Setting).values(key=key, value=value).on_conflict_do_nothing())
    # The column, not the entity: opened here, so a value that cannot be read is handled.
    current = select(Setting.value).where(Setting.key == key)
    stored = await session.scalar(current)
    try:
        secret: str = column.open(ring, row, stored)
        return secret
    except PhiUnreadable:
        log.error("the generated secret %s cannot be read: a new one replaces it", key)
    # Only if no other replica replaced it meanwhile; then every replica reads the same one.
    await session.execute(
        update(Setting).where(Setting.key == key, Setting.value == stored).values(value=value)
    )
    secret = column.open(ring, row, await session.scalar(current))
    return secret
