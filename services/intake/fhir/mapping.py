"""FHIR R4 in: a QuestionnaireResponse becomes a screening, exactly like a JSON one.

EHRs disagree on where a question's LOINC code goes, so an item is matched by the code in its
``linkId`` (``44250-9``, or LHC-Forms' ``/44250-9`` and ``/44249-1/44250-9``), in its
``definition``, or on the matching item of a contained Questionnaire; groups may nest. The result
is checked by intake's own rules (``validated_answers``) and stored through its own submit path
(service.py, ``submit_screening``), so a FHIR screening is validated, stored, published and
assessed like any other. Nothing here touches the database.

Parsing uses the ``fhir.resources`` R4B models: R4B is R4 for every resource used here
(QuestionnaireResponse, Questionnaire, RiskAssessment, OperationOutcome, Bundle).

Errors are :class:`FhirError` (outcomes.py), answered as an OperationOutcome with one issue per
problem. They name LOINC codes, our field names and FHIRPath locations, never a submitted value:
a QuestionnaireResponse may carry PHI (names in a contained Patient, free-text answers).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs

from fhir.resources.R4B.questionnaire import Questionnaire, QuestionnaireItem
from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse,
    QuestionnaireResponseItem,
    QuestionnaireResponseItemAnswer,
)
from pydantic import ValidationError

from services.intake.fhir.models import FhirResponse
from services.intake.fhir.outcomes import FhirError, Issue, structure_issues
from services.intake.screenings.models import Screening
from services.intake.screenings.schemas import ScreeningIn
from services.intake.screenings.service import validated_answers
from shared.errors import Unprocessable
from shared.instruments import (
    CSSRS_ITEM_LOINC,
    CSSRS_PANEL_LOINC,
    LOINC_SYSTEM,
    PHQ9_ANSWER_LOINC,
    PHQ9_ITEM_LOINC,
    PHQ9_PANEL_LOINC,
    InvalidAnswers,
)
from shared.locales import DEFAULT_LANGUAGE, language_tag

#: Statuses of a QuestionnaireResponse that hold a finished screening.
SCREENABLE_STATUSES: Final = ("completed", "amended")
#: Questionnaire (LOINC panel) → instrument.
PANELS: Final[Mapping[str, str]] = {PHQ9_PANEL_LOINC: "phq9", CSSRS_PANEL_LOINC: "cssrs_screener"}
PANEL_NAMES: Final[Mapping[str, str]] = {"phq9": "PHQ-9", "cssrs_screener": "C-SSRS screener"}

#: LOINC answer list LL361-7 (Y/N) and HL7 v2 table 0136, as C-SSRS answers.
_YES_NO: Final[Mapping[tuple[str, str], bool]] = {
    (LOINC_SYSTEM, "LA33-6"): True,
    (LOINC_SYSTEM, "LA32-8"): False,
    ("http://terminology.hl7.org/CodeSystem/v2-0136", "Y"): True,
    ("http://terminology.hl7.org/CodeSystem/v2-0136", "N"): False,
}
#: Extensions that give an answer option's score (R4 ``ordinalValue``, SDC ``itemWeight``).
_SCORE_EXTENSIONS: Final = (
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
)
_LOINC_CODE = re.compile(r"^\d{1,8}-\d$")
_EXTERNAL_ID = re.compile(r"^[\x21-\x7e]{1,200}$")

_PHQ9_INDEX: Final = {code: i for i, code in enumerate(PHQ9_ITEM_LOINC)}
_CSSRS_FIELD: Final = {code: name for name, code in CSSRS_ITEM_LOINC.items()}
#: Instrument → {item LOINC code → answer key ("items.<i>" or a C-SSRS field name)}.
_ITEM_KEYS: Final[Mapping[str, Mapping[str, str]]] = {
    "phq9": {code: f"items.{i}" for code, i in _PHQ9_INDEX.items()},
    "cssrs_screener": dict(_CSSRS_FIELD),
}


# --- identifiers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FhirIdentifier:
    """An Identifier as a FHIR token: ``system|value`` (``|value`` when it has no system)."""

    system: str | None
    value: str

    @property
    def token(self) -> str:
        return f"{self.system or ''}|{self.value}"

    @property
    def external_id(self) -> str:
        """The screening's ``external_id`` (source ``ehr``): the token, or its hash if too long."""
        token = self.token
        if _EXTERNAL_ID.match(token):
            return token
        return "sha256:" + hashlib.sha256(token.encode()).hexdigest()

    def as_fhir(self) -> dict[str, str]:
        return (
            {"system": self.system, "value": self.value} if self.system else {"value": self.value}
        )


