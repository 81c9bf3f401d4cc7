"""QuestionnaireResponse → screening mapping, and the RiskAssessment out: no stack needed."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment

from services.intake.fhir.mapping import (
    FhirIdentifier,
    if_none_exist_identifier,
    map_questionnaire_response,
    parse_questionnaire_response,
    screening_payload,
)
from services.intake.fhir.models import FhirResponse
from services.intake.fhir.outcomes import FhirError
from services.intake.fhir.risk import NotAssessed, risk_assessment
from services.intake.screenings.models import Screening
from tests.support.fhir import fixture

#: The fixture's PHI; the phone number whole, since "555" alone turns up in random ids.
PHI = ("Alexandra", "Confidential", "555 0199", "MRN-553311")


def mapped(body: dict[str, Any]):
    return map_questionnaire_response(parse_questionnaire_response(body))


def refused(body: dict[str, Any], conditional: FhirIdentifier | None = None) -> FhirError:
    with pytest.raises(FhirError) as caught:
        screening_payload(mapped(body), conditional=conditional)
    return caught.value


@pytest.mark.parametrize(
    ("name", "instrument", "answers"),
    [
        ("phq9-lhc-forms.json", "phq9", {"items": [2, 2, 2, 2, 1, 1, 2, 0, 1]}),
        ("phq9-definition-integer.json", "phq9", {"items": [2, 2, 2, 2, 1, 1, 2, 0, 0]}),
        (
            "cssrs-bhp.json",
            "cssrs_screener",
            {
                "wish_dead": True,
                "suicidal_thoughts": True,
                "method": True,
                "intent": True,
                "plan": False,
                "behavior": False,
            },
        ),
        (
            "cssrs-contained-questionnaire.json",
            "cssrs_screener",
            {"wish_dead": True, "suicidal_thoughts": False, "behavior": False},
        ),
    ],
)
def test_fixtures_map_to_the_json_screening_they_are(
    name: str, instrument: str, answers: dict[str, Any]
) -> None:
    body = fixture(name, unique=False)
    result = mapped(body)
    payload, validated = screening_payload(result, conditional=None)
    assert result.instrument == instrument == payload.instrument
    assert validated == answers
    assert payload.source == "ehr"
    ident = body["identifier"]
    assert payload.external_id == f"{ident['system']}|{ident['value']}"


def test_linkid_with_and_without_slash_and_definition_are_the_same_item() -> None:
    bare = fixture("bundle-transaction.json", unique=False)["entry"][0]["resource"]
    slashed = copy.deepcopy(bare)
    for item in slashed["item"]:
        item["linkId"] = "/" + item["linkId"]
    defined = copy.deepcopy(bare)
    for n, item in enumerate(defined["item"]):
        item["definition"] = f"http://loinc.org/{item['linkId']}"
        item["linkId"] = f"local-{n}"
    assert mapped(bare).answers == mapped(slashed).answers == mapped(defined).answers


def test_questionnaire_version_is_ignored_and_items_decide_without_one() -> None:
    body = fixture("phq9-lhc-forms.json", unique=False)
    assert body["questionnaire"].endswith("|2.74")
    assert mapped(body).instrument == "phq9"
    del body["questionnaire"]
    assert mapped(body).instrument == "phq9"


def test_contained_patient_becomes_its_identifier_and_no_display_is_kept() -> None:
    result = mapped(fixture("cssrs-contained-questionnaire.json", unique=False))
    assert result.subject == {
        "identifier": {"system": "urn:oid:2.16.840.1.113883.3.7418.1", "value": "MRN-553311"}
    }
    assert "display" not in str(result.subject)
    assert result.subject_id == "urn:oid:2.16.840.1.113883.3.7418.1|MRN-553311"


def test_ordinal_value_scores_a_local_answer_code() -> None:
    body = fixture("phq9-lhc-forms.json", unique=False)
    item9 = body["item"][0]["item"][8]
    item9["answer"] = [
        {
            "valueCoding": {
                "system": "urn:oid:1.2.3.4",
                "code": "several",
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/ordinalValue",
                        "valueDecimal": 1,
                    }
                ],
            }
        }
    ]
    assert mapped(body).answers["items"][8] == 1


def test_unsupported_questionnaire_is_422_not_supported() -> None:
    body = fixture("phq9-lhc-forms.json", unique=False)
    body["questionnaire"] = "http://loinc.org/q/99999-9"
    with pytest.raises(FhirError) as caught:
        mapped(body)
    assert caught.value.status == 422
    assert caught.value.issues[0].code == "not-supported"
    assert caught.value.issues[0].expression == ("QuestionnaireResponse.questionnaire",)


def test_unrecognisable_items_are_422() -> None:
    body = fixture("phq9-definition-integer.json", unique=False)
    for item in body["item"][0]["item"]:
        del item["definition"]
    with pytest.raises(FhirError) as caught:
        mapped(body)
    assert caught.value.status == 422
    assert "not recognised" in caught.value.issues[0].diagnostics


def test_missing_phq9_item_is_required_and_named_by_loinc() -> None:
    body = fixture("phq9-lhc-forms.json", unique=False)
    del body["item"][0]["item"][2]  # 44259-0
    body["item"][0]["item"][4]["answer"] = []  # 44258-2 asked but not answered
    with pytest.raises(FhirError) as caught:
        mapped(body)
    problems = {i.diagnostics: i for i in caught.value.issues}
    assert caught.value.status == 422
    assert {i.code for i in caught.value.issues} == {"required"}
    assert any(d.startswith("44259-0 (PHQ-9 item 3) is missing") for d in problems)
    unanswered = next(i for d, i in problems.items() if d.startswith("44258-2"))
    assert unanswered.expression == ("QuestionnaireResponse.item[0].item[4]",)


def test_cssrs_skip_logic_conflict_names_loinc_codes_and_fields() -> None:
    body = fixture("cssrs-bhp.json", unique=False)
    body["item"][1]["answer"][0]["valueCoding"] = {"system": "http://loinc.org", "code": "LA32-8"}
    error = refused(body)
    assert error.status == 422
    texts = [i.diagnostics for i in error.issues]
    assert any(t.startswith("93248-3 (method): skip-logic conflict") for t in texts)
    assert any(t.startswith("93249-1 (intent): skip-logic conflict") for t in texts)
    assert {i.code for i in error.issues} == {"business-rule"}
    method = next(i for i in error.issues if i.diagnostics.startswith("93248-3"))
    assert method.expression == ("QuestionnaireResponse.item[1].answer[0].item[0]",)


def test_cssrs_missing_required_question_is_required() -> None:
    body = fixture("cssrs-bhp.json", unique=False)
    del body["item"][0]  # Q1, wish_dead
    error = refused(body)
    assert [(i.code, i.diagnostics.split(":")[0]) for i in error.issues] == [
        ("required", "93246-7 (wish_dead)")
    ]


@pytest.mark.parametrize(
    ("change", "code", "where"),
    [
        ({"valueInteger": 4}, "value", "44260-8 (PHQ-9 item 9)"),
        ({"valueBoolean": True}, "value", "44260-8 (PHQ-9 item 9)"),
        ({"valueString": "Alexandra Confidential"}, "value", "44260-8 (PHQ-9 item 9)"),
        (
            {"valueCoding": {"system": "http://loinc.org", "code": "LA33-6"}},
            "value",
            "44260-8 (PHQ-9 item 9)",
        ),
    ],
)
def test_bad_phq9_answers_are_named_without_echoing_them(
    change: dict[str, Any], code: str, where: str
) -> None:
    body = fixture("phq9-lhc-forms.json", unique=False)
    body["item"][0]["item"][8]["answer"] = [change]
    with pytest.raises(FhirError) as caught:
        screening_payload(mapped(body), conditional=None)
    assert caught.value.status == 422
    assert [i.diagnostics.split(":")[0] for i in caught.value.issues] == [where]
    assert caught.value.issues[0].code == code
    assert "Alexandra" not in str(caught.value) and "LA33-6 " not in str(caught.value)


def test_question_answered_twice_is_refused() -> None:
    body = fixture("phq9-lhc-forms.json", unique=False)
    body["item"][0]["item"].append(copy.deepcopy(body["item"][0]["item"][0]))
    with pytest.raises(FhirError) as caught:
        mapped(body)
    assert "answered more than once" in caught.value.issues[0].diagnostics


@pytest.mark.parametrize("status", ["in-progress", "stopped", "entered-in-error"])
def test_only_completed_or_amended_is_screened(status: str) -> None:
    body = fixture("cssrs-bhp.json", unique=False)
    body["status"] = status
    with pytest.raises(FhirError) as caught:
        mapped(body)
    assert caught.value.status == 422
    assert caught.value.issues[0].expression == ("QuestionnaireResponse.status",)


def test_wrong_resource_type_and_broken_structure_are_400() -> None:
    with pytest.raises(FhirError) as wrong:
        parse_questionnaire_response({"resourceType": "Patient", "name": [{"family": "Doe"}]})
    assert wrong.value.status == 400 and "Doe" not in str(wrong.value)
    body = fixture("cssrs-bhp.json", unique=False)
    body["item"][0]["answer"][0] = {"valueInteger": "Alexandra"}
    with pytest.raises(FhirError) as broken:
        parse_questionnaire_response(body)
    assert broken.value.status == 400
    assert broken.value.issues[0].expression == (
        "QuestionnaireResponse.item[0].answer[0].valueInteger",
    )
    assert "Alexandra" not in str(broken.value)


def test_missing_subject_is_required() -> None:
    body = fixture("cssrs-bhp.json", unique=False)
    del body["subject"]
    with pytest.raises(FhirError) as caught:
        mapped(body)
    assert (caught.value.status, caught.value.issues[0].code) == (422, "required")


def test_errors_never_echo_the_contained_phi() -> None:
    body = fixture("cssrs-contained-questionnaire.json", unique=False)
    body["item"][1]["answer"] = [{"valueString": "Alexandra Confidential said no"}]
    with pytest.raises(FhirError) as caught:
        mapped(body)
    text = str(caught.value) + str([i.as_fhir() for i in caught.value.issues])
    assert not any(secret in text for secret in PHI)


def test_if_none_exist_identifier() -> None:
    assert if_none_exist_identifier("identifier=urn:example:ehr|qr-1") == FhirIdentifier(
        "urn:example:ehr", "qr-1"
    )
    assert if_none_exist_identifier("identifier=urn%3Aexample%3Aehr%7Cqr-1") == FhirIdentifier(
        "urn:example:ehr", "qr-1"
    )
    assert if_none_exist_identifier("identifier=|qr-1") == FhirIdentifier(None, "qr-1")
    assert if_none_exist_identifier(None) is None
    for unsupported in ("identifier=qr-1", "subject=Patient/1", "identifier=a|1&status=completed"):
        with pytest.raises(FhirError) as caught:
            if_none_exist_identifier(unsupported)
        assert caught.value.status == 400


def test_if_none_exist_must_agree_with_the_resource_identifier() -> None:
    body = fixture("cssrs-bhp.json", unique=False)
    error = refused(body, conditional=FhirIdentifier("urn:example:bhp-ehr", "another"))
    assert error.status == 400


def test_long_identifier_becomes_a_hashed_external_id() -> None:
    ident = FhirIdentifier("urn:example:ehr", "x" * 300)
    assert ident.external_id.startswith("sha256:") and len(ident.external_id) < 200
    assert FhirIdentifier(None, "abc").external_id == "|abc"


def _screening(level: str | None, **risk: Any) -> Screening:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    return Screening(
        id=uuid.uuid4(),
        subject_id="Patient/p-1",
        source="ehr",
        external_id="urn:example:ehr|qr-1",
        instrument="phq9",
        answers={"items": [0] * 8 + [1]},
        imminent_danger=False,
        request_hash="x",
        status="assessed" if level else "received",
        risk={
            "level": level,
            "flagged": level in ("moderate", "high", "imminent"),
            "reasons": [
                "positive item 9: a suicide risk assessment (for example the C-SSRS) is required"
            ],
            "rules_version": "cssrs-asq-phq9/2026-11-27.1",
            "assessed_at": now.isoformat(),
            **risk,
        }
        if level
        else None,
        received_at=now,
        updated_at=now,
    )


def _source(screening: Screening, **extra: Any) -> FhirResponse:
    return FhirResponse(
        screening_id=screening.id,
        identifier_system="urn:example:ehr",
        identifier_value="qr-1",
        resource_id=extra.get("resource_id"),
        questionnaire="http://loinc.org/q/44249-1",
        status="completed",
        authored=None,
        subject={"reference": "Patient/p-1"},
        created_at=screening.received_at,
    )


@pytest.mark.parametrize(
    ("level", "loinc"),
    [
        ("none", None),
        ("low", "LA9194-7"),
        ("moderate", "LA6751-7"),
        ("high", "LA9193-9"),
        ("imminent", None),
    ],
)
def test_risk_assessment_codes_every_level(level: str, loinc: str | None) -> None:
    screening = _screening(level)
    resource = risk_assessment(screening, _source(screening, resource_id="ehr-qr-9"))
    doc = RiskAssessment.model_validate(resource.model_dump(mode="json")).model_dump(mode="json")
    codings = doc["prediction"][0]["qualitativeRisk"]["coding"]
    systems = {c["system"]: c["code"] for c in codings}
    assert systems["urn:crisis-triage:fhir:risk-level"] == level
    assert systems.get("http://loinc.org") == loinc
    assert "no suicide risk" not in str(doc).lower(), "clinical-rules.md forbids that wording"
    assert doc["status"] == "final"
    assert doc["subject"] == {"reference": "Patient/p-1"}
    assert doc["basis"] == [
        {
            "type": "QuestionnaireResponse",
            "reference": f"QuestionnaireResponse/{screening.id}",
            "identifier": {"system": "urn:example:ehr", "value": "qr-1"},
        }
    ]
    method = doc["method"]["coding"][0]
    assert (method["code"], method["version"]) == ("cssrs-asq-phq9", "2026-11-27.1")
    assert doc["note"][0]["text"].startswith("positive item 9")
    assert doc["code"]["coding"][0]["code"] == "93374-7"


def test_risk_assessment_of_a_json_screening_points_at_the_screening() -> None:
    screening = _screening("low")
    doc = risk_assessment(screening, None).model_dump(mode="json")
    assert doc["basis"][0]["identifier"] == {
        "system": "urn:ietf:rfc:3986",
        "value": f"urn:uuid:{screening.id}",
    }
    assert doc["subject"]["identifier"]["value"] == "Patient/p-1"


def test_no_risk_assessment_before_the_assessment() -> None:
    with pytest.raises(NotAssessed):
        risk_assessment(_screening(None), None)
