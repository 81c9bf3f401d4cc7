"""Answer schemas: what intake accepts is exactly what risk can assess, and nothing looser."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from shared.instruments import (
    ANSWER_MODELS,
    CSSRS_ITEM_LOINC,
    CSSRS_PANEL_LOINC,
    INSTRUMENTS,
    PHQ9_ANSWER_CODE,
    PHQ9_ANSWER_LOINC,
    PHQ9_ITEM_LOINC,
    PHQ9_PANEL_LOINC,
    PHQ9_TOTAL_LOINC,
    RISK_LEVEL_ANSWER_LOINC,
    RISK_LEVEL_LOINC,
    AsqAnswers,
    CssrsAnswers,
    InvalidAnswers,
    Phq9Answers,
    RiskLevel,
    max_level,
    parse_answers,
)

# --- risk levels -------------------------------------------------------------------------------


def test_levels_are_ordered_lowest_to_highest() -> None:
    levels = ["none", "low", "moderate", "high", "imminent"]
    assert [level.value for level in RiskLevel] == levels
    assert [RiskLevel(level).rank for level in levels] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ((), RiskLevel.NONE),
        ((RiskLevel.LOW,), RiskLevel.LOW),
        ((RiskLevel.HIGH, RiskLevel.MODERATE), RiskLevel.HIGH),
        # As strings, "moderate" > "imminent": the order must come from rank, not spelling.
        (("moderate", "imminent", "low"), RiskLevel.IMMINENT),
        (("none", "low"), RiskLevel.LOW),
    ],
)
def test_max_level_uses_clinical_order(levels: tuple[str, ...], expected: RiskLevel) -> None:
    assert max_level(*levels) is expected


# --- codes -------------------------------------------------------------------------------------


def test_loinc_codes() -> None:
    assert PHQ9_PANEL_LOINC == "44249-1"
    assert CSSRS_PANEL_LOINC == "93373-9"
    assert PHQ9_TOTAL_LOINC == "44261-6"
    assert PHQ9_ITEM_LOINC == (
        "44250-9",
        "44255-8",
        "44259-0",
        "44254-1",
        "44251-7",
        "44258-2",
        "44252-5",
        "44253-3",
        "44260-8",
    )
    assert dict(PHQ9_ANSWER_LOINC) == {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}
    assert {PHQ9_ANSWER_CODE[v]: v for v in range(4)} == dict(PHQ9_ANSWER_LOINC)
    assert dict(CSSRS_ITEM_LOINC) == {
        "wish_dead": "93246-7",
        "suicidal_thoughts": "93247-5",
        "method": "93248-3",
        "intent": "93249-1",
        "plan": "93250-9",
        "behavior": "93267-3",
        "behavior_past_3_months": "93269-9",
    }
    assert RISK_LEVEL_LOINC == "93374-7"
    assert dict(RISK_LEVEL_ANSWER_LOINC) == {
        RiskLevel.LOW: "LA9194-7",
        RiskLevel.MODERATE: "LA6751-7",
        RiskLevel.HIGH: "LA9193-9",
    }


def test_every_cssrs_field_has_a_loinc_code() -> None:
    assert list(CSSRS_ITEM_LOINC) == list(CssrsAnswers.model_fields)


# --- C-SSRS ------------------------------------------------------------------------------------

ALL_NO: dict[str, Any] = {"wish_dead": False, "suicidal_thoughts": False, "behavior": False}
Q2_YES: dict[str, Any] = {
    "wish_dead": True,
    "suicidal_thoughts": True,
    "method": False,
    "intent": False,
    "plan": False,
    "behavior": False,
}


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param(ALL_NO, id="all-no-follow-ups-skipped"),
        pytest.param(
            {**ALL_NO, "method": None, "intent": None, "plan": None}, id="skipped-as-null"
        ),
        pytest.param({**ALL_NO, "method": False, "intent": False, "plan": False}, id="q3-5-no"),
        pytest.param(Q2_YES, id="q2-yes-with-q3-5"),
        pytest.param({**ALL_NO, "behavior": True}, id="q6-yes-recency-unknown"),
        pytest.param({**ALL_NO, "behavior": True, "behavior_past_3_months": None}, id="q6-null"),
        pytest.param({**ALL_NO, "behavior": True, "behavior_past_3_months": False}, id="q6-old"),
        pytest.param({**ALL_NO, "behavior_past_3_months": None}, id="q6-no-follow-up-null"),
    ],
)
def test_cssrs_consistent_forms_are_accepted(answers: dict[str, Any]) -> None:
    parsed = parse_answers("cssrs_screener", answers)
    assert isinstance(parsed, CssrsAnswers)
    assert parsed.model_dump(exclude_none=True) == {
        k: v for k, v in answers.items() if v is not None
    }


@pytest.mark.parametrize(
    ("answers", "fields", "message"),
    [
        pytest.param(
            {**ALL_NO, "method": True},
            ["method"],
            "skip-logic conflict: method answered yes while suicidal_thoughts is no",
            id="q3-yes-q2-no",
        ),
        pytest.param(
            {**ALL_NO, "intent": True},
            ["intent"],
            "skip-logic conflict: intent answered yes while suicidal_thoughts is no",
            id="q4-yes-q2-no",
        ),
        pytest.param(
            {**ALL_NO, "plan": True},
            ["plan"],
            "skip-logic conflict: plan answered yes while suicidal_thoughts is no",
            id="q5-yes-q2-no",
        ),
        pytest.param(
            {**ALL_NO, "method": True, "intent": True, "plan": False},
            ["method", "intent"],
            "skip-logic conflict: method, intent answered yes while suicidal_thoughts is no",
            id="q3-q4-yes-q2-no",
        ),
        pytest.param(
            {**ALL_NO, "behavior_past_3_months": True},
            ["behavior_past_3_months"],
            "skip-logic conflict: behavior_past_3_months answered while behavior is no",
            id="follow-up-yes-q6-no",
        ),
        pytest.param(
            {**ALL_NO, "behavior_past_3_months": False},
            ["behavior_past_3_months"],
            "skip-logic conflict: behavior_past_3_months answered while behavior is no",
            id="follow-up-no-q6-no",
        ),
        pytest.param(
            {k: v for k, v in Q2_YES.items() if k != "method"},
            ["method"],
            "missing answers: method (required when suicidal_thoughts is yes)",
            id="q3-missing-q2-yes",
        ),
        pytest.param(
            {k: v for k, v in Q2_YES.items() if k != "intent"},
            ["intent"],
            "missing answers: intent (required when suicidal_thoughts is yes)",
            id="q4-missing-q2-yes",
        ),
        pytest.param(
            {**Q2_YES, "plan": None},
            ["plan"],
            "missing answers: plan (required when suicidal_thoughts is yes)",
            id="q5-null-q2-yes",
        ),
        pytest.param(
            {"wish_dead": False, "suicidal_thoughts": True, "behavior": False},
            ["method", "intent", "plan"],
            "missing answers: method, intent, plan (required when suicidal_thoughts is yes)",
            id="q3-5-missing-q2-yes",
        ),
    ],
)
def test_cssrs_skip_logic_conflicts_name_the_fields(
    answers: dict[str, Any], fields: list[str], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        CssrsAnswers.model_validate(answers)
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("cssrs_screener", answers)
    assert caught.value.problems == [{"field": f, "problem": message} for f in fields]


def test_invalid_answers_is_a_validation_error() -> None:
    """Callers may catch either pydantic's ValidationError or ValueError."""
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("phq9", {"items": [0] * 8 + [4]})
    assert isinstance(caught.value, ValidationError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.errors(include_url=False) == [
        {
            "type": "less_than_equal",
            "loc": ("items", 8),
            "msg": "Input should be less than or equal to 3",
            "input": None,
        }
    ]
    assert caught.value.problems == [
        {"field": "items.8", "problem": "Input should be less than or equal to 3"}
    ]


def test_cssrs_reports_every_skip_logic_issue_at_once() -> None:
    answers = {**ALL_NO, "plan": True, "behavior_past_3_months": True}
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("cssrs_screener", answers)
    assert [p["field"] for p in caught.value.problems] == ["plan", "behavior_past_3_months"]


@pytest.mark.parametrize("missing", ["wish_dead", "suicidal_thoughts", "behavior"])
def test_cssrs_always_asked_questions_are_required(missing: str) -> None:
    answers = {k: v for k, v in ALL_NO.items() if k != missing}
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("cssrs_screener", answers)
    assert caught.value.problems == [{"field": missing, "problem": "Field required"}]


@pytest.mark.parametrize("value", [None, 1, 0, "yes", "true", "refused", 1.0])
@pytest.mark.parametrize("field", ["wish_dead", "suicidal_thoughts", "behavior"])
def test_cssrs_answers_are_strict_booleans(field: str, value: Any) -> None:
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("cssrs_screener", {**ALL_NO, field: value})
    assert [p["field"] for p in caught.value.problems] == [field]


@pytest.mark.parametrize("value", [1, "yes"])
def test_cssrs_optional_answers_are_strict_too(value: Any) -> None:
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("cssrs_screener", {**Q2_YES, "intent": value})
    assert [p["field"] for p in caught.value.problems] == ["intent"]


def test_models_are_frozen() -> None:
    parsed = CssrsAnswers.model_validate(ALL_NO)
    with pytest.raises(ValidationError):
        parsed.wish_dead = True  # type: ignore[misc]


# --- ASQ ---------------------------------------------------------------------------------------

ASQ_NO: dict[str, Any] = {
    "wished_dead": False,
    "better_off_dead": False,
    "thoughts_past_week": False,
    "ever_attempted": False,
}
ASQ_ITEMS = list(ASQ_NO)


@pytest.mark.parametrize("value", [True, False, "refused"])
@pytest.mark.parametrize("field", ASQ_ITEMS)
def test_asq_items_take_true_false_or_refused(field: str, value: Any) -> None:
    parsed = parse_answers("asq", {**ASQ_NO, field: value, "thoughts_now": False})
    assert isinstance(parsed, AsqAnswers)
    assert getattr(parsed, field) == value


@pytest.mark.parametrize("thoughts_now", [True, False, None, "absent"])
def test_asq_thoughts_now_is_optional(thoughts_now: Any) -> None:
    answers = dict(ASQ_NO) if thoughts_now == "absent" else {**ASQ_NO, "thoughts_now": thoughts_now}
    parsed = parse_answers("asq", answers)
    assert isinstance(parsed, AsqAnswers)
    assert parsed.thoughts_now is (None if thoughts_now == "absent" else thoughts_now)


@pytest.mark.parametrize("value", ["maybe", "Refused", "yes", "true", 1, 0, None, 1.0])
@pytest.mark.parametrize("field", ASQ_ITEMS)
def test_asq_rejects_other_values(field: str, value: Any) -> None:
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("asq", {**ASQ_NO, field: value})
    assert caught.value.problems == [
        {"field": field, "problem": "Input should be true, false or 'refused'"}
    ]


@pytest.mark.parametrize("value", ["refused", "maybe", 1])
def test_asq_thoughts_now_is_a_strict_boolean(value: Any) -> None:
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("asq", {**ASQ_NO, "thoughts_now": value})
    assert [p["field"] for p in caught.value.problems] == ["thoughts_now"]


@pytest.mark.parametrize("missing", ASQ_ITEMS)
def test_asq_items_are_required(missing: str) -> None:
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("asq", {k: v for k, v in ASQ_NO.items() if k != missing})
    assert caught.value.problems == [{"field": missing, "problem": "Field required"}]


def test_asq_json_input_is_strict() -> None:
    assert (
        AsqAnswers.model_validate_json(
            '{"wished_dead": "refused", "better_off_dead": true, '
            '"thoughts_past_week": false, "ever_attempted": false, "thoughts_now": null}'
        ).wished_dead
        == "refused"
    )
    with pytest.raises(ValidationError):
        AsqAnswers.model_validate_json(
            '{"wished_dead": 1, "better_off_dead": false, '
            '"thoughts_past_week": false, "ever_attempted": false}'
        )


# --- PHQ-9 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "items", [[0] * 9, [3] * 9, [2, 2, 2, 2, 1, 1, 2, 0, 0], (1, 0, 1, 0, 1, 0, 1, 0, 1)]
)
def test_phq9_accepts_nine_scores(items: Any) -> None:
    parsed = parse_answers("phq9", {"items": items})
    assert isinstance(parsed, Phq9Answers)
    assert parsed.items == tuple(items)


