"""The bundled rule set encodes clinical-rules.md exactly, and a broken rule file fails at load."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.risk.rules import (
    CURRENT_RULESET,
    RULESETS_DIR,
    LevelResponse,
    RiskResult,
    RuleSet,
    RuleSetError,
    load_ruleset,
)
from shared.instruments import (
    AsqAnswers,
    CssrsAnswers,
    InvalidAnswers,
    Phq9Answers,
    RiskLevel,
)

ITEM9_REASON = "positive item 9: a suicide risk assessment (for example the C-SSRS) is required"
STAFF_REASON_START = "hotline staff judgement: imminent danger"

BUNDLED = RULESETS_DIR / f"{CURRENT_RULESET}.json"


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_ruleset()


@pytest.fixture(scope="module")
def bundled_doc() -> dict[str, Any]:
    """The bundled file as plain data, for tests that break one thing in a copy of it."""
    return json.loads(BUNDLED.read_text(encoding="utf-8"))


# --- the bundled file --------------------------------------------------------------------------


def test_bundled_version(rules: RuleSet) -> None:
    assert rules.version == "cssrs-asq-phq9/2026-11-27.1"
    assert rules.version == f"cssrs-asq-phq9/{BUNDLED.stem}"
    assert load_ruleset(BUNDLED).version == rules.version


def test_content_is_the_document_as_loaded(rules: RuleSet, bundled_doc: dict[str, Any]) -> None:
    assert rules.content == bundled_doc
    rules.content["version"] = "tampered"
    assert rules.content["version"] == rules.version


def test_every_rule_names_its_source(bundled_doc: dict[str, Any]) -> None:
    assert bundled_doc["imminent_danger"]["source"]
    assert bundled_doc["responses"]["source"]
    for instrument in bundled_doc["instruments"].values():
        assert instrument["source"]
        for rule in instrument["rules"]:
            assert rule["source"].strip(), rule["id"]
        for section in ("derived", "classify"):
            for spec in instrument.get(section, {}).values():
                assert spec["source"].strip()


# --- C-SSRS ------------------------------------------------------------------------------------


def cssrs(**yes: bool | None) -> dict[str, Any]:
    """A consistent C-SSRS form: all no, Q3-Q5 asked only when Q2 is yes, then the overrides."""
    answers: dict[str, Any] = {"wish_dead": False, "suicidal_thoughts": False, "behavior": False}
    if yes.get("suicidal_thoughts") or any(yes.get(f) for f in ("method", "intent", "plan")):
        answers.update(suicidal_thoughts=True, method=False, intent=False, plan=False)
    answers.update(yes)
    return answers


@pytest.mark.parametrize(
    ("answers", "level", "reason_starts"),
    [
        pytest.param(cssrs(), "none", ["C-SSRS screener: no to every question"], id="all-no"),
        pytest.param(cssrs(wish_dead=True), "low", ["C-SSRS Q1: wished to be dead"], id="q1-only"),
        pytest.param(
            cssrs(suicidal_thoughts=True), "low", ["C-SSRS Q2: thoughts of killing"], id="q2-only"
        ),
        pytest.param(
            cssrs(wish_dead=True, suicidal_thoughts=True),
            "low",
            ["C-SSRS Q2", "C-SSRS Q1"],
            id="q1-q2",
        ),
        pytest.param(cssrs(method=True), "moderate", ["C-SSRS Q3", "C-SSRS Q2"], id="q3-only"),
        pytest.param(cssrs(intent=True), "high", ["C-SSRS Q4", "C-SSRS Q2"], id="q4-alone"),
        pytest.param(
            cssrs(plan=True, method=False), "high", ["C-SSRS Q5", "C-SSRS Q2"], id="q5-no-method"
        ),
        pytest.param(
            cssrs(behavior=True, behavior_past_3_months=True),
            "high",
            ["C-SSRS Q6: suicidal behaviour within the past 3 months"],
            id="q6-recent",
        ),
        pytest.param(
            cssrs(behavior=True),
            "high",
            ["C-SSRS Q6: suicidal behaviour with recency not recorded"],
            id="q6-recency-missing",
        ),
        pytest.param(
            cssrs(behavior=True, behavior_past_3_months=None),
            "high",
            ["C-SSRS Q6: suicidal behaviour with recency not recorded"],
            id="q6-recency-null",
        ),
        pytest.param(
            cssrs(behavior=True, behavior_past_3_months=False),
            "moderate",
            ["C-SSRS Q6: suicidal behaviour, not within the past 3 months"],
            id="q6-not-recent",
        ),
        pytest.param(
            cssrs(wish_dead=True, method=True, behavior=True, behavior_past_3_months=False),
            "moderate",
            ["C-SSRS Q6", "C-SSRS Q3", "C-SSRS Q2", "C-SSRS Q1"],
            id="q3-and-old-q6",
        ),
        pytest.param(
            cssrs(wish_dead=True, behavior=True, behavior_past_3_months=True),
            "high",
            ["C-SSRS Q6", "C-SSRS Q1"],
            id="q1-and-recent-q6",
        ),
        pytest.param(
            cssrs(wish_dead=True, method=True, intent=True, plan=True, behavior=True),
            "high",
            ["C-SSRS Q4", "C-SSRS Q5", "C-SSRS Q6", "C-SSRS Q3", "C-SSRS Q2", "C-SSRS Q1"],
            id="everything-yes",
        ),
    ],
)
def test_cssrs_levels(
    rules: RuleSet, answers: dict[str, Any], level: str, reason_starts: list[str]
) -> None:
    result = rules.assess("cssrs_screener", answers)
    assert result.level is RiskLevel(level)
    assert len(result.reasons) == len(reason_starts)
    for reason, start in zip(result.reasons, reason_starts, strict=True):
        assert reason.startswith(start)
    assert result.details == {}


def test_cssrs_q4_is_high_never_moderate(rules: RuleSet) -> None:
    """Some published tools put Q4 at moderate; Columbia's triage rule says high."""
    assert rules.assess("cssrs_screener", cssrs(intent=True)).level is RiskLevel.HIGH


