"""PHI encrypted by the application: AES-256-GCM (`cryptography`), keys from a key ring.

`PHI_KEYS="kid:base64key,..."` (32-byte keys; the first is current). A value is stored as
`phi1:<kid>:<base64(nonce | ciphertext+tag)>`, its associated data naming the table, column and
row it belongs to, so a ciphertext copied to another row or column does not decrypt. What a
stolen database dump holds is these tokens: no name, number or note.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import event, inspect
from sqlalchemy.orm.attributes import set_committed_value

from shared.errors import DomainError

log = logging.getLogger(__name__)

PREFIX = "phi1:"


class PhiKeyError(ValueError):
    """PHI_KEYS is malformed, or a value's key is not in the ring; never names a key."""


class Undecryptable(Exception):
    """A stored value does not decrypt for its row and column: moved, altered or foreign."""


def new_phi_key() -> str:
    """A fresh key ring entry: `<kid>:<base64 of 32 random bytes>`."""
    return f"k{secrets.token_hex(4)}:{base64.b64encode(os.urandom(32)).decode()}"


def is_token(value: str | None) -> bool:
    return value is not None and value.startswith(PREFIX)


def token_kid(value: str) -> str:
    return value[len(PREFIX) :].split(":", 1)[0]


@dataclass
class SealState:
    """Whether the database's sealed columns hold only encrypted values (its `phi_sealed` row):
    then a value without the tag is refused rather than read as stored before encryption."""

    sealed: bool = False


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, AESGCM]
    current: str
    #: Shared by every session of the service (the ring is): set once the database is sealed.
    state: SealState = field(default_factory=SealState, compare=False, repr=False)

    @classmethod
    def parse(cls, spec: str) -> KeyRing | None:
        """The ring of `PHI_KEYS`; None when it is empty."""
        keys: dict[str, AESGCM] = {}
        order: list[str] = []
        for position, entry in enumerate((e.strip() for e in spec.split(",")), start=1):
            if not entry:
                continue
            kid, _, encoded = entry.partition(":")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except ValueError:
                raw = b""
            if not kid or ":" in kid or len(raw) != 32:
                raise PhiKeyError(f"PHI_KEYS entry {position}: want kid:<base64 of 32 bytes>")
            keys[kid] = AESGCM(raw)
            order.append(kid)
        return cls(keys, order[0]) if order else None

    def encrypt(self, plaintext: str, *, aad: str) -> str:
        nonce = os.urandom(12)
        sealed = self.keys[self.current].encrypt(nonce, plaintext.encode(), aad.encode())
        return f"{PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, aad: str) -> str:
        kid, _, body = token[len(PREFIX) :].partition(":")
        key = self.keys.get(kid)
        if key is None:
            raise PhiKeyError(f"a value is under key {kid!r}, which is not in PHI_KEYS")
        try:
            raw = base64.b64decode(body, validate=True)
            return key.decrypt(raw[:12], raw[12:], aad.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise Undecryptable(f"a value of {aad.split(':')[0]} does not decrypt") from exc


def aad(table: str, column: str, row: object) -> str:
    """Associated data binding a value to its row and column."""
    return f"{table}.{column}:{row}"


# --- sealed columns: which values are stored encrypted, and how the ORM stores and reads them ---

#: Where a session's key ring is kept (`Session.info`); None there means PHI_KEYS is unset.
RING = "phi"


class PhiUnreadable(DomainError):
    """A stored protected value cannot be read: its key is missing or it does not decrypt here."""

    status_code = 500
    code = "phi_unreadable"


@dataclass(frozen=True)
class Sealed:
    """A column stored encrypted: `schema.table`, the column, and the row key its AAD names.

    `json`: the attribute is a JSON value (a dict), stored as the token of its JSON text.
    Without a ring (PHI_KEYS unset) values are stored in clear, JSON as text; a value stored
    in clear is read as it is, so rows written before encryption stay readable until
    `triage phi rotate` seals them.
    """

    table: str
    column: str
    key: tuple[str, ...] = ("id",)
    json: bool = False

    def aad(self, row: object) -> str:
        """The associated data of this column in `row` (a mapping, a record or an ORM row)."""
        keyed = isinstance(row, Mapping | asyncpg.Record)
        get = row.__getitem__ if keyed else lambda k: getattr(row, k)  # type: ignore[index]
        return aad(self.table, self.column, "/".join(str(get(k)) for k in self.key))

    def seal(self, ring: KeyRing | None, row: object, value: Any) -> str | None:
        if value is None:
            return None
        text = json.dumps(value, separators=(",", ":")) if self.json else value
        return text if ring is None else ring.encrypt(text, aad=self.aad(row))

    def open(self, ring: KeyRing | None, row: object, stored: str | None) -> Any:
        """The value in clear; PhiUnreadable (logged, naming no value) when it cannot be."""
        text = self.open_text(ring, row, stored)
        return json.loads(text) if self.json and text is not None else text

    def open_text(self, ring: KeyRing | None, row: object, stored: str | None) -> str | None:
        """The stored text in clear (a JSON column's JSON text, not parsed).

        A value without the tag is one stored before encryption, read as it is, until the
        database is sealed (`SealState`): then it can only have been written around the
        application (a planted page target, plan entry or secret), and it is refused: logged
        naming the table, column and row, never the value."""
        if stored is None:
            return None
        if not is_token(stored):
            if ring is None or not ring.state.sealed:
                return stored
            log.error(
                "%s.%s of %s is not encrypted in a sealed database: refused",
                self.table,
                self.column,
                self._row_key(row),
            )
            raise PhiUnreadable(
                "this record's protected fields cannot be read; an operator has been told"
            )
        try:
            if ring is None:
                raise PhiKeyError("PHI_KEYS is not set")
            return ring.decrypt(stored, aad=self.aad(row))
        except (Undecryptable, PhiKeyError) as exc:
            row_key = self._row_key(row)
            log.error("%s.%s of %s does not decrypt: %s", self.table, self.column, row_key, exc)
            raise PhiUnreadable(
                "this record's protected fields cannot be read; an operator has been told"
            ) from exc

    def _row_key(self, row: object) -> str:
        return self.aad(row).rsplit(":", 1)[1]


def columns_of(sealed: Iterable[Sealed], table: str) -> tuple[Sealed, ...]:
    """The sealed columns of `table` (`schema.table`), in the order they are listed."""
    return tuple(c for c in sealed if c.table == table)


def ring_of(session: Any) -> KeyRing | None:
    """The key ring of a (sync or async) session: `Session.info[RING]`."""
    ring: KeyRing | None = session.info.get(RING)
    return ring


def protect(model: type, *columns: Sealed) -> None:
    """Store `columns` of an ORM model encrypted, and read them back in clear.

    The attributes hold clear values in Python. Just before a row is written its changed sealed
    attributes are swapped for their tokens, and swapped back once it is (mapper events), so the
    INSERT or UPDATE only ever carries ciphertext; a loaded row is opened as it loads. The ring
    comes from the session's `info` (`open_runtime` puts it there).
    """
    by_name = {c.column: c for c in columns}

    def opened(target: Any, ring: KeyRing | None, names: Iterable[str]) -> None:
        state = inspect(target)
        for name in names:
            column = by_name[name]
            if name in state.dict:
                set_committed_value(target, name, column.open(ring, target, state.dict[name]))

    @event.listens_for(model, "load")
    def _load(target: Any, context: Any) -> None:
        opened(target, ring_of(context.session), by_name)

    @event.listens_for(model, "refresh")
    def _refresh(target: Any, context: Any, attrs: Iterable[str] | None) -> None:
        opened(
            target,
            ring_of(context.session),
            by_name if attrs is None else [a for a in attrs if a in by_name],
        )

    def sealing(only_changed: bool) -> Callable[[Any, Any, Any], None]:
        def before(mapper: Any, connection: Any, target: Any) -> None:
            state = inspect(target)
            ring = ring_of(state.session)
            clear = state.info.setdefault("phi.clear", {})
            for name, column in by_name.items():
                if only_changed and not state.attrs[name].history.has_changes():
                    continue
                value = getattr(target, name)
                clear[name] = value
                setattr(target, name, column.seal(ring, target, value))

        return before

    def restored(mapper: Any, connection: Any, target: Any) -> None:
        state = inspect(target)
        for name, value in state.info.pop("phi.clear", {}).items():
            set_committed_value(target, name, value)

    event.listen(model, "before_insert", sealing(only_changed=False))
    event.listen(model, "before_update", sealing(only_changed=True))
    event.listen(model, "after_insert", restored)
    event.listen(model, "after_update", restored)


async def require_ring(sessions: Any, ring: KeyRing | None, columns: Iterable[Sealed]) -> None:
    """Refuse to start without a ring when any of `columns` holds a token; warn when none does."""
    columns = list(columns)
    if ring is not None or not columns:
        return
    async with sessions() as session:
        encrypted = await _scalar(session, _probe(columns, "{col} LIKE '" + PREFIX + "%'"))
    if encrypted:
        raise RuntimeError(
            "the database holds encrypted PHI and PHI_KEYS is not set: give the service its key "
            "ring (PHI_KEYS=kid:base64key,...; make run keeps it in .local/run/secrets/phi-keys)"
        )
    log.warning("PHI_KEYS is not set: protected fields are stored unencrypted")


# --- sealing: once every sealed value is encrypted, an untagged one is refused ------------------


async def _scalar(session: Any, statement: str) -> Any:
    """One value of a statement built here from our own table and column names (no input)."""
    return (await (await session.connection()).exec_driver_sql(statement)).scalar()


def _probe(columns: Iterable[Sealed], condition: str) -> str:
    """A statement: does any of `columns` hold a value meeting `condition` (on `{col}`)?"""
    tables: dict[str, list[str]] = {}
    for c in columns:
        tables.setdefault(c.table, []).append(c.column)
    probes = " OR ".join(
        f"EXISTS (SELECT 1 FROM {table} WHERE "
        + " OR ".join(f"({condition.format(col=col)})" for col in cols)
        + ")"
        for table, cols in tables.items()
    )
    return f"SELECT {probes}"


def _untagged_probe(columns: Iterable[Sealed]) -> str:
    """A statement: does any of `columns` hold a value without the tag (stored in clear)?"""
    return _probe(columns, "{col} IS NOT NULL AND {col} NOT LIKE '" + PREFIX + "%'")


_IS_SEALED = "SELECT EXISTS (SELECT 1 FROM {schema}.phi_sealed)"
_SEAL = "INSERT INTO {schema}.phi_sealed DEFAULT VALUES ON CONFLICT DO NOTHING"


async def is_sealed(conn: asyncpg.Connection, schema: str) -> bool:
    return bool(await conn.fetchval(_IS_SEALED.format(schema=schema)))


async def seal(conn: asyncpg.Connection, schema: str) -> None:
    """Mark `schema`'s sealed columns as holding only encrypted values (`triage phi rotate`)."""
    await conn.execute(_SEAL.format(schema=schema))


async def check_sealed(
    sessions: Any, ring: KeyRing | None, columns: Iterable[Sealed], schema: str
) -> bool:
    """At start: whether the database is sealed, sealing it when it holds no value in clear
    (created encrypted, or all encrypted by now); `ring.state` says so to every session.

    A sealed database and no ring is refused: what the service wrote would be in clear, and
    refused when read back."""
    columns = list(columns)
    if not columns:
        return False
    async with sessions() as session:
        sealed = bool(await _scalar(session, _IS_SEALED.format(schema=schema)))
        if ring is None:
            if sealed:
                raise RuntimeError(
                    f"the database's {schema} PHI is sealed (encrypted only) and PHI_KEYS is not "
                    "set: give the service its key ring"
                )
            return False
        if not sealed and not await _scalar(session, _untagged_probe(columns)):
            await (await session.connection()).exec_driver_sql(_SEAL.format(schema=schema))
            await session.commit()
            sealed = True
    if sealed:
        ring.state.sealed = True
    else:
        log.warning(
            "%s holds PHI stored before encryption: run `triage phi rotate` to encrypt it; until "
            "then a value without the encryption tag is read as it is",
            schema,
        )
    return sealed


async def watch_sealed(sessions: Any, ring: KeyRing, schema: str, *, every: float = 10.0) -> None:
    """Until the database is sealed (`triage phi rotate` ran while the service was up), look
    every `every` seconds; then refuse values in clear from the next read on. It then idles for
    the service's lifetime (a runtime's loop that ends reads as a dead one)."""
    while not ring.state.sealed:
        await asyncio.sleep(every)
        try:
            async with sessions() as session:
                found = await _scalar(session, _IS_SEALED.format(schema=schema))
        except Exception as exc:  # the database is away: look again later
            log.warning("could not read whether %s PHI is sealed: %s", schema, type(exc).__name__)
            continue
        if found:
            ring.state.sealed = True
            log.info("%s PHI is sealed: values in clear are refused from now on", schema)
    await asyncio.Event().wait()
