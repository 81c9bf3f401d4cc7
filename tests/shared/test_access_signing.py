"""The access records' signature covers the whole `data`: any change, or none, is refused."""

from __future__ import annotations

import pytest

from shared.auth.signing import (
    AccessKeyError,
    RecordRefused,
    RecordSigner,
    RecordVerifier,
    new_access_key_pair,
    verify_key_of,
)

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
