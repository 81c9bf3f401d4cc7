"""Notify's permission table: every operation, and the permission it needs (deny by default)."""

from __future__ import annotations

from shared.auth import Access, Permission, RouteTable
from shared.http import HEALTH_ROUTES

_P = Permission
_READ = Access(_P.ONCALL_READ)
_WRITE = Access(_P.ONCALL_WRITE)
#: The page's signed, expiring link acknowledges without a credential (the route checks it).
_ACK = Access(_P.ALERTS_ACT, signed_link=True)

#: Twilio's webhooks: no credential; the route checks X-Twilio-Signature on every request.
_TWILIO = Access(_P.ALERTS_ACT, provider_signed=True)

ROUTES: RouteTable = {
    **HEALTH_ROUTES,
    ("GET", "/v1/alerts"): Access(_P.ALERTS_READ),
    ("GET", "/v1/alerts/{alert_id}"): Access(_P.ALERTS_READ),
    ("POST", "/v1/alerts/{alert_id}/ack"): _ACK,
    ("GET", "/v1/alerts/{alert_id}/ack"): _ACK,
    ("POST", "/v1/alerts/{alert_id}/resolve"): Access(_P.ALERTS_ACT),
    ("POST", "/v1/clinicians"): _WRITE,
    ("GET", "/v1/clinicians"): _READ,
    ("GET", "/v1/clinicians/{clinician_id}"): _READ,
    ("POST", "/v1/clinicians/{clinician_id}/contact-methods"): _WRITE,
    ("PUT", "/v1/clinicians/{clinician_id}/languages"): _WRITE,
    ("DELETE", "/v1/clinicians/{clinician_id}/contact-methods/{method_id}"): _WRITE,
    ("POST", "/v1/schedules"): _WRITE,
    ("GET", "/v1/schedules"): _READ,
    ("GET", "/v1/schedules/{schedule_id}"): _READ,
    ("PUT", "/v1/schedules/{schedule_id}"): _WRITE,
    ("POST", "/v1/schedules/{schedule_id}/overrides"): _WRITE,
    ("DELETE", "/v1/schedules/{schedule_id}/overrides/{override_id}"): _WRITE,
    ("GET", "/v1/oncall"): _READ,
    ("GET", "/v1/oncall/coverage"): _READ,
    ("POST", "/v1/policies"): _WRITE,
    ("GET", "/v1/policies"): _READ,
    ("GET", "/v1/policies/{policy_id}"): _READ,
    ("PUT", "/v1/policies/{policy_id}"): _WRITE,
    ("DELETE", "/v1/policies/{policy_id}"): _WRITE,
    ("POST", "/v1/twilio/sms"): _TWILIO,
    ("POST", "/v1/twilio/voice"): _TWILIO,
    ("POST", "/v1/twilio/voice/gather"): _TWILIO,
    ("POST", "/v1/twilio/status"): _TWILIO,
}