def test_cssrs_old_lifetime_behaviour_is_moderate_never_high(rules: RuleSet) -> None:
    """Some published tools treat any lifetime Q6 as high; only recent (or unknown) is high."""
    answers = cssrs(behavior=True, behavior_past_3_months=False)
    assert rules.assess("cssrs_screener", answers).level is RiskLevel.MODERATE


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param({**cssrs(), "intent": True}, id="q4-yes-q2-no"),
        pytest.param({**cssrs(), "behavior_past_3_months": True}, id="follow-up-q6-no"),
        pytest.param({**cssrs(), "suicidal_thoughts": True}, id="q3-5-missing"),
    ],
)
def test_cssrs_inconsistent_forms_are_not_assessed(rules: RuleSet, answers: dict[str, Any]) -> None:
    with pytest.raises(InvalidAnswers):
        rules.assess("cssrs_screener", answers)


# --- ASQ ---------------------------------------------------------------------------------------

ASQ_ITEMS = ("wished_dead", "better_off_dead", "thoughts_past_week", "ever_attempted")
ASQ_ITEM_REASON = {
    "wished_dead": "ASQ Q1:",
    "better_off_dead": "ASQ Q2:",
    "thoughts_past_week": "ASQ Q3:",
    "ever_attempted": "ASQ Q4:",
}


def asq(thoughts_now: bool | None = None, **items: bool | str) -> dict[str, Any]:
    return {**dict.fromkeys(ASQ_ITEMS, False), **items, "thoughts_now": thoughts_now}


@pytest.mark.parametrize("thoughts_now", [False, None])
def test_asq_all_no_is_none(rules: RuleSet, thoughts_now: bool | None) -> None:
    result = rules.assess("asq", asq(thoughts_now))
    assert result.level is RiskLevel.NONE
    assert result.reasons == ("ASQ: no to all of Q1-Q4 (negative screen)",)


def test_asq_q5_may_be_absent(rules: RuleSet) -> None:
    answers = dict.fromkeys(ASQ_ITEMS, False)
    assert rules.assess("asq", answers).level is RiskLevel.NONE


