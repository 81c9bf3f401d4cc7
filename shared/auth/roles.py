"""Roles and what each may do: the contract's permission table, as data.

Each service maps its routes to one `Permission` (its `permissions.py`); this module says which
roles hold which permission. A route missing from its service's table is closed to everyone.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    HOTLINE = "hotline"
    EHR = "ehr"
    CLINICIAN = "clinician"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Permission(StrEnum):
    SCREENINGS_SUBMIT = "screenings:submit"
    FHIR_SUBMIT = "fhir:submit"
    CASES_READ = "cases:read"
    #: A property, not a route: `contact` and `notes` in the case view.
    CASES_READ_CONTACT = "cases:read-contact"
    SAFETY_PLANS_EDIT = "safety-plans:edit"
    SAFETY_PLANS_REVIEW = "safety-plans:review"
    ALERTS_READ = "alerts:read"
    ALERTS_ACT = "alerts:act"
    ONCALL_READ = "oncall:read"
    ONCALL_WRITE = "oncall:write"
    SUBSCRIPTIONS = "subscriptions:manage"
    AUDIT_READ = "audit:read"
    #: Who read or changed one screening's record (its access log).
    ACCESS_LOG_READ = "access-log:read"
    API_KEYS = "api-keys:manage"
    #: Who the credential is (`GET /v1/me`): every role, so a console can show its holder.
    SELF_READ = "self:read"
    #: Not in the contract's table (risk's own reads): clinicians, supervisors and admins.
    ASSESSMENTS_READ = "assessments:read"
    #: The crisis lines and emergency numbers per country (reference data, not PHI): every
    #: role reads them; admins keep them.
    CRISIS_RESOURCES_READ = "crisis-resources:read"
    CRISIS_RESOURCES_WRITE = "crisis-resources:write"
    #: Follow-ups after the call: the worklist, attempts, Caring Contacts consent and the
    #: tasks they leave (hotline staff for the screenings they submitted, clinical roles all).
    FOLLOW_UPS = "follow-ups:work"


class Visibility(StrEnum):
    """Which screenings (and so which plans, FHIR resources, pushes) a role sees."""

    SUBMITTED = "submitted"  # those sent with the same credential
    SYSTEMS = "systems"  # those filed under one of the credential's identifier systems
    ALL = "all"


_P = Permission
_CLINICAL = frozenset(
    {
        _P.SCREENINGS_SUBMIT,
        _P.FHIR_SUBMIT,
        _P.CASES_READ,
        _P.CASES_READ_CONTACT,
        _P.SAFETY_PLANS_EDIT,
        _P.SAFETY_PLANS_REVIEW,
        _P.ALERTS_READ,
        _P.ALERTS_ACT,
        _P.ONCALL_READ,
        _P.ASSESSMENTS_READ,
        _P.ACCESS_LOG_READ,
        _P.SELF_READ,
        _P.CRISIS_RESOURCES_READ,
        _P.FOLLOW_UPS,
    }
)

#: The contract's table ("Access"). Scope within a permission comes from `VISIBILITY`.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.HOTLINE: frozenset(
        {
            _P.SCREENINGS_SUBMIT,
            _P.CASES_READ,
            _P.CASES_READ_CONTACT,
            _P.SAFETY_PLANS_EDIT,
            _P.SELF_READ,
            _P.CRISIS_RESOURCES_READ,
            _P.FOLLOW_UPS,
        }
    ),
    Role.EHR: frozenset(
        {
            _P.SCREENINGS_SUBMIT,
            _P.FHIR_SUBMIT,
            _P.CASES_READ,
            _P.SUBSCRIPTIONS,
            _P.SELF_READ,
            _P.CRISIS_RESOURCES_READ,
        }
    ),
    Role.CLINICIAN: _CLINICAL,
    Role.SUPERVISOR: _CLINICAL | {_P.ONCALL_WRITE, _P.AUDIT_READ},
    Role.ADMIN: frozenset(Permission),
}

VISIBILITY: dict[Role, Visibility] = {
    Role.HOTLINE: Visibility.SUBMITTED,
    Role.EHR: Visibility.SYSTEMS,
    Role.CLINICIAN: Visibility.ALL,
    Role.SUPERVISOR: Visibility.ALL,
    Role.ADMIN: Visibility.ALL,
}
