"""Who is calling: built in one place (`shared.auth.guard`) from the request's credential."""

from __future__ import annotations

from dataclasses import dataclass

from shared.auth.roles import ROLE_PERMISSIONS, VISIBILITY, Permission, Role, Visibility


@dataclass(frozen=True, slots=True)
class Principal:
    #: The API key's id, or `oidc:<subject>` for an identity provider's token: what "the
    #: screenings it submitted" are recorded against.
    credential_id: str
    #: Who acted, as revisions, acknowledgements and the audit trail name them: the key's name,
    #: or the token's subject.
    name: str
    role: Role
    #: An `ehr` credential's identifier systems, in order (the first files JSON screenings).
    identifier_systems: tuple[str, ...] = ()

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def visibility(self) -> Visibility:
        return VISIBILITY[self.role]

    @property
    def files_under(self) -> str | None:
        """The identifier system a JSON screening from this credential is filed under."""
        return self.identifier_systems[0] if self.identifier_systems else None
