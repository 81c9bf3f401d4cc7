"""A replica whose copy of the access topic cannot be confirmed current refuses every key, unless
it has the keys' source of truth to ask (intake): then a broker failover refuses nobody there,
and a revoked key is still refused."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.localstack import LocalStack
from shared.auth.credentials import Credential, key_digest, new_key
from shared.auth.directory import (
    FETCH_WAIT_MS,
    TURN_SECONDS,
    CredentialDirectory,
    CredentialsUnavailable,
)
from shared.auth.roles import Role


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _credential(key: str, *, revoked: bool = False) -> Credential:
    return Credential(
        id=uuid.uuid4(),
        name="desk 4",
        role=Role.HOTLINE,
        key_hash=key_digest(key),
        revoked_at=datetime.now(UTC) if revoked else None,
    )


async def test_a_stale_copy_refuses_every_key_without_an_authority() -> None:
    key = new_key()
    clock = Clock()
    directory = CredentialDirectory(bootstrap=[_credential(key)], max_staleness=5, clock=clock)
    directory.mark_synced(clock.now)
    assert (await directory.principal_or_wait(key)) is not None
    clock.now += 6
    assert not directory.answering
    with pytest.raises(CredentialsUnavailable):
        await directory.principal_or_wait(key)


async def test_a_stale_copy_asks_its_authority_which_knows_revocations() -> None:
    valid, revoked, unknown = new_key(), new_key(), new_key()
    table = {key_digest(valid): _credential(valid), key_digest(revoked): _credential(revoked)}
    asked: list[str] = []

    async def authority(key_hash: str) -> Credential | None:
        asked.append(key_hash)
        return table.get(key_hash)

    clock = Clock()
    # The copy still holds `revoked` as valid: its revocation has not been read yet.
    directory = CredentialDirectory(
        bootstrap=[_credential(valid), _credential(revoked)],
        max_staleness=5,
        clock=clock,
        authority=authority,
    )
    table[key_digest(revoked)] = _credential(revoked, revoked=True)
    assert directory.answering, "intake stays ready while it can ask its table"

    principal = await directory.principal_or_wait(valid)
    assert principal is not None and principal.role is Role.HOTLINE
    assert await directory.principal_or_wait(revoked) is None
    assert await directory.principal_or_wait(unknown) is None
    assert len(asked) == 3

    # Fresh again, the copy answers alone.
    directory.mark_synced(clock.now)
    assert await directory.principal_or_wait(valid) is not None
    assert len(asked) == 3


async def test_an_authority_that_cannot_answer_refuses_the_key() -> None:
    async def authority(key_hash: str) -> Credential | None:
        raise ConnectionRefusedError("database down")

    directory = CredentialDirectory(authority=authority)
    with pytest.raises(CredentialsUnavailable):
        await directory.principal_or_wait(new_key())


async def test_a_request_for_an_unknown_key_gets_the_topics_end_confirmed_at_once(
    stack: LocalStack,
) -> None:
    """A request for a key this replica has never seen has the end confirmed at once (one
    ListOffsets request, the loop woken for it) and then looks again; and between such requests
    the fetches' own answers keep the copy confirmed, with no request of its own."""
    directory = CredentialDirectory()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_WAIT_MS,
    )
    await consumer.start()
    follow = asyncio.create_task(directory.follow(consumer))
    try:
        for _ in range(600):  # the first confirmation (catching up: every 0.2 s)
            if directory.fresh:
                break
            await asyncio.sleep(0.05)
        assert directory.fresh
        asked_ends = 0
        looked_at = 0.0
        end_offsets = consumer.end_offsets

        async def counted(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
            nonlocal asked_ends, looked_at
            asked_ends += 1
            looked_at = time.monotonic()
            return await end_offsets(partitions)

        consumer.end_offsets = counted  # type: ignore[method-assign]
        for _ in range(3):  # longer than a fetch's wait, three times over
            confirmed = time.monotonic()
            await asyncio.sleep(FETCH_WAIT_MS / 1000 + TURN_SECONDS + 0.3)
            assert directory._synced_at is not None and directory._synced_at > confirmed
        assert asked_ends == 0, "confirmed by ListOffsets, not by the fetches' answers"
        turned = asyncio.Event()
        answered_at = directory._answered_at

        async def turning(*args: Any) -> float | None:
            turned.set()
            return await answered_at(*args)

        directory._answered_at = turning  # type: ignore[method-assign]
        await turned.wait()  # the loop's turn: it then waits a whole turn for records
        asked = time.monotonic()
        assert await directory.principal_or_wait(new_key(), timeout=1.5) is None
        answered = time.monotonic() - asked
        assert asked_ends == 1, "the waiting request did not have the end confirmed by a request"
        # The look began at once (the request woke the loop), not at the loop's next turn; its
        # request waited at most for the fetch on the same connection, not the 1.5 s timeout.
        assert looked_at - asked < 0.2 < TURN_SECONDS
        assert answered < FETCH_WAIT_MS / 1000 + 0.3 < 1.5
        # Woken while it waits for records, the loop keeps that fetch for its next turn: a
        # getmany cancelled then would leave its waiter in aiokafka's fetcher until a record
        # comes, one more for each request with an unknown key while the topic is quiet.
        for _ in range(5):
            assert await directory.principal_or_wait(new_key(), timeout=1.5) is None
        assert len(consumer._fetcher._fetch_waiters) <= 1
    finally:
        follow.cancel()
        await asyncio.gather(follow, return_exceptions=True)
        await consumer.stop()
