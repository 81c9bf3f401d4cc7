"""Signed access records: only intake's key makes a `credential.changed` record that counts.

Every service builds its copy of the valid keys from `triage.access.events.v1`; without a
signature, whoever can write to that topic could announce an admin key of their own. Intake
signs each record's `data` with an Ed25519 key only it holds (ACCESS_SIGNING_KEY); every
service verifies it with the public key (ACCESS_VERIFY_KEY) and refuses a record that is
unsigned, badly signed, altered after signing, or filed under another key's id.

What is signed is a canonical JSON of `data` without its `signature` (keys sorted, no spaces),
after a context line, so the signature cannot be taken for one of the audit checkpoints' (same
algorithm, another key, another context). The verifier canonicalises the `data` it received,
not a model's re-serialisation of it: a field added, dropped or changed breaks the signature.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

#: What every signed byte string starts with: the purpose and its version.
CONTEXT = b"crisis-triage access record v1\n"
#: The field of `data` that carries the signature (base64 of 64 bytes).
SIGNATURE = "signature"


class AccessKeyError(ValueError):
    """ACCESS_SIGNING_KEY / ACCESS_VERIFY_KEY is malformed; never says the key."""


class RecordRefused(ValueError):
    """A record that no service may apply; the message says why, never what it carries."""


def _canonical(data: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in data.items() if k != SIGNATURE}
    body = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return CONTEXT + body.encode()


def _raw(encoded: str, setting: str) -> bytes:
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise AccessKeyError(f"{setting} must be 32 bytes of Ed25519 key, base64")
    return raw


class RecordSigner:
    """Intake's side: signs the `data` of each record it announces."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def from_setting(cls, encoded: str) -> RecordSigner:
        """ACCESS_SIGNING_KEY: the raw 32-byte Ed25519 private key, base64."""
        raw = _raw(encoded, "ACCESS_SIGNING_KEY")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def sign(self, data: dict[str, Any]) -> dict[str, Any]:
        """`data` with its signature (any signature it had is replaced)."""
        signature = self._key.sign(_canonical(data))
        return {**data, SIGNATURE: base64.b64encode(signature).decode()}

    def verifier(self) -> RecordVerifier:
        return RecordVerifier(self._key.public_key())


class RecordVerifier:
    """Every service's side: which records were signed by intake's key, unaltered."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def from_setting(cls, encoded: str) -> RecordVerifier:
        """ACCESS_VERIFY_KEY: the raw 32-byte Ed25519 public key, base64."""
        raw = _raw(encoded, "ACCESS_VERIFY_KEY")
        return cls(Ed25519PublicKey.from_public_bytes(raw))

    def public_bytes(self) -> bytes:
        return self._key.public_bytes(Encoding.Raw, PublicFormat.Raw)

    def verify(self, data: dict[str, Any]) -> None:
        """Raises RecordRefused unless `data` carries intake's signature of exactly itself."""
        encoded = data.get(SIGNATURE)
        if not encoded:
            raise RecordRefused("unsigned")
        try:
            signature = base64.b64decode(str(encoded), validate=True)
            self._key.verify(signature, _canonical(data))
        except (binascii.Error, ValueError, InvalidSignature):
            raise RecordRefused("bad signature (not intake's key, or altered)") from None


def new_access_key_pair() -> tuple[str, str]:
    """A fresh (ACCESS_SIGNING_KEY, ACCESS_VERIFY_KEY), base64 of the raw keys."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


def verify_key_of(signing_key: str) -> str:
    """The ACCESS_VERIFY_KEY that goes with an ACCESS_SIGNING_KEY."""
    verifier = RecordSigner.from_setting(signing_key).verifier()
    return base64.b64encode(verifier.public_bytes()).decode()
