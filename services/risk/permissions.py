"""Risk's permission table (deny by default). The contract's table is silent on risk's reads:
clinicians, supervisors and admins may read them (docs/api.md, "Access")."""

from __future__ import annotations

from shared.auth import Access, Permission, RouteTable
from shared.http import HEALTH_ROUTES

ROUTES: RouteTable = {
    **HEALTH_ROUTES,
    ("GET", "/v1/rulesets/current"): Access(Permission.ASSESSMENTS_READ),
    ("GET", "/v1/assessments"): Access(Permission.ASSESSMENTS_READ),
}