def if_none_exist_identifier(header: str | None) -> FhirIdentifier | None:
    """The identifier of an ``If-None-Exist: identifier=system|value`` (conditional create)."""
    if header is None or not header.strip():
        return None
    params = parse_qs(header.strip().lstrip("?"), keep_blank_values=True)
    tokens = params.get("identifier", [])
    if set(params) != {"identifier"} or len(tokens) != 1 or "|" not in tokens[0]:
        raise FhirError.one(
            400,
            "not-supported",
            "If-None-Exist supports one search parameter: identifier=system|value",
        )
    system, _, value = tokens[0].partition("|")
    if not value:
        raise FhirError.one(400, "invalid", "If-None-Exist identifier has no value")
    return FhirIdentifier(system or None, value)


# --- parsing and mapping -----------------------------------------------------------------------


def parse_questionnaire_response(
    body: Any, *, where: str = "QuestionnaireResponse"
) -> QuestionnaireResponse:
    """The body as an R4 QuestionnaireResponse; 400 for another resource or a broken structure.

    ``where`` is the resource's FHIRPath (``Bundle.entry[2].resource`` inside a Bundle).
    """
    if not isinstance(body, dict) or body.get("resourceType") != "QuestionnaireResponse":
        raise FhirError.one(
            400, "structure", "expected a resource of type QuestionnaireResponse", where
        )
    try:
        return QuestionnaireResponse.model_validate(body)
    except ValidationError as exc:
        raise FhirError(400, structure_issues(exc, prefix=where)) from None


@dataclass(frozen=True)
class Answered:
    """One answered (or unanswered) question of the response, with where it sits."""

    path: str
    codes: tuple[str, ...]
    answers: tuple[QuestionnaireResponseItemAnswer, ...]


@dataclass(frozen=True)
class MappedResponse:
    """What a QuestionnaireResponse says, in the terms of a JSON screening."""

    instrument: str
    answers: dict[str, Any]
    subject_id: str
    subject: dict[str, Any]
    identifier: FhirIdentifier | None
    resource_id: str | None
    questionnaire: str | None
    status: str
    authored: str | None
    #: FHIRPath of the resource (``Bundle.entry[i].resource`` in a Bundle).
    where: str = "QuestionnaireResponse"
    #: ``QuestionnaireResponse.language`` (BCP 47) as sent, checked in ``screening_payload``.
    language: str | None = None
    #: Answer key ("items.<i>" or a field name) → (LOINC code, FHIRPath of the item).
    locations: dict[str, tuple[str, str]] = field(default_factory=dict)


def map_questionnaire_response(
    qr: QuestionnaireResponse, *, where: str = "QuestionnaireResponse"
) -> MappedResponse:
    """Recognise the instrument, match items by LOINC code and read the answers (422 if not)."""
    status = str(qr.status)
    if status not in SCREENABLE_STATUSES:
        raise FhirError.one(
            422,
            "business-rule",
            "only a completed or amended QuestionnaireResponse can be screened",
            f"{where}.status",
        )
    contained = _contained_questionnaire(qr)
    answered = list(_walk(qr.item or [], f"{where}.item", _question_codes(contained)))
    instrument = _instrument(qr.questionnaire, contained, answered, where)
    answers, locations = _answers(instrument, answered, where)
    subject_id, subject = _subject(qr, where)
    identifier = None
    if qr.identifier is not None and qr.identifier.value:
        identifier = FhirIdentifier(qr.identifier.system or None, qr.identifier.value)
    return MappedResponse(
        instrument=instrument,
        answers=answers,
        subject_id=subject_id,
        subject=subject,
        identifier=identifier,
        resource_id=qr.id,
        questionnaire=qr.questionnaire,
        status=status,
        authored=qr.model_dump(mode="json", include={"authored"}).get("authored"),
        where=where,
        locations=locations,
        language=str(qr.language) if qr.language else None,
    )


