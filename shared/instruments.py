"""Screening instruments: risk levels, answer schemas, skip logic and LOINC codes.

Intake validates HTTP bodies with these models and risk parses events with the same ones, so a
screening that intake accepted is one that risk can assess. Field names and skip logic follow
docs/clinical-rules.md and the README; they are a public surface, change them only
through an issue.

Errors from :func:`parse_answers` never echo what was submitted (answers sit next to PHI): they
name our own field names and the allowed values, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, Self, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

# --- risk levels -------------------------------------------------------------------------------


class RiskLevel(StrEnum):
    """Risk levels, declared lowest to highest: the declaration order is the clinical order."""

    NONE = "none"
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"
    IMMINENT = "imminent"

    @property
    def rank(self) -> int:
        """Position in the clinical order (none = 0 ... imminent = 4).

        Use this to compare levels: the enum is a ``str``, so ``<`` would compare spellings.
        """
        return _LEVEL_ORDER.index(self)


_LEVEL_ORDER: Final[tuple[RiskLevel, ...]] = tuple(RiskLevel)


def max_level(*levels: RiskLevel | str) -> RiskLevel:
    """The most severe of ``levels``; ``none`` when given nothing (no finding is no risk level)."""
    return max(
        (RiskLevel(level) for level in levels), key=lambda lvl: lvl.rank, default=RiskLevel.NONE
    )


# --- LOINC codes (FHIR in and out) -------------------------------------------------------------

LOINC_SYSTEM: Final = "http://loinc.org"

PHQ9_PANEL_LOINC: Final = "44249-1"
#: Item codes in questionnaire order; index 8 is item 9 (thoughts of death or self-harm).
PHQ9_ITEM_LOINC: Final[tuple[str, ...]] = (
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
PHQ9_TOTAL_LOINC: Final = "44261-6"
#: The difficulty item is asked on the form but is not part of the total.
PHQ9_DIFFICULTY_LOINC: Final = "69722-7"
#: Answer code → item score.
PHQ9_ANSWER_LOINC: Final[Mapping[str, int]] = MappingProxyType(
    {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}
)
#: Item score → answer code.
PHQ9_ANSWER_CODE: Final[Mapping[int, str]] = MappingProxyType(
    {score: code for code, score in PHQ9_ANSWER_LOINC.items()}
)

CSSRS_PANEL_LOINC: Final = "93373-9"
#: Answer field → item code (C-SSRS screener, "recent" version).
CSSRS_ITEM_LOINC: Final[Mapping[str, str]] = MappingProxyType(
    {
        "wish_dead": "93246-7",
        "suicidal_thoughts": "93247-5",
        "method": "93248-3",
        "intent": "93249-1",
        "plan": "93250-9",
        "behavior": "93267-3",
        "behavior_past_3_months": "93269-9",
    }
)

RISK_LEVEL_LOINC: Final = "93374-7"
#: LOINC answers for "suicide risk level". LOINC has none for ``none`` or ``imminent``: FHIR
#: output needs a local code for imminent.
RISK_LEVEL_ANSWER_LOINC: Final[Mapping[RiskLevel, str]] = MappingProxyType(
    {
        RiskLevel.LOW: "LA9194-7",
        RiskLevel.MODERATE: "LA6751-7",
        RiskLevel.HIGH: "LA9193-9",
    }
)

# --- answer schemas ----------------------------------------------------------------------------

Instrument = Literal["cssrs_screener", "asq", "phq9"]
INSTRUMENTS: Final[tuple[str, ...]] = get_args(Instrument)

# --- skip logic --------------------------------------------------------------------------------

#: An earlier answer (field, value) that asks a follow-up question.
Trigger = tuple[str, bool | str]
_ASQ_POSITIVE: Final[tuple[Trigger, ...]] = tuple(
    (name, value)
    for name in ("wished_dead", "better_off_dead", "thoughts_past_week", "ever_attempted")
    for value in (True, "refused")
)
#: When a follow-up question is asked: any one of these earlier answers asks it (a question not
#: listed is always asked). The instruments' skip logic, stated once: the answer models below
#: enforce it, and the console's forms show and hide their questions by it.
ASKED_WHEN: Final[Mapping[str, Mapping[str, tuple[Trigger, ...]]]] = MappingProxyType(
    {
        "cssrs_screener": MappingProxyType(
            {
                "method": (("suicidal_thoughts", True),),
                "intent": (("suicidal_thoughts", True),),
                "plan": (("suicidal_thoughts", True),),
                "behavior_past_3_months": (("behavior", True),),
            }
        ),
        "asq": MappingProxyType({"thoughts_now": _ASQ_POSITIVE}),
        "phq9": MappingProxyType({}),
    }
)


def asked(instrument: str, field: str, answers: Mapping[str, Any]) -> bool:
    """Whether `field` of `instrument` is asked, given the earlier `answers` (a boolean answer
    matches only a boolean: 1 is not yes)."""
    triggers = ASKED_WHEN[instrument].get(field)
    return not triggers or any(
        type(answers.get(name)) is type(value) and answers.get(name) == value
        for name, value in triggers
    )


_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)


class CssrsAnswers(BaseModel):
    """C-SSRS screener (recent version): Q1-Q5 past month, Q6 lifetime with a 3-month follow-up.

    Skipped questions are ``None``. The skip logic is enforced here, not in the rules, because
    an inconsistent form is a bad request (422), not a clinical finding.
    """

    model_config = _MODEL_CONFIG

    wish_dead: StrictBool
    suicidal_thoughts: StrictBool
    method: StrictBool | None = None
    intent: StrictBool | None = None
    plan: StrictBool | None = None
    behavior: StrictBool
    behavior_past_3_months: StrictBool | None = None

    @model_validator(mode="after")
    def _check_skip_logic(self) -> CssrsAnswers:
        issues = _cssrs_skip_logic_issues(self)
        if issues:
            # A custom error (a ValueError) carries the fields so parse_answers can report them
            # one by one; the message alone already names them for direct callers.
            raise PydanticCustomError(
                "skip_logic",
                "; ".join(message for _, message in issues),
                {"issues": [{"fields": list(fields), "message": msg} for fields, msg in issues]},
            )
        return self


#: Q3-Q5: asked when Q2 (suicidal_thoughts) is yes, and then required.
_CSSRS_FOLLOW_UPS: Final = tuple(
    field
    for field, when in ASKED_WHEN["cssrs_screener"].items()
    if when[0][0] == "suicidal_thoughts"
)


def _cssrs_skip_logic_issues(a: CssrsAnswers) -> list[tuple[tuple[str, ...], str]]:
    """Every skip-logic problem as (fields, message); messages hold field names only."""
    issues: list[tuple[tuple[str, ...], str]] = []
    given = a.model_dump()
    if all(asked("cssrs_screener", f, given) for f in _CSSRS_FOLLOW_UPS):
        missing = tuple(f for f in _CSSRS_FOLLOW_UPS if getattr(a, f) is None)
        if missing:
            issues.append(
                (
                    missing,
                    f"missing answers: {', '.join(missing)} "
                    "(required when suicidal_thoughts is yes)",
                )
            )
    else:
        conflicting = tuple(f for f in _CSSRS_FOLLOW_UPS if getattr(a, f) is True)
        if conflicting:
            issues.append(
                (
                    conflicting,
                    f"skip-logic conflict: {', '.join(conflicting)} answered yes "
                    "while suicidal_thoughts is no",
                )
            )
    # Q6 yes with no follow-up is allowed (unknown recency, assessed as recent); a follow-up
    # to a "no" means the form was filled in wrongly, whatever its value.
    if (
        not asked("cssrs_screener", "behavior_past_3_months", given)
        and a.behavior_past_3_months is not None
    ):
        issues.append(
            (
                ("behavior_past_3_months",),
                "skip-logic conflict: behavior_past_3_months answered while behavior is no",
            )
        )
    return issues


def _strict_asq_answer(value: Any) -> Any:
    """Reject 1, 0, "true", "yes": a lax ``Literal[True]`` would accept ``1``."""
    if type(value) is bool or value == "refused":
        return value
    raise PydanticCustomError("literal_error", "Input should be true, false or 'refused'")


#: ASQ Q1-Q4 answer; the rule set counts "refused" as a yes.
AsqAnswer = Annotated[Literal[True, False, "refused"], BeforeValidator(_strict_asq_answer)]


class AsqAnswers(BaseModel):
    """NIMH ASQ. Q5 (``thoughts_now``) is only asked after a positive Q1-Q4, so it may be null."""

    model_config = _MODEL_CONFIG

    wished_dead: AsqAnswer
    better_off_dead: AsqAnswer
    thoughts_past_week: AsqAnswer
    ever_attempted: AsqAnswer
    thoughts_now: StrictBool | None = None


PHQ9_ITEM_COUNT: Final = 9
PHQ9_ITEM_MAX: Final = 3

#: One PHQ-9 item score: 0 not at all ... 3 nearly every day. Bools and strings are rejected.
Phq9Item = Annotated[StrictInt, Field(ge=0, le=PHQ9_ITEM_MAX)]


def _nine_items(value: Any) -> Any:
    """Check the count before the items: otherwise one bad item also reads as "too few items"."""
    if isinstance(value, list | tuple) and len(value) != PHQ9_ITEM_COUNT:
        raise PydanticCustomError(
            "item_count", "expected {expected} items", {"expected": PHQ9_ITEM_COUNT}
        )
    return value


class Phq9Answers(BaseModel):
    """PHQ-9: the nine item scores in questionnaire order (``items[8]`` is item 9)."""

    model_config = _MODEL_CONFIG

    items: Annotated[
        tuple[
            Phq9Item, Phq9Item, Phq9Item, Phq9Item, Phq9Item, Phq9Item, Phq9Item, Phq9Item, Phq9Item
        ],
        BeforeValidator(_nine_items),
    ]


Answers = CssrsAnswers | AsqAnswers | Phq9Answers

ANSWER_MODELS: Final[Mapping[str, type[CssrsAnswers | AsqAnswers | Phq9Answers]]] = (
    MappingProxyType({"cssrs_screener": CssrsAnswers, "asq": AsqAnswers, "phq9": Phq9Answers})
)

# --- parsing -----------------------------------------------------------------------------------


class InvalidAnswers(ValidationError):
    """Answers that do not fit the instrument: intake answers 422, risk dead-letters the event.

    A ``pydantic.ValidationError`` (so also a ``ValueError``) whose errors are sanitised: every
    ``input`` is ``None`` and hidden from ``str()``, and messages name only our field names and
    allowed values. ``loc`` is ``()`` for the answers object as a whole (e.g. unexpected
    fields), ``("instrument",)``, ``(field,)``, or ``("items", i)`` (0-based) for one PHQ-9
    item. A skip-logic issue gives one error per field involved, each with the same message.

    ``problems`` is the same as a list of ``{"field": ..., "problem": ...}``, with ``field``
    ``"answers"``, ``"instrument"``, a field name or ``"items.<i>"``.
    """

    @classmethod
    def from_problems(cls, problems: list[tuple[tuple[str | int, ...], str, str]]) -> Self:
        """Build from (loc, error type, message) triples that are already safe to show."""
        return cls.from_exception_data(
            "answers",
            [
                {"type": PydanticCustomError(kind, message), "loc": loc, "input": None}
                for loc, kind, message in problems
            ],
            hide_input=True,
        )

    @property
    def problems(self) -> list[dict[str, str]]:
        return [
            {"field": ".".join(str(part) for part in e["loc"]) or "answers", "problem": e["msg"]}
            for e in self.errors(include_url=False)
        ]


def parse_answers(instrument: str, answers: Any) -> Answers:
    """Validate ``answers`` for ``instrument``; raise :class:`InvalidAnswers` if they do not fit.

    An already-parsed model of the right instrument is returned as it is.
    """
    model = ANSWER_MODELS.get(instrument) if isinstance(instrument, str) else None
    if model is None:
        allowed = ", ".join(INSTRUMENTS)
        raise InvalidAnswers.from_problems(
            [(("instrument",), "unknown_instrument", f"unknown instrument; allowed: {allowed}")]
        )
    try:
        return model.model_validate(answers)
    except ValidationError as exc:
        # ``from None``: the pydantic error holds the raw input, which must not reach a log.
        raise InvalidAnswers.from_problems(_problems(exc, model)) from None


def _problems(
    exc: ValidationError, model: type[BaseModel]
) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Re-state pydantic errors without the submitted input or unknown keys."""
    problems: list[tuple[tuple[str | int, ...], str, str]] = []
    extra = False
    for err in exc.errors(include_url=False, include_input=False, include_context=True):
        kind, loc = err["type"], err["loc"]
        if kind == "skip_logic":
            for issue in err["ctx"]["issues"]:
                problems.extend(((f,), kind, issue["message"]) for f in issue["fields"])
        elif kind == "extra_forbidden":
            extra = True  # the unknown key is free text: say "unexpected", not which one
        elif kind in {"model_type", "model_attributes_type", "dict_type"}:
            problems.append(((), kind, "must be an object of answers"))
        elif not loc or loc[0] not in model.model_fields:
            problems.append(((), kind, err["msg"]))
        else:
            problems.append((loc, kind, err["msg"]))
    if extra:
        allowed = ", ".join(model.model_fields)
        problems.append(((), "extra_forbidden", f"unexpected field(s); allowed fields: {allowed}"))
    return problems
