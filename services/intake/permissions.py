"""Intake's permission table: every operation, and the permission it needs (deny by default).

The roles holding each permission are the contract's table, in `shared.auth.roles`. Object scope
(which screenings a hotline or ehr credential sees) is a WHERE clause: `screenings/scope.py`.
"""

from __future__ import annotations

from shared.auth import PUBLIC, Access, Permission, RouteTable
from shared.http import HEALTH_ROUTES

_P = Permission
_READ = Access(_P.CASES_READ)
_EDIT = Access(_P.SAFETY_PLANS_EDIT)
_REVIEW = Access(_P.SAFETY_PLANS_REVIEW)
_PLAN = "/v1/safety-plans/{plan_id}"
_CRISIS = "/v1/crisis-resources"
_FOLLOW = Access(_P.FOLLOW_UPS)
_TWILIO = Access(_P.FOLLOW_UPS, provider_signed=True)
_FOLLOW_UP = "/v1/follow-ups/{follow_up_id}"

ROUTES: RouteTable = {
    **HEALTH_ROUTES,
    ("POST", "/v1/screenings"): Access(_P.SCREENINGS_SUBMIT),
    ("GET", "/v1/screenings"): _READ,
    ("GET", "/v1/screenings/{screening_id}"): _READ,
    # safety plans
    ("GET", "/v1/safety-plans"): _READ,
    ("GET", _PLAN): _READ,
    ("GET", f"{_PLAN}/revisions"): _READ,
    ("GET", f"{_PLAN}/revisions/{{version}}"): _READ,
    ("POST", f"{_PLAN}/steps/{{step}}/entries"): _EDIT,
    ("PUT", f"{_PLAN}/steps/{{step}}/entries/{{entry_id}}"): _EDIT,
    ("DELETE", f"{_PLAN}/steps/{{step}}/entries/{{entry_id}}"): _EDIT,
    ("PUT", f"{_PLAN}/steps/{{step}}/order"): _EDIT,
    ("PUT", f"{_PLAN}/steps/{{step}}/not-applicable"): _EDIT,
    ("DELETE", f"{_PLAN}/steps/{{step}}/not-applicable"): _EDIT,
    ("PUT", f"{_PLAN}/emergency-task"): _EDIT,
    ("POST", f"{_PLAN}/complete"): _EDIT,
    ("POST", f"{_PLAN}/review"): _REVIEW,
    ("PUT", f"{_PLAN}/due"): _REVIEW,
    # follow-up after the call (hotline staff: the screenings they submitted)
    ("GET", "/v1/follow-ups"): _FOLLOW,
    ("GET", _FOLLOW_UP): _FOLLOW,
    ("GET", f"{_FOLLOW_UP}/fhir"): _FOLLOW,
    ("POST", f"{_FOLLOW_UP}/attempts"): _FOLLOW,
    ("POST", f"{_FOLLOW_UP}/caring-contacts"): _FOLLOW,
    ("DELETE", f"{_FOLLOW_UP}/caring-contacts"): _FOLLOW,
    ("GET", "/v1/follow-up-tasks"): _FOLLOW,
    # Twilio's webhooks for the Caring Contacts number: no credential, each request's
    # X-Twilio-Signature is checked by the route (follow_ups/inbound.py), 403 otherwise
    # Twilio's webhooks (Caring Contacts): no credential; the route checks X-Twilio-Signature.
    ("POST", "/v1/twilio/sms"): _TWILIO,
    ("POST", "/v1/twilio/status"): _TWILIO,
    ("POST", "/v1/follow-up-tasks/{task_id}/done"): _FOLLOW,
    # FHIR
    ("GET", "/v1/fhir/metadata"): PUBLIC,
    ("POST", "/v1/fhir/QuestionnaireResponse"): Access(_P.FHIR_SUBMIT),
    ("POST", "/v1/fhir"): Access(_P.FHIR_SUBMIT),
    ("GET", "/v1/fhir/QuestionnaireResponse/{screening_id}"): _READ,
    ("GET", "/v1/screenings/{screening_id}/fhir/RiskAssessment"): _READ,
    ("GET", "/v1/fhir/RiskAssessment/{screening_id}"): _READ,
    ("POST", "/v1/fhir/subscriptions"): Access(_P.SUBSCRIPTIONS),
    ("GET", "/v1/fhir/subscriptions/{subscription_id}"): Access(_P.SUBSCRIPTIONS),
    ("DELETE", "/v1/fhir/subscriptions/{subscription_id}"): Access(_P.SUBSCRIPTIONS),
    # the audit trail
    ("GET", "/v1/audit"): Access(_P.AUDIT_READ),
    ("GET", "/v1/fhir/AuditEvent"): Access(_P.AUDIT_READ),
    ("GET", "/v1/screenings/{screening_id}/access-log"): Access(_P.ACCESS_LOG_READ),
    # API keys
    ("POST", "/v1/api-keys"): Access(_P.API_KEYS),
    ("GET", "/v1/api-keys"): Access(_P.API_KEYS),
    ("DELETE", "/v1/api-keys/{key_id}"): Access(_P.API_KEYS),
    ("GET", "/v1/me"): Access(_P.SELF_READ),
    # crisis lines and emergency numbers per country: read by all, kept by admins
    ("GET", _CRISIS): Access(_P.CRISIS_RESOURCES_READ),
    ("GET", f"{_CRISIS}/{{resource_id}}"): Access(_P.CRISIS_RESOURCES_READ),
    ("POST", _CRISIS): Access(_P.CRISIS_RESOURCES_WRITE),
    ("PUT", f"{_CRISIS}/{{resource_id}}"): Access(_P.CRISIS_RESOURCES_WRITE),
    ("DELETE", f"{_CRISIS}/{{resource_id}}"): Access(_P.CRISIS_RESOURCES_WRITE),
}
