"""FHIR fixtures (tests/fixtures/fhir) made unique per use, and RiskAssessment checks."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
FHIR_JSON = "application/fhir+json"


def fixture(name: str, *, unique: bool = True, system: str | None = None) -> dict[str, Any]:
    """A fixture; with ``unique`` each identifier value (and If-None-Exist) gets a fresh suffix,
    so that one stack serves every test without replays between them."""
    body = json.loads((FIXTURES / name).read_text())
    if not unique:
        return body
    suffix = uuid.uuid4().hex[:10]
    resources = (
        [e["resource"] for e in body["entry"]] if body["resourceType"] == "Bundle" else [body]
    )
    for resource in resources:
        ident = resource.get("identifier")
        if ident:
            old = f"{ident.get('system', '')}|{ident['value']}"
            ident["value"] = f"{ident['value']}-{suffix}"
            if system is not None:
                ident["system"] = system
            new = f"{ident.get('system', '')}|{ident['value']}"
            for entry in body.get("entry", []):
                request = entry.get("request", {})
                if request.get("ifNoneExist") == f"identifier={old}":
                    request["ifNoneExist"] = f"identifier={new}"
    return body


def token(resource: dict[str, Any]) -> str:
    ident = resource["identifier"]
    return f"{ident.get('system', '')}|{ident['value']}"


def issues(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return outcome["issue"]
