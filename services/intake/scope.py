"""Object scope: which screenings (and so which plans and FHIR resources) a caller may see.

Always part of the query's WHERE, never a filter after reading: a screening outside the
caller's scope is not found (404), exactly as one that does not exist.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true

from services.intake.models import Screening
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