def _contained_questionnaire(qr: QuestionnaireResponse) -> Questionnaire | None:
    """The Questionnaire ``questionnaire`` points at when it is contained (``#id``)."""
    ref = (qr.questionnaire or "").split("|", 1)[0]
    for resource in qr.contained or []:
        if isinstance(resource, Questionnaire) and (
            ref == f"#{resource.id}" or (resource.url and ref == resource.url)
        ):
            return resource
    return None


def _loinc_tail(uri: str | None) -> str | None:
    """A LOINC code at the end of a canonical, linkId or definition, e.g. ``…/q/44249-1|2.0``."""
    if not uri:
        return None
    tail = re.split(r"[/#]", uri.split("|", 1)[0].strip().rstrip("/"))[-1]
    return tail if _LOINC_CODE.match(tail) else None


def _question_codes(questionnaire: Questionnaire | None) -> dict[str, str]:
    """linkId → LOINC code of each question of a contained Questionnaire."""
    codes: dict[str, str] = {}

    def visit(items: list[QuestionnaireItem]) -> None:
        for item in items:
            loinc = next(
                (c.code for c in item.code or [] if c.system == LOINC_SYSTEM and c.code), None
            )
            if loinc and item.linkId:
                codes[item.linkId] = loinc
            visit(item.item or [])

    if questionnaire is not None:
        visit(questionnaire.item or [])
    return codes


def _walk(
    items: list[QuestionnaireResponseItem], path: str, question_codes: Mapping[str, str]
) -> Iterator[Answered]:
    """Every item, depth first: groups nest items, and answers may nest follow-up items."""
    for i, item in enumerate(items):
        here = f"{path}[{i}]"
        codes = tuple(
            dict.fromkeys(
                c
                for c in (
                    _loinc_tail(item.linkId),
                    _loinc_tail(item.definition),
                    question_codes.get(item.linkId or ""),
                )
                if c
            )
        )
        yield Answered(here, codes, tuple(item.answer or []))
        yield from _walk(item.item or [], f"{here}.item", question_codes)
        for j, answer in enumerate(item.answer or []):
            yield from _walk(answer.item or [], f"{here}.answer[{j}].item", question_codes)


def _instrument(
    canonical: str | None,
    contained: Questionnaire | None,
    answered: list[Answered],
    where: str,
) -> str:
    """From ``questionnaire`` (or its contained copy) if it names a LOINC panel, else the items."""
    named = _loinc_tail(canonical)
    if contained is not None:
        named = next(
            (c.code for c in contained.code or [] if c.system == LOINC_SYSTEM and c.code in PANELS),
            named or _loinc_tail(contained.url),
        )
    supported = "supported: PHQ-9 (LOINC 44249-1) and the C-SSRS screener (LOINC 93373-9)"
    if named is not None:
        if named not in PANELS:
            raise FhirError.one(
                422,
                "not-supported",
                f"unsupported questionnaire; {supported}",
                f"{where}.questionnaire",
            )
        return PANELS[named]
    seen = {code for a in answered for code in a.codes}
    found = [instrument for instrument, keys in _ITEM_KEYS.items() if seen & keys.keys()]
    if len(found) != 1:
        why = "items of both" if found else "no item code of either"
        raise FhirError.one(
            422,
            "not-supported",
            f"questionnaire not recognised ({why}); {supported}",
            f"{where}.questionnaire",
        )
    return found[0]


