"""The signed, expiring ack link (webhook signatures: shared/webhooks.py).

An ack link stops every page of its alert, so it is signed with a key of its own, derived (HKDF)
from ACK_LINK_SECRET. Not with the webhook secret: every pager gateway holds that one (it checks
`X-Triage-Signature` with it), and a gateway must not be able to mint an ack link for an alert
it has seen.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: What the derived key is for: another use of the same secret would derive another key.
_INFO = b"crisis-triage notify ack-link v1"


def ack_key(secret: str) -> bytes:
    """The key that signs ack links, derived from the ack link secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())


def _ack_mac(key: bytes, alert_id: uuid.UUID, expires: int) -> str:
    return hmac.new(key, f"ack.{alert_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def ack_link(base_url: str, key: bytes, alert_id: uuid.UUID, ttl_seconds: int) -> str:
    expires = int(time.time()) + ttl_seconds
    sig = _ack_mac(key, alert_id, expires)
    return f"{base_url.rstrip('/')}/v1/alerts/{alert_id}/ack?expires={expires}&sig={sig}"


def ack_link_valid(keys: Sequence[bytes], alert_id: uuid.UUID, expires: int, sig: str) -> bool:
    """Whether the link was signed with one of `keys` (the current one, and during a rotation the
    previous one) and has not expired."""
    if expires < time.time():
        return False
    given = sig.encode()  # bytes: compare_digest refuses str with non-ASCII characters
    return any(hmac.compare_digest(_ack_mac(k, alert_id, expires).encode(), given) for k in keys)
