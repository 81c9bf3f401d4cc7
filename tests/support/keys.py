"""The test stack's credentials: one bootstrap key per role (API_KEYS_BOOTSTRAP), and headers."""

from __future__ import annotations

from services.intake.audit.checkpoints import new_signing_key
from shared.auth.signing import new_access_key_pair
from shared.phi import new_phi_key

EHR_SYSTEMS = ("urn:example:ehr", "urn:test:ehr")

#: name, role, key (and an ehr key's systems): each key at least 24 characters.
_KEYS = {
    "admin": ("ops", "test-admin-key-0123456789abcdef"),
    "hotline": ("jsmith", "test-hotline-key-0123456789abcdef"),
    "hotline2": ("amoreno", "test-hotline2-key-0123456789abcdef"),
    "ehr": ("ehr-gateway", "test-ehr-key-0123456789abcdef"),
    "clinician": ("dr-lee", "test-clinician-key-0123456789abcdef"),
    "supervisor": ("sup-kim", "test-supervisor-key-0123456789abcdef"),
}
KEYS = {who: key for who, (_, key) in _KEYS.items()}
NAMES = {who: name for who, (name, _) in _KEYS.items()}


def _entry(who: str) -> str:
    name, key = _KEYS[who]
    role = who.rstrip("2")
    systems = ":" + "|".join(EHR_SYSTEMS) if role == "ehr" else ""
    return f"{name}:{role}:{key}{systems}"


BOOTSTRAP = ",".join(_entry(who) for who in _KEYS)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ADMIN = bearer(KEYS["admin"])
HOTLINE = bearer(KEYS["hotline"])
HOTLINE2 = bearer(KEYS["hotline2"])
EHR = bearer(KEYS["ehr"])
CLINICIAN = bearer(KEYS["clinician"])
SUPERVISOR = bearer(KEYS["supervisor"])

#: Signs the test stack's audit checkpoints (AUDIT_SIGNING_KEY), made fresh for each session.
AUDIT_SIGNING_KEY = new_signing_key()
#: The test stack's PHI key ring (PHI_KEYS).
PHI_KEYS = new_phi_key()
#: Intake signs the access topic's records with the first (ACCESS_SIGNING_KEY); every service
#: verifies them with the second (ACCESS_VERIFY_KEY).
ACCESS_SIGNING_KEY, ACCESS_VERIFY_KEY = new_access_key_pair()
