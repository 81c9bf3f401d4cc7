"""PHI encrypted by the application: AES-256-GCM (`cryptography`), keys from a key ring.

`PHI_KEYS="kid:base64key,..."` (32-byte keys; the first is current). A value is stored as
`phi1:<kid>:<base64(nonce | ciphertext+tag)>`, its associated data naming the table, column and
row it belongs to, so a ciphertext copied to another row or column does not decrypt. What a
stolen database dump holds is these tokens: no name, number or note.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, AESGCM]
    current: str

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

    def seal(self, value: str | None, *, aad: str) -> str | None:
        return None if value is None else self.encrypt(value, aad=aad)

    def open(self, value: str | None, *, aad: str) -> str | None:
        """The plaintext of a stored value (one stored before encryption is returned as is)."""
        if value is None or not is_token(value):
            return value
        return self.decrypt(value, aad=aad)


def aad(table: str, column: str, row: object) -> str:
    """Associated data binding a value to its row and column."""
    return f"{table}.{column}:{row}"
