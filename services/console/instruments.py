"""The screening forms: each instrument's questions, in the API's field names, with the skip
logic the validation uses (`shared.instruments.ASKED_WHEN`, stated there once).

A question carries `shown_when`: the answers that make it asked, as the form's values. The
page's script hides a
question not asked (and disables its inputs, so the browser does not send it); without the
script every question is shown and `answers_from_form` drops the ones not asked, so the API gets
the same answers either way.

The texts are marked `N_` (kept in English here) and translated where they are shown: the
values, and so the answers posted, are the same in every language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.console.i18n import N_, _
from shared.instruments import ASKED_WHEN

#: The choices of a yes/no question; ASQ's Q1-Q4 also take "refused" (counted as a yes).
YES_NO = (("true", N_("Yes")), ("false", N_("No")))
YES_NO_REFUSED = (*YES_NO, ("refused", N_("Refused to answer")))
PHQ9_SCALE = (
    ("0", N_("Not at all")),
    ("1", N_("Several days")),
    ("2", N_("More than half the days")),
    ("3", N_("Nearly every day")),
)


@dataclass(frozen=True)
class Question:
    field: str
    text: str
    choices: tuple[tuple[str, str], ...] = YES_NO
    #: Asked only when one of these (field, value) answers was given; empty: always asked.
    shown_when: tuple[tuple[str, str], ...] = ()
    #: May be left unanswered even when asked.
    optional: bool = False


@dataclass(frozen=True)
class Instrument:
    key: str
    title: str
    intro: str
    questions: tuple[Question, ...] = field(default_factory=tuple)


def _shown_when(instrument: str, field: str) -> tuple[tuple[str, str], ...]:
    """The answers that ask `field`, as the form's values ("true", "refused")."""
    return tuple(
        (name, "true" if value is True else "false" if value is False else str(value))
        for name, value in ASKED_WHEN[instrument].get(field, ())
    )


INSTRUMENTS: dict[str, Instrument] = {
    "cssrs_screener": Instrument(
        "cssrs_screener",
        N_("C-SSRS Screener"),
        N_(
            "Columbia Suicide Severity Rating Scale, screener (recent). "
            "Questions 1-5 ask about the past month."
        ),
        (
            Question(
                "wish_dead",
                N_(
                    "1. Have you wished you were dead or wished you could go to sleep "
                    "and not wake up?"
                ),
            ),
            Question(
                "suicidal_thoughts",
                N_("2. Have you actually had any thoughts of killing yourself?"),
            ),
            Question(
                "method",
                N_("3. Have you been thinking about how you might do this?"),
                shown_when=_shown_when("cssrs_screener", "method"),
            ),
            Question(
                "intent",
                N_("4. Have you had these thoughts and had some intention of acting on them?"),
                shown_when=_shown_when("cssrs_screener", "intent"),
            ),
            Question(
                "plan",
                N_(
                    "5. Have you started to work out or worked out the details of how "
                    "to kill yourself? Do you intend to carry out this plan?"
                ),
                shown_when=_shown_when("cssrs_screener", "plan"),
            ),
            Question(
                "behavior",
                N_(
                    "6. Have you ever done anything, started to do anything, or "
                    "prepared to do anything to end your life?"
                ),
            ),
            Question(
                "behavior_past_3_months",
                N_("6b. Was this within the past 3 months?"),
                shown_when=_shown_when("cssrs_screener", "behavior_past_3_months"),
                optional=True,
            ),
        ),
    ),
    "asq": Instrument(
        "asq",
        N_("ASQ"),
        N_("NIMH Ask Suicide-Screening Questions (ages 8 and up)."),
        (
            Question(
                "wished_dead",
                N_("1. In the past few weeks, have you wished you were dead?"),
                YES_NO_REFUSED,
            ),
            Question(
                "better_off_dead",
                N_(
                    "2. In the past few weeks, have you felt that you or "
                    "your family would be better off if you were dead?"
                ),
                YES_NO_REFUSED,
            ),
            Question(
                "thoughts_past_week",
                N_("3. In the past week, have you been having thoughts about killing yourself?"),
                YES_NO_REFUSED,
            ),
            Question(
                "ever_attempted", N_("4. Have you ever tried to kill yourself?"), YES_NO_REFUSED
            ),
            Question(
                "thoughts_now",
                N_("5. Are you having thoughts of killing yourself right now?"),
                shown_when=_shown_when("asq", "thoughts_now"),
            ),
        ),
    ),
    "phq9": Instrument(
        "phq9",
        N_("PHQ-9"),
        N_(
            "Over the last 2 weeks, how often have you been bothered by any of the "
            "following problems?"
        ),
        tuple(
            Question(f"item_{n}", text, PHQ9_SCALE)
            for n, text in enumerate(
                (
                    N_("1. Little interest or pleasure in doing things"),
                    N_("2. Feeling down, depressed, or hopeless"),
                    N_("3. Trouble falling or staying asleep, or sleeping too much"),
                    N_("4. Feeling tired or having little energy"),
                    N_("5. Poor appetite or overeating"),
                    N_(
                        "6. Feeling bad about yourself, or that you are a failure or have let "
                        "yourself or your family down"
                    ),
                    N_(
                        "7. Trouble concentrating on things, such as reading the newspaper or "
                        "watching television"
                    ),
                    N_(
                        "8. Moving or speaking so slowly that other people could have noticed, or "
                        "the opposite: being so fidgety or restless that you have been moving "
                        "around a lot more than usual"
                    ),
                    N_("9. Thoughts that you would be better off dead, or of hurting yourself"),
                ),
                start=1,
            )
        ),
    ),
}


class FormProblem(ValueError):
    """A question asked and not answered: named, never echoing the input."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__("answer every question asked: " + ", ".join(fields))
        self.fields = fields


def asked(question: Question, form: Mapping[str, str]) -> bool:
    return not question.shown_when or any(form.get(f) == v for f, v in question.shown_when)


def _value(raw: str) -> Any:
    if raw in ("true", "false"):
        return raw == "true"
    if raw == "refused":
        return raw
    return int(raw)


def answers_from_form(instrument: Instrument, form: Mapping[str, str]) -> dict[str, Any]:
    """The API's `answers` from the form: questions not asked are left out, not sent."""
    answers: dict[str, Any] = {}
    missing = []
    for question in instrument.questions:
        if not asked(question, form):
            continue
        raw = form.get(question.field)
        if raw is None or raw == "":
            if not question.optional:
                missing.append(question.field)
            continue
        if raw not in {value for value, _ in question.choices}:
            missing.append(question.field)
            continue
        answers[question.field] = _value(raw)
    if missing:
        raise FormProblem(missing)
    if instrument.key == "phq9":
        return {"items": [answers[q.field] for q in instrument.questions]}
    return answers


def answered(instrument: Instrument | None, answers: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A screening's answers as (question, answer) lines for the case view."""
    if instrument is None:
        return [(name, str(value)) for name, value in answers.items()]
    if instrument.key == "phq9":
        items = list(answers.get("items") or [])
        scale = dict(PHQ9_SCALE)
        return [
            (_(q.text), f"{_(scale[str(v)]) if str(v) in scale else v} ({v})")
            for q, v in zip(instrument.questions, items, strict=False)
        ]
    lines = []
    for question in instrument.questions:
        value = answers.get(question.field)
        if value is None:
            continue
        labels = {v: label for v, label in question.choices}
        key = "true" if value is True else "false" if value is False else str(value)
        lines.append((_(question.text), _(labels[key]) if key in labels else key))
    return lines