@pytest.mark.parametrize("value", [True, "refused"])
@pytest.mark.parametrize("item", ASQ_ITEMS)
def test_asq_non_acute_positive_is_high(rules: RuleSet, item: str, value: bool | str) -> None:
    result = rules.assess("asq", asq(False, **{item: value}))
    assert result.level is RiskLevel.HIGH
    assert result.reasons[0].startswith("ASQ non-acute positive (Q5 no)")
    assert result.reasons[1].startswith(ASQ_ITEM_REASON[item])
    assert len(result.reasons) == 2


@pytest.mark.parametrize("value", [True, "refused"])
@pytest.mark.parametrize("item", ASQ_ITEMS)
def test_asq_q5_yes_is_imminent(rules: RuleSet, item: str, value: bool | str) -> None:
    result = rules.assess("asq", asq(True, **{item: value}))
    assert result.level is RiskLevel.IMMINENT
    assert result.reasons[0].startswith("ASQ Q5: thoughts of killing oneself right now")
    assert result.reasons[1].startswith(ASQ_ITEM_REASON[item])


@pytest.mark.parametrize("value", [True, "refused"])
@pytest.mark.parametrize("item", ASQ_ITEMS)
def test_asq_positive_with_q5_null_is_imminent(
    rules: RuleSet, item: str, value: bool | str
) -> None:
    result = rules.assess("asq", asq(None, **{item: value}))
    assert result.level is RiskLevel.IMMINENT
    assert result.reasons[0].startswith("ASQ: positive screen with Q5")
    assert "treated as acute" in result.reasons[0]
    assert result.reasons[1].startswith(ASQ_ITEM_REASON[item])


@pytest.mark.parametrize("item", ASQ_ITEMS)
def test_asq_positive_with_q5_key_absent_is_imminent(rules: RuleSet, item: str) -> None:
    answers = {**dict.fromkeys(ASQ_ITEMS, False), item: True}
    assert rules.assess("asq", answers).level is RiskLevel.IMMINENT


def test_asq_yes_right_now_is_never_ignored(rules: RuleSet) -> None:
    """Q5 is only asked after a positive Q1-Q4, but a "yes, right now" always counts."""
    result = rules.assess("asq", asq(True))
    assert result.level is RiskLevel.IMMINENT
    assert len(result.reasons) == 1
    assert result.reasons[0].startswith("ASQ Q5: thoughts of killing oneself right now")


def test_asq_all_positive_lists_every_item(rules: RuleSet) -> None:
    result = rules.assess("asq", asq(False, **dict.fromkeys(ASQ_ITEMS, "refused")))
    assert result.level is RiskLevel.HIGH
    assert [r.split(":")[0] for r in result.reasons[1:]] == ["ASQ Q1", "ASQ Q2", "ASQ Q3", "ASQ Q4"]


@pytest.mark.parametrize("value", ["maybe", "yes", 1, None])
def test_asq_invalid_values_are_rejected(rules: RuleSet, value: Any) -> None:
    with pytest.raises(InvalidAnswers):
        rules.assess("asq", asq(False, wished_dead=value))


# --- PHQ-9 -------------------------------------------------------------------------------------


def phq9(total: int, item9: int = 0) -> list[int]:
    """Nine items adding up to ``total``, with item 9 as given."""
    rest = total - item9
    assert 0 <= rest <= 24
    items = [min(3, max(0, rest - 3 * i)) for i in range(8)]
    return [*items, item9]


def test_phq9_test_vector(rules: RuleSet) -> None:
    result = rules.assess("phq9", {"items": [2, 2, 2, 2, 1, 1, 2, 0, 0]})
    assert result.level is RiskLevel.NONE
    assert result.details == {"phq9_total": 12, "depression_severity": "moderate"}
    assert len(result.reasons) == 1
    assert "moderate" in result.reasons[0]
    assert "12" in result.reasons[0]


@pytest.mark.parametrize(
    ("total", "severity"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately severe"),
        (19, "moderately severe"),
        (20, "severe"),
        (24, "severe"),
    ],
)
def test_phq9_severity_bands(rules: RuleSet, total: int, severity: str) -> None:
    items = phq9(total)
    assert sum(items) == total
    result = rules.assess("phq9", {"items": items})
    assert result.details == {"phq9_total": total, "depression_severity": severity}
    assert result.level is RiskLevel.NONE, "severity alone never raises the suicide risk level"
    assert f"depression severity {severity} (total {total})" in result.reasons[0]