@pytest.mark.parametrize(
    ("items", "field", "problem"),
    [
        pytest.param([1] * 8, "items", "expected 9 items", id="8-items"),
        pytest.param([1] * 10, "items", "expected 9 items", id="10-items"),
        pytest.param([], "items", "expected 9 items", id="empty"),
        pytest.param(
            [1] * 8 + [-1], "items.8", "Input should be greater than or equal to 0", id="minus-1"
        ),
        pytest.param([4] + [1] * 8, "items.0", "Input should be less than or equal to 3", id="4"),
        pytest.param([1] * 4 + [True] + [1] * 4, "items.4", "Input should be a valid integer"),
        pytest.param([1] * 8 + ["2"], "items.8", "Input should be a valid integer", id="str-2"),
        pytest.param([1] * 8 + [2.0], "items.8", "Input should be a valid integer", id="float"),
        pytest.param([1] * 8 + [None], "items.8", "Input should be a valid integer", id="null"),
        pytest.param("222211200", "items", "Input should be a valid tuple", id="string"),
        pytest.param(None, "items", "Input should be a valid tuple", id="items-null"),
    ],
)
def test_phq9_rejects_bad_items(items: Any, field: str, problem: str) -> None:
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("phq9", {"items": items})
    assert caught.value.problems == [{"field": field, "problem": problem}]


