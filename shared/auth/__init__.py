"""Access control shared by the three services: credentials, roles, the gate (docs/security.md)."""

from shared.auth.guard import (
    PUBLIC,
    Access,
    CurrentPrincipal,
    Gate,
    RouteTable,
    guarded,
    require_every_route_guarded,
)
from shared.auth.principal import Principal
from shared.auth.roles import Permission, Role, Visibility

__all__ = [
    "PUBLIC",
    "Access",
    "CurrentPrincipal",
    "Gate",
    "Permission",
    "Principal",
    "Role",
    "RouteTable",
    "Visibility",
    "guarded",
    "require_every_route_guarded",
]
