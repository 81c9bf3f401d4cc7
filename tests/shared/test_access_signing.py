"""The access records' signature covers the whole `data`: any change, or none, is refused."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from shared.auth.credentials import Credential, CredentialChanged, key_digest, new_key
from shared.auth.directory import CredentialDirectory
from shared.auth.roles import Role
from shared.auth.signing import (
    AccessKeyError,
    RecordRefused,
    RecordSigner,
    RecordVerifier,
    new_access_key_pair,
    verify_key_of,
)
from shared.events import Envelope

SIGNING, VERIFY = new_access_key_pair()
DATA = {"credential_id": "0b7c1c1e-3f35-4d55-9c8e-6a7e1f6f0d11", "role": "hotline", "name": "x"}


def test_intakes_signature_is_taken_and_nothing_else() -> None:
    verifier = RecordVerifier.from_setting(VERIFY)
    signed = RecordSigner.from_setting(SIGNING).sign(DATA)
    verifier.verify(signed)
    verifier.verify(dict(reversed(signed.items())))  # the order of fields does not matter
    stranger = RecordSigner.from_setting(new_access_key_pair()[0])
    refused = {
        "unsigned": DATA,
        "empty": {**DATA, "signature": ""},
        "not base64": {**DATA, "signature": "%%%"},
        "another key": stranger.sign(DATA),
        "altered": {**signed, "role": "admin"},
        "a field added": {**signed, "identifier_systems": ["urn:x"]},
        "a field dropped": {k: v for k, v in signed.items() if k != "name"},
    }
    for case, data in refused.items():
        with pytest.raises(RecordRefused):
            verifier.verify(data)
            pytest.fail(case)


def test_the_verify_key_goes_with_the_signing_key_and_malformed_keys_are_named_not_shown() -> None:
    assert verify_key_of(SIGNING) == VERIFY
    with pytest.raises(AccessKeyError, match="ACCESS_VERIFY_KEY") as info:
        RecordVerifier.from_setting(SIGNING[:-4])
    assert SIGNING[:-4] not in str(info.value)
    with pytest.raises(AccessKeyError, match="ACCESS_SIGNING_KEY"):
        RecordSigner.from_setting("not a key")


def _record(signer: RecordSigner, key: str, **change: object) -> tuple[bytes, bytes]:
    credential_id = uuid.uuid4()
    data = CredentialChanged(
        credential_id=credential_id, name="desk 4", role=Role.ADMIN, key_hash=key_digest(key)
    ).model_dump(mode="json")
    data = signer.sign({**data, **change})
    envelope = Envelope(type="credential.issued", correlation_id="t", data=data)
    return envelope.encode(), str(credential_id).encode()


def test_a_directory_without_the_verify_key_applies_no_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = new_key()
    value, kafka_key = _record(RecordSigner.from_setting(SIGNING), key)
    without = CredentialDirectory()
    without._apply_record(value, key=kafka_key, at="0@0")
    assert key_digest(key) not in without._by_hash
    assert "no ACCESS_VERIFY_KEY" in caplog.text and key_digest(key) not in caplog.text
    directory = CredentialDirectory(verifier=RecordVerifier.from_setting(VERIFY))
    directory._apply_record(value, key=kafka_key, at="0@1")
    assert key_digest(key) in directory._by_hash


def test_a_revocation_is_final() -> None:
    directory = CredentialDirectory()
    issued = Credential(id=uuid.uuid4(), name="d", role=Role.ADMIN, key_hash=key_digest(new_key()))
    revoked = dataclasses.replace(issued, revoked_at=datetime.now(UTC))
    directory.apply(issued)
    directory.apply(revoked)
    directory.apply(issued)  # its state at issue, played again
    assert directory._by_id[issued.id].revoked_at is not None
