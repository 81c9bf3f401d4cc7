"""A replica whose copy of the access topic cannot be confirmed current refuses every key, unless
it has the keys' source of truth to ask (intake): then a broker failover refuses nobody there,
and a revoked key is still refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.auth.credentials import Credential, key_digest, new_key
from shared.auth.directory import CredentialDirectory, CredentialsUnavailable
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