@pytest.mark.parametrize("item9", [1, 2, 3])
@pytest.mark.parametrize("rest", [0, 12, 24], ids=["others-0", "others-12", "others-max"])
def test_phq9_positive_item9_is_moderate_whatever_the_total(
    rules: RuleSet, item9: int, rest: int
) -> None:
    items = phq9(rest + item9, item9)
    result = rules.assess("phq9", {"items": items})
    assert result.level is RiskLevel.MODERATE
    assert result.reasons == (ITEM9_REASON,)
    assert result.details["phq9_total"] == rest + item9


def test_phq9_item9_alone_is_moderate(rules: RuleSet) -> None:
    result = rules.assess("phq9", {"items": [0] * 8 + [1]})
    assert result.level is RiskLevel.MODERATE
    assert result.reasons == (ITEM9_REASON,)
    assert result.details == {"phq9_total": 1, "depression_severity": "minimal"}


def test_phq9_reasons_never_say_no_suicide_risk(rules: RuleSet) -> None:
    """The PHQ-9 is not a suicide screen: item 9 = 0 is not "no risk", at any total."""
    for item9 in range(4):
        for total in range(item9, item9 + 25):
            result = rules.assess("phq9", {"items": phq9(total, item9)})
            for reason in result.reasons:
                assert "no suicide risk" not in reason.lower()
                assert "no risk" not in reason.lower()


@pytest.mark.parametrize(
    "items",
    [
        pytest.param([1] * 8, id="8-items"),
        pytest.param([1] * 10, id="10-items"),
        pytest.param([1] * 8 + [-1], id="minus-1"),
        pytest.param([1] * 8 + [4], id="4"),
        pytest.param([1] * 8 + [True], id="true"),
        pytest.param([1] * 8 + ["2"], id="string-2"),
    ],
)
def test_phq9_bad_items_are_rejected(rules: RuleSet, items: list[Any]) -> None:
    with pytest.raises(InvalidAnswers):
        rules.assess("phq9", {"items": items})


# --- staff judgement ---------------------------------------------------------------------------

NONE_ANSWERS = {"cssrs_screener": cssrs(), "asq": asq(False), "phq9": {"items": [0] * 9}}
FLAGGED_ANSWERS = {
    "cssrs_screener": cssrs(intent=True),
    "asq": asq(True, wished_dead=True),
    "phq9": {"items": [0] * 8 + [2]},
}


@pytest.mark.parametrize("answers", [NONE_ANSWERS, FLAGGED_ANSWERS], ids=["none", "flagged"])
@pytest.mark.parametrize("instrument", ["cssrs_screener", "asq", "phq9"])
def test_imminent_danger_forces_imminent(
    rules: RuleSet, instrument: str, answers: dict[str, Any]
) -> None:
    plain = rules.assess(instrument, answers[instrument])
    result = rules.assess(instrument, answers[instrument], imminent_danger=True)
    assert result.level is RiskLevel.IMMINENT
    assert result.reasons[0].startswith(STAFF_REASON_START)
    assert result.reasons[1:] == plain.reasons, "the instrument's findings stay on record"
    assert result.details == plain.details


@pytest.mark.parametrize("instrument", ["cssrs_screener", "asq", "phq9"])
def test_no_staff_judgement_by_default(rules: RuleSet, instrument: str) -> None:
    result = rules.assess(instrument, NONE_ANSWERS[instrument], imminent_danger=False)
    assert result.level is RiskLevel.NONE
    assert not any(r.startswith(STAFF_REASON_START) for r in result.reasons)


# --- inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instrument", "model"),
    [
        ("cssrs_screener", CssrsAnswers.model_validate(cssrs(plan=True))),
        ("asq", AsqAnswers.model_validate(asq(False, ever_attempted=True))),
        ("phq9", Phq9Answers(items=(0, 0, 0, 0, 0, 0, 0, 0, 1))),
    ],
)
def test_assess_takes_parsed_models(rules: RuleSet, instrument: str, model: Any) -> None:
    assert rules.assess(instrument, model) == rules.assess(instrument, model.model_dump())


def test_assess_rejects_unknown_instrument(rules: RuleSet) -> None:
    with pytest.raises(InvalidAnswers, match="allowed: cssrs_screener, asq, phq9"):
        rules.assess("gad7", {"items": [0] * 7})


