"""API keys: how they are made, stored (a SHA-256 digest only) and announced to every service.

Intake issues and revokes keys; each change is published on `triage.access.events.v1`
(compacted, keyed by the key's id) with the key's whole state, so the newest record of a key is
all any service needs. The plaintext key is shown once, at issue, and stored nowhere.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from shared.auth.principal import Principal
from shared.auth.roles import Role
from shared.events import EventData

#: Every issued key starts with this, so secret scanners (and people) recognise a leaked one.
KEY_PREFIX = "ctk_"
#: Bootstrap keys are chosen by the operator; anything shorter is refused at start.
MIN_KEY_LENGTH = 24
#: Namespace of bootstrap keys' ids: the same key gets the same id in every service.
_BOOTSTRAP_NAMESPACE = uuid.UUID("5f0c3c8e-2b1e-4a58-9a57-7d1f6c2a9e10")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$")


def new_key() -> str:
    """A fresh API key: the prefix and 32 random bytes (43 URL-safe characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """What is stored and compared: the hex SHA-256 of the key. A 256-bit random secret needs
    no slow hash; a dictionary lookup of the digest is a comparison that leaks no timing about
    the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()


def valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


@dataclass(frozen=True, slots=True)
class Credential:
    """One API key's state, as intake stores it and every service keeps it in memory."""

    id: uuid.UUID
    name: str
    role: Role
    key_hash: str
    identifier_systems: tuple[str, ...] = ()
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    principal: Principal = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        principal = Principal(str(self.id), self.name, self.role, self.identifier_systems)
        object.__setattr__(self, "principal", principal)

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def event(self) -> CredentialChanged:
        return CredentialChanged(
            credential_id=self.id,
            name=self.name,
            role=self.role,
            key_hash=self.key_hash,
            identifier_systems=list(self.identifier_systems),
            created_at=self.created_at,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
        )


class CredentialChanged(EventData):
    """`credential.issued` / `credential.revoked`: the key's whole state after the change.

    Carries the key's digest, never the key: a digest of a 256-bit random key cannot be turned
    back into it."""

    TYPE: ClassVar[str] = "credential.changed"

    credential_id: uuid.UUID
    name: str
    role: Role
    key_hash: str
    identifier_systems: list[str] = []
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def credential(self) -> Credential:
        return Credential(
            id=self.credential_id,
            name=self.name,
            role=self.role,
            key_hash=self.key_hash,
            identifier_systems=tuple(self.identifier_systems),
            created_at=self.created_at,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
        )


class BootstrapError(ValueError):
    """API_KEYS_BOOTSTRAP is malformed; the message names the entry by position, never the key."""


def parse_bootstrap(spec: str) -> list[Credential]:
    """`name:role:key[:system|system...],...` (the systems only for `ehr`) as credentials.

    A bootstrap key's id is derived from its digest, so intake, risk and notify, each reading
    the same setting, agree on it, and a revocation through the API reaches all three.
    """
    out: list[Credential] = []
    for position, entry in enumerate((e.strip() for e in spec.split(",")), start=1):
        if not entry:
            continue
        name, _, rest = entry.partition(":")
        role, _, rest = rest.partition(":")
        key, _, systems = rest.partition(":")
        where = f"API_KEYS_BOOTSTRAP entry {position}"
        if not valid_name(name):
            raise BootstrapError(f"{where}: the name must be a short identifier")
        if role not in Role.__members__.values():
            raise BootstrapError(f"{where}: unknown role (one of {', '.join(Role)})")
        if len(key) < MIN_KEY_LENGTH:
            raise BootstrapError(f"{where}: the key must be at least {MIN_KEY_LENGTH} characters")
        system_list = tuple(s for s in systems.split("|") if s)
        if system_list and role != Role.EHR:
            raise BootstrapError(f"{where}: only an ehr key is bound to identifier systems")
        if role == Role.EHR and not system_list:
            raise BootstrapError(f"{where}: an ehr key needs its identifier systems")
        digest = key_digest(key)
        out.append(
            Credential(
                id=uuid.uuid5(_BOOTSTRAP_NAMESPACE, digest),
                name=name,
                role=Role(role),
                key_hash=digest,
                identifier_systems=system_list,
            )
        )
    return out
