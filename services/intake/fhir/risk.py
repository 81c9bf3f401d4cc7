"""FHIR R4 out: an assessed screening as a RiskAssessment.

The same document is served by ``GET …/fhir/RiskAssessment`` and pushed to an EHR's rest-hook, so
it refers only to what that EHR can resolve: its own QuestionnaireResponse (by identifier, and by
its logical id when it sent one) and its own Patient reference. It carries no PHI the EHR did not
send: levels, codes, the rule set, and the rule set's reasons.
"""

from __future__ import annotations

from typing import Any, Final

from fhir.resources.R4B.riskassessment import RiskAssessment

from services.intake.fhir.models import FhirResponse
from services.intake.screenings.models import Screening
from shared.instruments import LOINC_SYSTEM, RISK_LEVEL_ANSWER_LOINC, RISK_LEVEL_LOINC, RiskLevel

#: Our own code systems and identifier namespaces. LOINC has no answer for ``none`` or
#: ``imminent``: every level is also coded here, so a receiver can read one system throughout.
RISK_LEVEL_SYSTEM: Final = "urn:crisis-triage:fhir:risk-level"
RULESET_SYSTEM: Final = "urn:crisis-triage:fhir:ruleset"
SUBJECT_SYSTEM: Final = "urn:crisis-triage:fhir:subject-id"
URI_SYSTEM: Final = "urn:ietf:rfc:3986"

_LEVEL_DISPLAY: Final = {
    # Never "no risk": a negative screen (PHQ-9 item 9 = 0 above all) does not rule risk out.
    RiskLevel.NONE: "Screen negative: no risk level assigned",
    RiskLevel.LOW: "Low risk",
    RiskLevel.MODERATE: "Moderate risk",
    RiskLevel.HIGH: "High risk",
    RiskLevel.IMMINENT: "Imminent risk",
}


class NotAssessed(Exception):
    """The screening has no assessment yet (risk runs asynchronously)."""


def screening_identifier(screening: Screening) -> dict[str, str]:
    return {"system": URI_SYSTEM, "value": f"urn:uuid:{screening.id}"}


def qualitative_risk(level: str) -> dict[str, Any]:
    """LOINC 93374-7's answer where LOINC has one, and always our own code for the level."""
    risk = RiskLevel(level)
    coding = []
    if risk in RISK_LEVEL_ANSWER_LOINC:
        coding.append(
            {
                "system": LOINC_SYSTEM,
                "code": RISK_LEVEL_ANSWER_LOINC[risk],
                "display": _LEVEL_DISPLAY[risk],
            }
        )
    coding.append(
        {"system": RISK_LEVEL_SYSTEM, "code": risk.value, "display": _LEVEL_DISPLAY[risk]}
    )
    return {"coding": coding, "text": risk.value}


def method(rules_version: str) -> dict[str, Any]:
    """The rule set and its version, e.g. ``cssrs-asq-phq9/2026-11-27.1``."""
    name, _, version = rules_version.partition("/")
    coding: dict[str, Any] = {"system": RULESET_SYSTEM, "code": name}
    if version:
        coding["version"] = version
    coding["display"] = f"crisis triage rule set {name}" + (
        f", version {version}" if version else ""
    )
    return {"coding": [coding], "text": f"rule set {rules_version}"}


def _basis(screening: Screening, source: FhirResponse | None) -> dict[str, Any]:
    """The screening: for a FHIR one, `QuestionnaireResponse/<screening id>` (served by
    intake, so it resolves here) with the EHR's own business identifier beside it; the EHR's
    logical id is not used as a reference, since it would resolve against this server."""
    basis: dict[str, Any] = {"type": "QuestionnaireResponse"}
    if source is not None:
        basis["reference"] = f"QuestionnaireResponse/{screening.id}"
    if source is not None and source.identifier_value:
        basis["identifier"] = (
            {"system": source.identifier_system, "value": source.identifier_value}
            if source.identifier_system
            else {"value": source.identifier_value}
        )
    if "reference" not in basis and "identifier" not in basis:
        basis["identifier"] = screening_identifier(screening)
        basis["display"] = "crisis triage screening"
    return basis


def risk_assessment(screening: Screening, source: FhirResponse | None) -> RiskAssessment:
    """The screening's assessment as a RiskAssessment, validated by the FHIR model library."""
    risk = screening.risk
    if screening.status != "assessed" or not risk:
        raise NotAssessed(str(screening.id))
    subject = (
        dict(source.subject)
        if source is not None
        else {"identifier": {"system": SUBJECT_SYSTEM, "value": screening.subject_id}}
    )
    resource = {
        "resourceType": "RiskAssessment",
        "id": str(screening.id),
        "meta": {"lastUpdated": risk["assessed_at"]},
        "identifier": [screening_identifier(screening)],
        "status": "final",
        "method": method(risk["rules_version"]),
        "code": {
            "coding": [
                {"system": LOINC_SYSTEM, "code": RISK_LEVEL_LOINC, "display": "Suicide risk level"}
            ]
        },
        "subject": subject,
        "occurrenceDateTime": risk["assessed_at"],
        "basis": [_basis(screening, source)],
        "prediction": [
            {
                "outcome": {"text": "suicidal behaviour"},
                "qualitativeRisk": qualitative_risk(risk["level"]),
            }
        ],
        "note": [{"text": reason} for reason in risk.get("reasons", [])],
    }
    if not resource["note"]:
        del resource["note"]
    return RiskAssessment.model_validate(resource)


def risk_assessment_json(screening: Screening, source: FhirResponse | None) -> str:
    return risk_assessment(screening, source).model_dump_json(exclude_none=True)