def test_phq9_items_required() -> None:
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("phq9", {})
    assert caught.value.problems == [{"field": "items", "problem": "Field required"}]


def test_phq9_json_input_is_strict() -> None:
    assert Phq9Answers.model_validate_json('{"items": [0,1,2,3,0,1,2,3,0]}').items[3] == 3
    with pytest.raises(ValidationError):
        Phq9Answers.model_validate_json('{"items": [0,1,2,3,0,1,2,3,"0"]}')
    with pytest.raises(ValidationError):
        Phq9Answers.model_validate_json('{"items": [0,1,2,3,0,1,2,3,true]}')


# --- parse_answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("instrument", ["gad7", "PHQ9", "", None, 7, ["phq9"]])
def test_unknown_instrument_names_the_allowed_ones(instrument: Any) -> None:
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers(instrument, {"items": [0] * 9})
    assert caught.value.problems == [
        {"field": "instrument", "problem": "unknown instrument; allowed: cssrs_screener, asq, phq9"}
    ]


def test_instruments_and_models_agree() -> None:
    assert INSTRUMENTS == ("cssrs_screener", "asq", "phq9")
    assert set(ANSWER_MODELS) == set(INSTRUMENTS)


@pytest.mark.parametrize("answers", [None, [], "yes", 3])
@pytest.mark.parametrize("instrument", ["cssrs_screener", "asq", "phq9"])
def test_answers_must_be_an_object(instrument: str, answers: Any) -> None:
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers(instrument, answers)
    assert caught.value.problems == [
        {"field": "answers", "problem": "must be an object of answers"}
    ]


