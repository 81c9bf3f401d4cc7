"""The signed, expiring ack link (webhook signatures: shared/webhooks.py)."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Sequence


def _ack_mac(secret: str, alert_id: uuid.UUID, expires: int) -> str:
    return hmac.new(
        secret.encode(), f"ack.{alert_id}.{expires}".encode(), hashlib.sha256
    ).hexdigest()


def ack_link(base_url: str, secret: str, alert_id: uuid.UUID, ttl_seconds: int) -> str:
    expires = int(time.time()) + ttl_seconds
    sig = _ack_mac(secret, alert_id, expires)
    return f"{base_url.rstrip('/')}/v1/alerts/{alert_id}/ack?expires={expires}&sig={sig}"


def ack_link_valid(secrets: Sequence[str], alert_id: uuid.UUID, expires: int, sig: str) -> bool:
    if expires < time.time():
        return False
    given = sig.encode()  # bytes: compare_digest refuses str with non-ASCII characters
    return any(hmac.compare_digest(_ack_mac(s, alert_id, expires).encode(), given) for s in secrets)