def test_assess_rejects_answers_of_another_instrument(rules: RuleSet) -> None:
    with pytest.raises(InvalidAnswers):
        rules.assess("asq", {"items": [0] * 9})


def test_result_is_immutable(rules: RuleSet) -> None:
    result = rules.assess("phq9", {"items": [0] * 9})
    assert isinstance(result, RiskResult)
    with pytest.raises(AttributeError):
        result.level = RiskLevel.HIGH  # type: ignore[misc]


# --- what each level starts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("imminent", LevelResponse(True, "urgent", True, True, 120)),
        ("high", LevelResponse(True, "urgent", True, False, 300)),
        ("moderate", LevelResponse(True, "non-urgent", True, False, 1800)),
        ("low", LevelResponse(False, None, False, False, None)),
        ("none", LevelResponse(False, None, False, False, None)),
    ],
)
def test_response_table(rules: RuleSet, level: str, expected: LevelResponse) -> None:
    assert rules.response_for(RiskLevel(level)) == expected
    assert rules.response_for(level) == expected
    assert rules.flagged(level) is expected.alert


def test_response_for_unknown_level(rules: RuleSet) -> None:
    with pytest.raises(ValueError):
        rules.response_for("severe")


# --- loading -----------------------------------------------------------------------------------

Doc = dict[str, Any]


def rule(doc: Doc, instrument: str, index: int = 0) -> dict[str, Any]:
    rules_list: list[dict[str, Any]] = doc["instruments"][instrument]["rules"]
    return rules_list[index]


def set_when(instrument: str, when: Any, index: int = 0) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        rule(doc, instrument, index)["when"] = when

    return mutate


def bands(doc: Doc) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = doc["instruments"]["phq9"]["classify"]["depression_severity"][
        "bands"
    ]
    return found


def levels(doc: Doc) -> dict[str, Any]:
    found: dict[str, Any] = doc["responses"]["levels"]
    return found


