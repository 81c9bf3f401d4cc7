"""API keys, on intake: issue (shown once), list (never the key), revoke; the keys of
API_KEYS_BOOTSTRAP; the announcement of every key at each start.

Each change commits with its `credential.*` event on the access topic (the outbox), from which
every replica of every service keeps its own copy of the valid keys (`shared.auth.directory`):
a revoked key is refused everywhere within about a second. The replica that made the change
applies it at once, so a new key works on it for the very next request.

Every record is signed with intake's key (ACCESS_SIGNING_KEY, `shared.auth.signing`): the
services refuse any other. At each start intake announces every key's state again, signed, so
the newest record of each key on the topic is one every service takes, whatever the topic held
before (records written unsigned, or signed with a key since replaced), and each revocation
stays on the topic in that form.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.access.models import ApiKey
from services.intake.access.schemas import ApiKeyIn, ApiKeyIssued, ApiKeyOut
from services.intake.db import outbox
from services.intake.settings import IntakeSettings
from shared import audit
from shared.auth import Role
from shared.auth.credentials import Credential, key_digest, new_key
from shared.auth.directory import Authority
from shared.auth.signing import RecordSigner, RecordVerifier
from shared.db import SessionFactory, driver, transaction
from shared.errors import NotFound, Unprocessable
from shared.events import Envelope, utcnow
from shared.outbox import add_event
from shared.pagination import keyset_page
from shared.runtime import Runtime
from shared.topics import ACCESS_EVENTS


def key_authority(sessions: SessionFactory) -> Authority:
    """The keys' table as the credential directory's authority (`shared.auth.directory`):
    while intake cannot confirm its copy of the access topic current (a broker failover), it
    checks a key here instead of refusing it."""

    async def lookup(key_hash: str) -> Credential | None:
        async with sessions() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
            return None if row is None else _credential(row)

    return lookup


def _credential(row: ApiKey) -> Credential:
    return Credential(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        key_hash=row.key_hash,
        identifier_systems=tuple(row.identifier_systems),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def access_signer(cfg: IntakeSettings) -> RecordSigner:
    """ACCESS_SIGNING_KEY, required, and ACCESS_VERIFY_KEY, when given, its public half: an
    intake that could not sign, or whose records the services would refuse, does not start."""
    if not cfg.access_signing_key:
        raise RuntimeError(
            "ACCESS_SIGNING_KEY is not set: intake signs every record of the access topic and"
            " every service refuses unsigned ones (make run keeps it in"
            " .local/run/secrets/access-signing-key)"
        )
    signer = RecordSigner.from_setting(cfg.access_signing_key)
    if cfg.access_verify_key:
        given = RecordVerifier.from_setting(cfg.access_verify_key).public_bytes()
        if given != signer.verifier().public_bytes():
            raise RuntimeError("ACCESS_VERIFY_KEY is not the public half of ACCESS_SIGNING_KEY")
    return signer


async def _announce(
    session: AsyncSession, credential: Credential, signer: RecordSigner, *, correlation_id: str
) -> None:
    kind = "credential.revoked" if credential.revoked_at else "credential.issued"
    event = credential.event().envelope(correlation_id=correlation_id, event_type=kind)
    signed = Envelope(
        event_id=event.event_id,
        type=event.type,
        occurred_at=event.occurred_at,
        correlation_id=event.correlation_id,
        data=signer.sign(event.data),
    )
    await add_event(session, outbox, topic=ACCESS_EVENTS, key=credential.id, event=signed)


async def announce_every_key(sessions: SessionFactory, signer: RecordSigner) -> None:
    """Every key's state (revoked and expired ones too), signed, on the access topic: at each
    start. The newest record of each key is then one the services take, whatever the topic held
    before: records written unsigned, or signed with a key since replaced."""
    async with transaction(sessions) as session:
        rows = await session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
        for row in rows.all():
            await _announce(session, _credential(row), signer, correlation_id="start")


async def ensure_bootstrap(sessions: SessionFactory, credentials: Sequence[Credential]) -> None:
    """API_KEYS_BOOTSTRAP: create the keys that do not exist yet (a revoked one stays revoked).

    Announced by `announce_every_key`, which runs next at every start."""
    if not credentials:
        return
    async with transaction(sessions) as session:
        # Replicas starting together (a scale-up, `make chaos`) would both insert the same key:
        # one at a time, so the second sees the first's keys.
        await (await driver(session)).execute(
            "SELECT pg_advisory_xact_lock(hashtext('intake.api_keys bootstrap'))"
        )
        now = utcnow()
        for credential in credentials:
            row = ApiKey(
                id=credential.id,
                name=credential.name,
                role=credential.role.value,
                identifier_systems=list(credential.identifier_systems),
                key_hash=credential.key_hash,
                created_at=now,
            )
            if await session.get(ApiKey, credential.id) is None:
                session.add(row)
                await session.flush()


async def issue_key(
    data: ApiKeyIn, sessions: SessionFactory, runtime: Runtime, signer: RecordSigner
) -> ApiKeyIssued:
    """A new key, shown once. An `ehr` key is bound to its identifier systems."""
    if (data.role == Role.EHR) != bool(data.identifier_systems):
        raise Unprocessable(
            "identifier_systems are required for an ehr key and refused for any other",
            problems=[{"field": "identifier_systems", "problem": "only and always for ehr"}],
        )
    key = new_key()
    row = ApiKey(
        id=uuid.uuid4(),
        name=data.name,
        role=data.role.value,
        identifier_systems=list(dict.fromkeys(data.identifier_systems)),
        key_hash=key_digest(key),
        created_at=utcnow(),
        expires_at=data.expires_at,
    )
    audit.about(f"api-key/{row.id}")
    async with transaction(sessions) as session:
        session.add(row)
        await session.flush()
        await _announce(session, _credential(row), signer, correlation_id=_new_id())
    runtime.gate.directory.apply(_credential(row))
    # On the topic before the answer, so risk and notify know the key when its holder calls.
    await runtime.relay.publish_all()
    return ApiKeyIssued(**key_out(row).model_dump(), key=key)


def _new_id() -> str:
    return str(uuid.uuid4())


def key_out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        identifier_systems=list(row.identifier_systems),
        expires_at=row.expires_at,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def list_keys(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> tuple[list[ApiKeyOut], str | None]:
    """Every key, oldest first (never the key itself), `limit` at a time, and the next page's
    cursor (None on the last page)."""
    rows, following = await keyset_page(session, select(ApiKey), ApiKey, limit=limit, cursor=cursor)
    return [key_out(r) for r in rows], following


async def revoke_key(
    key_id: uuid.UUID, sessions: SessionFactory, runtime: Runtime, signer: RecordSigner
) -> None:
    """Revoke: every service refuses the key within about a second (2 s at most)."""
    async with transaction(sessions) as session:
        row = await session.get(ApiKey, key_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no API key {key_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            await session.flush()
            await _announce(session, _credential(row), signer, correlation_id=_new_id())
        credential = _credential(row)
    runtime.gate.directory.apply(credential)