def _answers(
    instrument: str, answered: list[Answered], where: str
) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """The instrument's answers keyed as in a JSON screening; each question once, one answer."""
    keys = _ITEM_KEYS[instrument]
    values: dict[str, Any] = {}
    locations: dict[str, tuple[str, str]] = {}
    issues: list[Issue] = []
    refused: set[str] = set()  # answered, but not in a form we read: already an issue
    for item in answered:
        code = next((c for c in item.codes if c in keys), None)
        if code is None:
            continue  # a group, a total score, the difficulty item, or a question we do not use
        key = keys[code]
        label = f"{code} ({_label(instrument, key)})"
        if key in locations:
            issues.append(
                Issue("business-rule", f"{label} is answered more than once", (item.path,))
            )
            continue
        locations[key] = (code, item.path)
        if not item.answers:
            continue  # unanswered: skipped (C-SSRS skip logic) or missing, decided below
        if len(item.answers) > 1:
            refused.add(key)
            issues.append(Issue("invalid", f"{label} takes one answer", (f"{item.path}.answer",)))
            continue
        try:
            values[key] = _value(instrument, item.answers[0])
        except ValueError as exc:
            refused.add(key)
            issues.append(Issue("value", f"{label}: {exc}", (f"{item.path}.answer[0]",)))
    if instrument == "phq9":
        for i, code in enumerate(PHQ9_ITEM_LOINC):
            key = f"items.{i}"
            if key in values or key in refused:
                continue
            where_item = (locations[key][1],) if key in locations else (f"{where}.item",)
            what = "has no answer" if key in locations else "is missing"
            issues.append(
                Issue("required", f"{code} ({_label(instrument, key)}) {what}", where_item)
            )
    if issues:
        raise FhirError(422, issues)
    if instrument == "phq9":
        return {"items": [values[f"items.{i}"] for i in range(len(PHQ9_ITEM_LOINC))]}, locations
    return values, locations


def _label(instrument: str, key: str) -> str:
    if instrument == "phq9":
        return f"PHQ-9 item {int(key.split('.')[1]) + 1}"
    return key


def _value(instrument: str, answer: QuestionnaireResponseItemAnswer) -> Any:
    """One answer as a JSON screening has it; a ValueError says what was expected, not the input."""
    coding = answer.valueCoding
    if instrument == "phq9":
        if answer.valueInteger is not None:
            return answer.valueInteger
        if answer.valueBoolean is not None:
            return answer.valueBoolean  # refused by the answer schema with its own message
        if coding is not None:
            score = PHQ9_ANSWER_LOINC.get(coding.code or "")
            if coding.system in (None, LOINC_SYSTEM) and score is not None:
                return score
            score = _score_extension(coding)
            if score is not None:
                return score
            raise ValueError(
                "answer code not in the PHQ-9 answer list (LOINC LA6568-5, LA6569-3, LA6570-1, "
                "LA6571-9) and no ordinalValue"
            )
        raise ValueError("expected valueCoding or valueInteger")
    if answer.valueBoolean is not None:
        return answer.valueBoolean
    if coding is not None:
        yes_no = _YES_NO.get((coding.system or LOINC_SYSTEM, coding.code or ""))
        if yes_no is None:
            raise ValueError("answer code is not yes/no (LOINC LA33-6 Yes, LA32-8 No)")
        return yes_no
    raise ValueError("expected valueBoolean or valueCoding")


def _score_extension(coding: Any) -> int | None:
    for ext in coding.extension or []:
        if ext.url in _SCORE_EXTENSIONS:
            value = ext.valueDecimal if ext.valueDecimal is not None else ext.valueInteger
            if value is not None and float(value).is_integer():
                return int(value)
    return None


def _subject(qr: QuestionnaireResponse, where: str) -> tuple[str, dict[str, Any]]:
    """The subject id of the screening, and the Reference kept for the RiskAssessment.

    A ``#id`` reference to a contained Patient is replaced by that Patient's first identifier: a
    contained reference means nothing outside this one resource. ``display`` is never kept.
    """
    ref = qr.subject
    reference = ref.reference if ref is not None else None
    identifier = ref.identifier if ref is not None else None
    if reference and reference.startswith("#"):
        target = next((c for c in qr.contained or [] if f"#{c.id}" == reference), None)
        ids = [i for i in getattr(target, "identifier", None) or [] if i.value]
        reference, identifier = None, (ids[0] if ids else None)
    if reference:
        kept: dict[str, Any] = {"reference": reference}
        subject_id = reference
    elif identifier is not None and identifier.value:
        ident = FhirIdentifier(identifier.system or None, identifier.value)
        kept = {"identifier": ident.as_fhir()}
        subject_id = ident.external_id
    else:
        raise FhirError.one(
            422,
            "required",
            "subject is required: a reference to the Patient, or a Patient identifier",
            f"{where}.subject",
        )
    if ref is not None and ref.type:
        kept["type"] = ref.type
    if not _EXTERNAL_ID.match(subject_id):
        raise FhirError.one(
            422,
            "value",
            "subject.reference must be 1-200 printable ASCII characters without spaces",
            f"{where}.subject",
        )
    return subject_id, kept