def test_parsed_model_passes_through_unchanged() -> None:
    parsed = Phq9Answers(items=(0,) * 9)
    assert parse_answers("phq9", parsed) is parsed


def test_model_of_another_instrument_is_rejected() -> None:
    with pytest.raises(InvalidAnswers):
        parse_answers("asq", Phq9Answers(items=(0,) * 9))


PHI = "Jane Doe 555-0100"


@pytest.mark.parametrize(
    ("instrument", "answers"),
    [
        ("cssrs_screener", {**ALL_NO, PHI: True}),
        ("cssrs_screener", {**ALL_NO, "notes": PHI}),
        ("cssrs_screener", {**ALL_NO, "wish_dead": PHI}),
        ("asq", {**ASQ_NO, "wished_dead": PHI}),
        ("phq9", {"items": [PHI] * 9}),
        ("phq9", {"items": PHI}),
    ],
)
def test_errors_never_echo_submitted_text(instrument: str, answers: dict[str, Any]) -> None:
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers(instrument, answers)
    assert PHI not in str(caught.value)
    assert "input_value" not in str(caught.value)
    assert PHI not in repr(caught.value.problems)
    assert all(e["input"] is None for e in caught.value.errors())
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_unexpected_fields_list_the_allowed_ones() -> None:
    with pytest.raises(InvalidAnswers) as caught:
        parse_answers("phq9", {"items": [0] * 9, "difficulty": 1, "extra": 2})
    assert caught.value.problems == [
        {"field": "answers", "problem": "unexpected field(s); allowed fields: items"}
    ]
