"""Scoring does not depend on the language a screening was taken in.

Every answer combination of each instrument (C-SSRS screener, ASQ, and all 4^9 PHQ-9 item
scores) goes the way a screening goes (intake's validation of the JSON body, the
`screening.submitted` event on the wire, risk's rule set) once per language, and must come out
with the same level, reasons and details, or be refused with the same problems. The FHIR path
does the same for C-SSRS and PHQ-9 with the questions' texts in English and in Spanish: items
are matched by LOINC linkId, never by text.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from services.intake.fhir.mapping import (
    map_questionnaire_response,
    parse_questionnaire_response,
    screening_payload,
)
from services.intake.screenings.schemas import ScreeningIn
from services.intake.screenings.service import validated_answers
from services.risk.rules import RuleSet, load_ruleset
from shared.errors import Unprocessable
from shared.events import Envelope, ScreeningSubmitted, utcnow
from shared.instruments import (
    CSSRS_ITEM_LOINC,
    LOINC_SYSTEM,
    PHQ9_ANSWER_CODE,
    PHQ9_ITEM_LOINC,
)

LANGUAGES = ("en", "es", "es-MX")


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_ruleset()


def _combinations(instrument: str) -> Iterator[dict[str, Any]]:
    if instrument == "cssrs_screener":
        names = ("wish_dead", "suicidal_thoughts", "method", "intent", "plan", "behavior")
        for values in itertools.product((True, False), repeat=len(names)):
            answers: dict[str, Any] = dict(zip(names, values, strict=True))
            for past in (None, True, False):  # asked only after a yes to behavior
                yield answers if past is None else {**answers, "behavior_past_3_months": past}
    elif instrument == "asq":
        names = ("wished_dead", "better_off_dead", "thoughts_past_week", "ever_attempted")
        for values in itertools.product((True, False, "refused"), repeat=len(names)):
            for now in (True, False, None):
                yield {**dict(zip(names, values, strict=True)), "thoughts_now": now}
    else:
        for items in itertools.product(range(4), repeat=9):
            yield {"items": list(items)}


def _scored(rules: RuleSet, instrument: str, answers: dict[str, Any], language: str) -> Any:
    """What a JSON screening in `language` with `answers` comes to: the assessment, or the
    problems it is refused with."""
    try:
        payload = ScreeningIn(
            subject_id="s-1",
            source="hotline",
            instrument=instrument,  # type: ignore[arg-type]
            answers=answers,
            language=language,
        )
        valid = validated_answers(payload)
    except Unprocessable as exc:
        return ("refused", json.dumps(exc.problems, sort_keys=True))
    assert payload.language == language
    wire = ScreeningSubmitted(
        screening_id="00000000-0000-0000-0000-000000000001",  # type: ignore[arg-type]
        source="hotline",
        instrument=instrument,
        answers=valid,
        submitted_at=utcnow(),
        language=payload.language,
    ).envelope(correlation_id="c")
    submitted = ScreeningSubmitted.model_validate(Envelope.decode(wire.encode()).data)
    assert submitted.language == language
    result = rules.assess(submitted.instrument, submitted.answers)
    return (str(result.level), result.reasons, json.dumps(result.details, sort_keys=True))


@pytest.mark.parametrize("instrument", ["cssrs_screener", "asq", "phq9"])
def test_every_answer_combination_scores_the_same_in_every_language(
    rules: RuleSet, instrument: str
) -> None:
    seen = 0
    levels = set()
    for answers in _combinations(instrument):
        english = _scored(rules, instrument, answers, "en")
        # All 4^9 PHQ-9 combinations in Spanish; the regional tag on the smaller instruments.
        for language in LANGUAGES[1:] if instrument != "phq9" else ("es",):
            assert _scored(rules, instrument, answers, language) == english, answers
        levels.add(english[0])
        seen += 1
    assert seen == {"cssrs_screener": 192, "asq": 243, "phq9": 4**9}[instrument]
    assert len(levels) >= 2  # the combinations reach several levels (or refusals)


# --- FHIR: the same QuestionnaireResponse with its texts in English and in Spanish -----------

#: The questions' texts (the answers are coded; only `text` and `display` change).
_TEXTS = {
    "en": {"yes": "Yes", "no": "No", "q": "Question {n}"},
    "es": {"yes": "Sí", "no": "No", "q": "Pregunta {n}"},
}


def _response(instrument: str, answers: dict[str, Any], language: str) -> dict[str, Any]:
    words = _TEXTS[language.split("-")[0]]
    items: list[dict[str, Any]] = []
    if instrument == "cssrs_screener":
        for n, (name, code) in enumerate(CSSRS_ITEM_LOINC.items(), start=1):
            if name in answers:
                items.append(
                    {
                        "linkId": code,
                        "text": words["q"].format(n=n),
                        "answer": [{"valueBoolean": answers[name]}],
                    }
                )
        questionnaire = "http://loinc.org/q/93373-9"
    else:
        for n, (code, score) in enumerate(zip(PHQ9_ITEM_LOINC, answers["items"], strict=True)):
            items.append(
                {
                    "linkId": code,
                    "text": words["q"].format(n=n + 1),
                    "answer": [
                        {
                            "valueCoding": {
                                "system": LOINC_SYSTEM,
                                "code": PHQ9_ANSWER_CODE[score],
                                "display": str(score),
                            }
                        }
                    ],
                }
            )
        questionnaire = "http://loinc.org/q/44249-1"
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire,
        "status": "completed",
        "language": language,
        "subject": {"reference": "Patient/p-1"},
        "item": items,
    }


def _fhir_scored(rules: RuleSet, instrument: str, answers: dict[str, Any], language: str) -> Any:
    from services.intake.fhir.outcomes import FhirError

    try:
        mapped = map_questionnaire_response(
            parse_questionnaire_response(_response(instrument, answers, language), where="QR")
        )
        payload, valid = screening_payload(mapped, conditional=None)
    except FhirError as exc:
        return ("refused", [(i.code, i.diagnostics) for i in exc.issues])
    assert payload.language == language  # QuestionnaireResponse.language is read
    result = rules.assess(instrument, valid)
    return (str(result.level), result.reasons, json.dumps(result.details, sort_keys=True))


def _fhir_combinations(instrument: str) -> Iterator[dict[str, Any]]:
    if instrument == "cssrs_screener":
        yield from _combinations(instrument)
        return
    # PHQ-9 by FHIR: every score of every item with the others at each value, and every
    # item-9 score with every total (the rule set reads the total and item 9 only).
    for position, score, rest in itertools.product(range(9), range(4), range(4)):
        items = [rest] * 9
        items[position] = score
        yield {"items": items}
    for item9, total in itertools.product(range(4), range(25)):
        items = [0] * 9
        items[8], left = item9, total
        for i in range(8):
            items[i] = min(3, left)
            left -= items[i]
        yield {"items": items}


@pytest.mark.parametrize("instrument", ["cssrs_screener", "phq9"])
def test_fhir_responses_score_the_same_whatever_their_language(
    rules: RuleSet, instrument: str
) -> None:
    for answers in _fhir_combinations(instrument):
        english = _fhir_scored(rules, instrument, answers, "en")
        assert _fhir_scored(rules, instrument, answers, "es") == english, answers
        assert _fhir_scored(rules, instrument, answers, "es-MX") == english, answers


def test_a_language_tag_cldr_does_not_know_is_refused_by_name() -> None:
    from pydantic import ValidationError

    for bad in ("sp", "es-XX", "english", "es_MX"):
        with pytest.raises(ValidationError) as caught:
            ScreeningIn(
                subject_id="s", source="hotline", instrument="asq", answers={}, language=bad
            )
        assert bad not in str(caught.value.errors(include_input=False))
    assert (
        ScreeningIn(
            subject_id="s", source="hotline", instrument="asq", answers={}, language="ES-mx"
        ).language
        == "es-MX"
    )