BROKEN: list[Any] = [
    pytest.param(
        lambda d: rule(d, "cssrs_screener").update(level="severe"),
        "rules.0.level: Input should be 'none', 'low', 'moderate', 'high' or 'imminent'",
        id="unknown-level",
    ),
    pytest.param(
        set_when("cssrs_screener", {"field": "intnet", "eq": True}),
        "cssrs-q4-intent).when: unknown field 'intnet'",
        id="unknown-field",
    ),
    pytest.param(
        set_when("phq9", {"field": "items.9", "gte": 1}),
        "unknown field 'items.9'",
        id="item-out-of-range",
    ),
    pytest.param(
        set_when("asq", {"field": "wish_dead", "eq": True}),
        "unknown field 'wish_dead'",
        id="field-of-another-instrument",
    ),
    pytest.param(
        set_when("cssrs_screener", {"field": "intent", "equals": True}),
        "exactly one operator out of eq, ne, in, gte, gt, lte, lt, missing; got 'equals'",
        id="bad-operator",
    ),
    pytest.param(
        set_when("cssrs_screener", {"field": "intent", "eq": True, "ne": False}),
        "exactly one operator",
        id="two-operators",
    ),
    pytest.param(
        set_when("cssrs_screener", {"field": "intent"}),
        "exactly one operator",
        id="no-operator",
    ),
    pytest.param(
        set_when("cssrs_screener", {"xor": [{"field": "intent", "eq": True}]}),
        "unknown operator 'xor'",
        id="bad-combinator",
    ),
    pytest.param(
        set_when("cssrs_screener", {"all": []}),
        "all: expected a non-empty list of conditions",
        id="empty-all",
    ),
    pytest.param(
        set_when("cssrs_screener", {"any": {"field": "intent", "eq": True}}),
        "any: expected a non-empty list",
        id="any-not-a-list",
    ),
    pytest.param(
        set_when("cssrs_screener", {"all": [{"field": "intent", "eq": True}], "any": []}),
        "expected exactly one of",
        id="two-combinators",
    ),
    pytest.param(set_when("cssrs_screener", {}), "non-empty object", id="empty-condition"),
    pytest.param(
        set_when("cssrs_screener", {"not": "intent"}), "must be a non-empty object", id="bad-not"
    ),
    pytest.param(
        set_when("cssrs_screener", {"field": "intent", "eq": "yes"}),
        "'yes' is not a possible value",
        id="wrong-value-type",
    ),
    pytest.param(
        set_when("cssrs_screener", {"field": "intent", "eq": 1}),
        "1 is not a possible value",
        id="int-for-bool",
    ),
    pytest.param(
        set_when("asq", {"field": "wished_dead", "in": [True, "refuse"]}),
        "'refuse' is not a possible value",
        id="misspelt-refused",
    ),
    pytest.param(
        set_when("asq", {"field": "wished_dead", "in": "refused"}),
        "'in' takes a non-empty list",
        id="in-not-a-list",
    ),
    pytest.param(
        set_when("cssrs_screener", {"field": "intent", "gte": 1}),
        "'gte' needs an integer field",
        id="numeric-op-on-bool",
    ),
    pytest.param(
        set_when("phq9", {"field": "items.8", "gte": 4}),
        "4 is not a possible value",
        id="operand-out-of-range",
    ),
    pytest.param(
        set_when("phq9", {"field": "items.8", "gte": True}),
        "True is not a possible value",
        id="bool-for-int",
    ),
    pytest.param(
        set_when("phq9", {"field": "phq9_total", "gt": 28}),
        "28 is not a possible value",
        id="total-out-of-range",
    ),
    pytest.param(
        set_when("cssrs_screener", {"field": "wish_dead", "missing": True}),
        "always answered",
        id="missing-on-required",
    ),
    pytest.param(
        set_when("cssrs_screener", {"field": "plan", "missing": "yes"}),
        "'missing' takes true or false",
        id="missing-not-bool",
    ),
    pytest.param(
        set_when("phq9", {"field": "depression_severity", "eq": "very severe"}),
        "'very severe' is not a possible value",
        id="unknown-band-label",
    ),
    pytest.param(
        lambda d: rule(d, "cssrs_screener").update(reasn="typo"),
        "reasn: Extra inputs are not permitted",
        id="misspelt-key",
    ),
    pytest.param(
        lambda d: rule(d, "asq").pop("source"),
        "rules.0.source: Field required",
        id="rule-without-source",
    ),
    pytest.param(
        lambda d: rule(d, "asq").update(reason=""),
        "rules.0.reason: String should have at least 1 character",
        id="empty-reason",
    ),
    pytest.param(
        lambda d: rule(d, "asq", 1).update(id=rule(d, "asq", 0)["id"]),
        "duplicate rule id(s): asq-acute-positive",
        id="duplicate-id",
    ),
    pytest.param(
        lambda d: rule(d, "phq9").update(reason="total {phq9_totl}"),
        "unknown placeholder 'phq9_totl'",
        id="unknown-placeholder",
    ),
    pytest.param(
        lambda d: rule(d, "cssrs_screener").update(reason="total {phq9_total}"),
        "unknown placeholder 'phq9_total'; known: none",
        id="placeholder-of-another-instrument",
    ),
    pytest.param(
        lambda d: d["instruments"]["phq9"].update(default_reason="severity {"),
        "malformed placeholder",
        id="malformed-placeholder",
    ),
    pytest.param(lambda d: d["instruments"].pop("asq"), "no rules for asq", id="missing-asq"),
    pytest.param(
        lambda d: d["instruments"].update(gad7=d["instruments"]["phq9"]),
        "instruments.gad7",
        id="unknown-instrument",
    ),
    pytest.param(
        lambda d: d["instruments"]["phq9"]["derived"]["phq9_total"].update(sum="item"),
        "cannot sum 'item'; known lists: items",
        id="sum-of-unknown-list",
    ),
    pytest.param(
        lambda d: d["instruments"]["phq9"]["derived"].update(items={"sum": "items", "source": "x"}),
        "'items' is already a field name",
        id="derived-shadows-field",
    ),
    pytest.param(
        lambda d: bands(d)[1].update(min=6),
        "without gap or overlap",
        id="band-gap",
    ),
    pytest.param(
        lambda d: bands(d)[1].update(min=4),
        "without gap or overlap",
        id="band-overlap",
    ),
    pytest.param(
        lambda d: bands(d)[-1].update(max=26),
        "bands must end at 27, not 26",
        id="bands-short",
    ),
    pytest.param(
        lambda d: d["instruments"]["phq9"]["classify"]["depression_severity"].update(
            field="wish_dead"
        ),
        "'wish_dead' is not an integer field",
        id="band-on-unknown-field",
    ),
    pytest.param(lambda d: levels(d).pop("low"), "responses.levels: missing low", id="no-low"),
    pytest.param(
        lambda d: levels(d)["high"].update(
            alert=False,
            urgency=None,
            ack_deadline_seconds=None,
            safety_plan=False,
            emergency_task=False,
        ),
        "responses.levels.high: alert must be true: the flagged levels are the highest ones,"
        " and moderate alerts",
        id="a-gap-in-the-flagged-levels",
    ),
    pytest.param(
        lambda d: levels(d)["imminent"].update(
            alert=False,
            urgency=None,
            ack_deadline_seconds=None,
            safety_plan=False,
            emergency_task=False,
        ),
        "responses.levels.imminent: alert must be true: imminent risk pages",
        id="imminent-without-alert",
    ),
    pytest.param(
        lambda d: levels(d)["high"].update(ack_deadline_seconds=None),
        "urgency and ack_deadline_seconds go with alert",
        id="alert-without-deadline",
    ),
    pytest.param(
        lambda d: levels(d)["high"].update(ack_deadline_seconds=0),
        "ack_deadline_seconds: Input should be greater than 0",
        id="zero-deadline",
    ),
    pytest.param(
        lambda d: levels(d)["high"].update(urgency="asap"),
        "urgency: Input should be 'urgent' or 'non-urgent'",
        id="unknown-urgency",
    ),
    pytest.param(
        lambda d: levels(d)["high"].update(ack_deadline_seconds="300"),
        "ack_deadline_seconds",
        id="deadline-as-string",
    ),
    pytest.param(
        lambda d: levels(d).update(severe=levels(d)["high"]),
        "responses.levels.severe",
        id="unknown-response-level",
    ),
    pytest.param(lambda d: d.update(version="a b"), "version", id="version-with-space"),
    pytest.param(lambda d: d.pop("version"), "version: Field required", id="no-version"),
]


