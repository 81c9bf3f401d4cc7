"""The console's page table: every page, and the permission it needs (deny by default).

The permissions are the services' own (`shared.auth.roles`): a page is offered to the roles
whose credential the service behind it accepts. The services still check every call: this
table only keeps people from pages that would answer them 403.
"""

from __future__ import annotations

from services.console.web import PUBLIC, SIGNED_IN, Page
from shared.auth.roles import Permission

_P = Permission
_PLAN = "/plans/{plan_id}"

PAGES: dict[tuple[str, str], Page] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    # signing in and out
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/login/oidc"): PUBLIC,
    ("GET", "/login/callback"): PUBLIC,
    # Signing out must not set the session cookie again on its way out.
    ("POST", "/logout"): Page(touch=False),
    # The language switcher of every page, signed in or not: a display choice only (it checks
    # the session's CSRF token itself before changing the session).
    ("POST", "/language"): PUBLIC,
    ("GET", "/"): SIGNED_IN,
    # on-call clinicians
    ("GET", "/alerts/live"): Page(_P.ALERTS_READ, touch=False),
    ("GET", "/alerts/{alert_id}"): Page(_P.ALERTS_READ),
    ("POST", "/alerts/{alert_id}/ack"): Page(_P.ALERTS_ACT),
    ("POST", "/alerts/{alert_id}/resolve"): Page(_P.ALERTS_ACT),
    ("GET", "/cases/{screening_id}"): Page(_P.CASES_READ),
    ("GET", "/cases/{screening_id}/status"): Page(_P.CASES_READ, touch=False),
    # hotline staff
    ("GET", "/screenings/new"): Page(_P.SCREENINGS_SUBMIT),
    ("POST", "/screenings"): Page(_P.SCREENINGS_SUBMIT),
    ("GET", _PLAN): Page(_P.CASES_READ),
    ("GET", f"{_PLAN}/print"): Page(_P.CASES_READ),
    ("POST", f"{_PLAN}/steps/{{step}}/entries"): Page(_P.SAFETY_PLANS_EDIT),
    ("POST", f"{_PLAN}/steps/{{step}}/entries/{{entry_id}}"): Page(_P.SAFETY_PLANS_EDIT),
    ("POST", f"{_PLAN}/steps/{{step}}/not-applicable"): Page(_P.SAFETY_PLANS_EDIT),
    ("POST", f"{_PLAN}/emergency-task"): Page(_P.SAFETY_PLANS_EDIT),
    ("POST", f"{_PLAN}/review"): Page(_P.SAFETY_PLANS_REVIEW),
    ("POST", f"{_PLAN}/complete"): Page(_P.SAFETY_PLANS_EDIT),
    # follow-up after the call (hotline staff, clinicians, supervisors)
    ("GET", "/follow-ups"): Page(_P.FOLLOW_UPS),
    ("GET", "/follow-ups/{follow_up_id}"): Page(_P.FOLLOW_UPS),
    ("POST", "/follow-ups/{follow_up_id}/attempts"): Page(_P.FOLLOW_UPS),
    ("POST", "/follow-ups/{follow_up_id}/caring-contacts"): Page(_P.FOLLOW_UPS),
    ("POST", "/follow-ups/{follow_up_id}/caring-contacts/withdraw"): Page(_P.FOLLOW_UPS),
    ("POST", "/follow-up-tasks/{task_id}/done"): Page(_P.FOLLOW_UPS),
    # supervisors
    ("GET", "/oncall"): Page(_P.ONCALL_READ),
    ("POST", "/oncall/{schedule_id}/overrides"): Page(_P.ONCALL_WRITE),
    ("POST", "/clinicians/{clinician_id}/languages"): Page(_P.ONCALL_WRITE),
    ("GET", "/policies"): Page(_P.ONCALL_READ),
    ("GET", "/oversight"): Page(_P.ALERTS_READ),
    ("GET", "/audit"): Page(_P.AUDIT_READ),
    # admins
    ("GET", "/keys"): Page(_P.API_KEYS),
    ("POST", "/keys"): Page(_P.API_KEYS),
    ("POST", "/keys/{key_id}/revoke"): Page(_P.API_KEYS),
}
