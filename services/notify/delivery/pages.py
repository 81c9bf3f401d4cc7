"""A claimed delivery as the page to send, what it says, and the address an attempt records."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from services.notify.delivery.channels import Page, page_payload
from services.notify.delivery.signing import ack_link
from services.notify.models import sealed
from services.notify.settings import NotifySettings
from shared.phi import KeyRing, PhiUnreadable
from shared.webhooks import redact

log = logging.getLogger(__name__)

_TARGET = sealed("deliveries")


def page_of(r: Mapping[str, Any], phi: KeyRing | None) -> Page:
    """A claimed row (delivery/queries.py's CLAIM) as the page to send."""
    target = _target(r, phi)
    return Page(
        delivery_id=r["id"],
        attempt=r["attempts"],
        escalation_level=r["escalation_level"],
        repeat_round=r["repeat_round"],
        alert_id=r["alert_id"],
        screening_id=r["screening_id"],
        risk_level=r["risk_level"],
        urgency=r["urgency"],
        reasons=list(r["reasons"]),
        created_at=r["created_at"],
        # The fallback is a webhook: an email method whose address is refused too.
        channel=r["channel"] if target is not None else "webhook",
        target=target,
        traceparent=r["traceparent"],
        provider_sid=r.get("provider_sid"),
    )


def _target(row: Mapping[str, Any], phi: KeyRing | None) -> str | None:
    """The page's planned address in clear. One that does not decrypt (its key left the
    ring), or is refused (in clear in a sealed database: planted), must not stop paging:
    the page goes to the fallback, ONCALL_WEBHOOK_URL."""
    try:
        target: str | None = _TARGET.open(phi, row, row["target"])
    except PhiUnreadable:
        log.error("page %s: its address does not decrypt; paging the fallback", row["id"])
        return None
    return target


def payload(page: Page, settings: NotifySettings, *, ack_key: bytes) -> dict[str, Any]:
    """The page's body, with its signed ack link (signed with `ack_key`) and the case's URL."""
    ack_url = ack_link(settings.public_url, ack_key, page.alert_id, settings.ack_link_ttl_seconds)
    case_url = f"{settings.intake_public_url.rstrip('/')}/v1/screenings/{page.screening_id}"
    return page_payload(page, ack_url=ack_url, case_url=case_url)


def recorded_target(channel: str, address: str | None) -> str:
    """The target as recorded: a URL without its query (it may carry a token), mailto: or
    sms: / tel: (RFC 5724, RFC 3966). Sealed at rest like the address it came from."""
    if address is None:
        return "(none)"
    if channel == "email":
        return f"mailto:{address}"
    if channel == "sms":
        return f"sms:{address}"
    if channel == "voice":
        return f"tel:{address}"
    return redact(address)