@pytest.mark.parametrize(("mutate", "message"), BROKEN)
def test_broken_rule_file_fails_at_load(
    tmp_path: Path, bundled_doc: Doc, mutate: Callable[[Doc], None], message: str
) -> None:
    doc = copy.deepcopy(bundled_doc)
    mutate(doc)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(RuleSetError) as caught:
        load_ruleset(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("text", ["", "{", "[]", "not json"])
def test_non_json_rule_file_fails_at_load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RuleSetError, match="rule set"):
        load_ruleset(path)


def test_missing_rule_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_ruleset(tmp_path / "absent.json")


def write(tmp_path: Path, doc: Doc) -> Path:
    path = tmp_path / "clinic.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_deadlines_are_configuration(tmp_path: Path, bundled_doc: Doc) -> None:
    doc = copy.deepcopy(bundled_doc)
    doc["version"] = "clinic-x/2027-01-01.1"
    levels(doc)["imminent"]["ack_deadline_seconds"] = 60
    loaded = load_ruleset(write(tmp_path, doc))
    assert loaded.version == "clinic-x/2027-01-01.1"
    assert loaded.response_for(RiskLevel.IMMINENT).ack_deadline_seconds == 60


PHQ9_VECTOR = {"items": [2, 2, 2, 2, 1, 1, 2, 0, 0]}  # total 12, "moderate", item 9 = 0


