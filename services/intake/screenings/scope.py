"""Object scope: which screenings (and so which plans and FHIR resources) a caller may see.

Always part of the query's WHERE, never a filter after reading: a screening outside the
caller's scope is not found (404), exactly as one that does not exist.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true

from services.intake.screenings.models import Screening
from shared.auth import Principal, Visibility


def visible(principal: Principal) -> ColumnElement[bool]:
    """The screenings `principal` may read, as a condition on `Screening`."""
    match principal.visibility:
        case Visibility.ALL:
            return true()
        case Visibility.SUBMITTED:
            return Screening.submitted_by == principal.credential_id
        case Visibility.SYSTEMS if principal.identifier_systems:
            return Screening.filed_under.in_(principal.identifier_systems)
    return false()


def replay_scope(principal: Principal, filed_under: str | None) -> str:
    """The namespace a screening's `external_id` is unique in, and so where a repeat of it is
    looked for: never across every caller, or one caller could claim another's identifier first
    and bury the screening it names (a 409, or a replay that answers with a screening the owner
    cannot read, whose assessment and rest-hook it never gets).

    An ehr credential's is the identifier system the screening is filed under (one of its own):
    the credentials of one EHR (a key and its successor) share it, and a repeat is always a
    screening they can read. Anyone else's is the credential itself (hotline staff, clinicians,
    supervisors, admins): its repeats find only its own screenings, and it reaches no one
    else's namespace, whatever external_id it sends."""
    if principal.visibility == Visibility.SYSTEMS and filed_under in principal.identifier_systems:
        return f"system:{filed_under}"
    return f"credential:{principal.credential_id}"


def owns_identifier(principal: Principal, external_id: str) -> bool:
    """Whether `external_id` is `principal`'s to use: an identifier `system|value` in one of its
    systems, or a plain value (no `|`), which is its own (filed, and replayed, under its first
    system)."""
    if "|" not in external_id:
        return True
    return any(
        external_id.startswith(f"{system}|") and len(external_id) > len(system) + 1
        for system in principal.identifier_systems
    )
