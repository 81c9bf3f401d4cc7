"""FHIR errors: a refused request is answered as an OperationOutcome, one issue per problem.

Issues name LOINC codes, our field names and FHIRPath locations, never a submitted value: a
QuestionnaireResponse may carry PHI (names in a contained Patient, free-text answers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

FHIR_JSON: Final = "application/fhir+json"


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue. ``diagnostics`` must never contain a submitted value."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"

    def as_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


class FhirError(Exception):
    """A request the FHIR endpoints refuse; answered as an OperationOutcome with ``status``."""

    def __init__(self, status: int, issues: list[Issue]) -> None:
        super().__init__("; ".join(i.diagnostics for i in issues))
        self.status = status
        self.issues = issues

    @property
    def status_code(self) -> int:
        """As every other error of the API names its status (the gate reads it)."""
        return self.status

    @classmethod
    def one(cls, status: int, code: str, diagnostics: str, *expression: str) -> FhirError:
        return cls(status, [Issue(code, diagnostics, tuple(expression))])


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.as_fhir() for i in issues]}


def structure_issues(exc: ValidationError, *, prefix: str) -> list[Issue]:
    """A model validation error as issues: the location and pydantic's message, no input."""
    issues = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        path = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in err["loc"]
        ).replace(".resource_type", ".resourceType")
        message = str(err["msg"]).removeprefix("Value error, ")[:300]
        issues.append(Issue("structure", message, (f"{prefix}{path}",)))
    return issues