@pytest.mark.parametrize(
    ("when", "matches"),
    [
        ({"field": "depression_severity", "eq": "moderate"}, True),
        ({"field": "depression_severity", "in": ["severe", "moderately severe"]}, False),
        ({"field": "phq9_total", "gte": 12}, True),
        ({"field": "phq9_total", "gt": 12}, False),
        ({"field": "phq9_total", "lte": 12}, True),
        ({"field": "phq9_total", "lt": 12}, False),
        ({"field": "items.0", "eq": 2}, True),
        ({"field": "items.0", "ne": 2}, False),
        ({"not": {"field": "items.8", "gte": 1}}, True),
        ({"all": [{"field": "items.0", "eq": 2}, {"field": "items.4", "eq": 1}]}, True),
        ({"all": [{"field": "items.0", "eq": 2}, {"field": "items.4", "eq": 2}]}, False),
        ({"any": [{"field": "items.0", "eq": 3}, {"field": "items.4", "eq": 1}]}, True),
        ({"any": [{"field": "items.0", "eq": 3}, {"field": "items.4", "eq": 2}]}, False),
    ],
)
def test_condition_language(
    tmp_path: Path, bundled_doc: Doc, when: dict[str, Any], matches: bool
) -> None:
    """A clinic may add its own rule in data; here: flag a PHQ-9 by any condition."""
    doc = copy.deepcopy(bundled_doc)
    doc["instruments"]["phq9"]["rules"].append(
        {"id": "clinic", "level": "low", "when": when, "reason": "clinic rule", "source": "test"}
    )
    result = load_ruleset(write(tmp_path, doc)).assess("phq9", PHQ9_VECTOR)
    assert (result.reasons == ("clinic rule",)) is matches
    assert result.level is (RiskLevel.LOW if matches else RiskLevel.NONE)


@pytest.mark.parametrize(
    ("when", "answers", "matches"),
    [
        ({"field": "thoughts_now", "missing": True}, asq(None), True),
        ({"field": "thoughts_now", "missing": True}, asq(False), False),
        ({"field": "thoughts_now", "missing": False}, asq(False), True),
        ({"field": "thoughts_now", "eq": False}, asq(None), False),
        ({"field": "thoughts_now", "ne": True}, asq(None), True),
        ({"field": "wished_dead", "eq": "refused"}, asq(wished_dead="refused"), True),
        ({"field": "wished_dead", "eq": True}, asq(wished_dead="refused"), False),
    ],
)
def test_condition_language_on_optional_and_refused(
    tmp_path: Path, bundled_doc: Doc, when: dict[str, Any], answers: Doc, matches: bool
) -> None:
    doc = copy.deepcopy(bundled_doc)
    doc["instruments"]["asq"]["rules"] = [
        {"id": "clinic", "level": "low", "when": when, "reason": "clinic rule", "source": "test"}
    ]
    result = load_ruleset(write(tmp_path, doc)).assess("asq", answers)
    assert (result.level is RiskLevel.LOW) is matches


def test_same_level_reasons_keep_file_order_and_higher_levels_come_first(
    tmp_path: Path, bundled_doc: Doc
) -> None:
    doc = copy.deepcopy(bundled_doc)
    always = {"field": "items.0", "gte": 0}
    doc["instruments"]["phq9"]["rules"] = [
        {"id": f"r{i}", "level": level, "when": always, "reason": f"r{i}", "source": "test"}
        for i, level in enumerate(["low", "high", "low", "high", "imminent"])
    ]
    result = load_ruleset(write(tmp_path, doc)).assess("phq9", PHQ9_VECTOR)
    assert result.level is RiskLevel.IMMINENT
    assert result.reasons == ("r4", "r1", "r3", "r0", "r2")


@pytest.mark.parametrize(
    ("level", "flagged"),
    [("none", False), ("low", False), ("moderate", True), ("high", True), ("imminent", True)],
)
def test_the_published_rule_set_flags_moderate_and_up(
    rules: RuleSet, level: str, flagged: bool
) -> None:
    """Which levels are flagged (an alert and a safety plan) is the rule set's to say."""
    assert rules.flagged(level) is flagged
    assert rules.flagged(RiskLevel(level)) is flagged


def test_flagged_rejects_an_unknown_level(rules: RuleSet) -> None:
    with pytest.raises(ValueError):
        rules.flagged("severe")


def test_a_rule_set_may_flag_from_high_up(tmp_path: Path, bundled_doc: Doc) -> None:
    """A clinic's rule set that flags only high and imminent: moderate then pages nobody."""
    doc = copy.deepcopy(bundled_doc)
    levels(doc)["moderate"].update(
        alert=False, urgency=None, ack_deadline_seconds=None, safety_plan=False
    )
    loaded = load_ruleset(write(tmp_path, doc))
    assert [lv for lv in RiskLevel if loaded.flagged(lv)] == [RiskLevel.HIGH, RiskLevel.IMMINENT]