def screening_payload(
    mapped: MappedResponse, *, conditional: FhirIdentifier | None
) -> tuple[ScreeningIn, dict[str, Any]]:
    """The JSON screening this response is, validated by intake's own rules (skip logic, ranges)."""
    identifier = mapped.identifier or conditional
    if (
        conditional is not None
        and mapped.identifier is not None
        and conditional != mapped.identifier
    ):
        raise FhirError.one(
            400,
            "invalid",
            "If-None-Exist names another identifier than the resource",
            f"{mapped.where}.identifier",
        )
    language = DEFAULT_LANGUAGE
    if mapped.language is not None:
        try:
            language = language_tag(mapped.language)
        except ValueError as exc:
            raise FhirError.one(422, "value", str(exc), f"{mapped.where}.language") from None
    payload = ScreeningIn(
        subject_id=mapped.subject_id,
        source="ehr",
        external_id=identifier.external_id if identifier else None,
        instrument=mapped.instrument,
        answers=mapped.answers,
        language=language,
    )
    try:
        return payload, validated_answers(payload)
    except Unprocessable as exc:
        raise FhirError(422, _answer_issues(mapped, exc)) from None


def _answer_issues(mapped: MappedResponse, exc: Unprocessable) -> list[Issue]:
    """Answer-schema problems named by LOINC code, our field name and the item's location."""
    cause = exc.__cause__
    kinds = (
        [e["type"] for e in cause.errors(include_url=False)]
        if isinstance(cause, InvalidAnswers)
        else []
    )
    issues = []
    for n, problem in enumerate(exc.problems):
        key = problem["field"].removeprefix("answers").lstrip(".")
        kind = kinds[n] if n < len(kinds) else ""
        code = {"missing": "required", "skip_logic": "business-rule"}.get(kind, "value")
        if key in mapped.locations:
            loinc, path = mapped.locations[key]
            what, expression = f"{loinc} ({_label(mapped.instrument, key)})", (path,)
        elif key in _ITEM_KEYS_BY_KEY[mapped.instrument]:
            loinc = _ITEM_KEYS_BY_KEY[mapped.instrument][key]
            what = f"{loinc} ({_label(mapped.instrument, key)})"
            expression = (f"{mapped.where}.item",)
        else:
            what, expression = PANEL_NAMES[mapped.instrument], (f"{mapped.where}.item",)
        issues.append(Issue(code, f"{what}: {problem['problem']}", expression))
    return issues


_ITEM_KEYS_BY_KEY: Final[Mapping[str, Mapping[str, str]]] = {
    instrument: {key: code for code, key in keys.items()} for instrument, keys in _ITEM_KEYS.items()
}


def response_summary(screening: Screening, source: FhirResponse | None) -> dict[str, Any]:
    """Our copy of a QuestionnaireResponse as a FHIR resource, marked SUBSETTED: the answers
    live in the screening and the rest of what the EHR sent is not kept."""
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": str(screening.id),
        "meta": {
            "versionId": "1",
            "lastUpdated": screening.received_at.isoformat(),
            "tag": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                    "code": "SUBSETTED",
                    "display": "subsetted",
                }
            ],
        },
        "status": source.status if source else "completed",
    }
    if screening.language != DEFAULT_LANGUAGE:
        resource["language"] = screening.language
    if source is not None:
        if source.identifier_value:
            resource["identifier"] = FhirIdentifier(
                source.identifier_system, source.identifier_value
            ).as_fhir()
        if source.questionnaire:
            resource["questionnaire"] = source.questionnaire
        resource["subject"] = source.subject
        if source.authored:
            resource["authored"] = source.authored
    return QuestionnaireResponse.model_validate(resource).model_dump(mode="json", exclude_none=True)
