"""The clinical rule set: versioned data, and the one small evaluator that applies it.

The rules live in ``rulesets/<version>.json`` so that a clinic can review and change them without
touching Python, and so that every assessment can name the exact rules it used
(``RuleSet.version``). The file is checked completely when it is loaded: a typo in a field name,
an unknown level or a bad operator stops the service at start, never halfway through assessing
someone in crisis.

Condition language (one JSON object per condition)::

    {"all": [cond, ...]}    {"any": [cond, ...]}    {"not": cond}
    {"field": "<path>", "<op>": <value>}

``<op>`` is one of ``eq``, ``ne``, ``in`` (a list), ``gte``, ``gt``, ``lte``, ``lt`` (integer
fields only) or ``missing`` (``true``/``false``, optional fields only). ``<path>`` is an answer
field (``intent``), one element of a fixed-length list (``items.8``), or a name defined by the
instrument's ``derived`` (``{"sum": "items"}``) or ``classify`` (bands over an integer field)
sections. Values are compared by type as well as value, so ``true`` never equals ``1``.
Reasons may use ``{name}`` placeholders for derived and classified values.
"""

from __future__ import annotations

import copy
import json
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from shared.instruments import (
    ANSWER_MODELS,
    INSTRUMENTS,
    AsqAnswers,
    CssrsAnswers,
    Instrument,
    Phq9Answers,
    RiskLevel,
    max_level,
    parse_answers,
)

RULESETS_DIR: Final = Path(__file__).parent / "rulesets"
#: The bundled rule set used when no path is given. A new version is a new file, never an edit.
CURRENT_RULESET: Final = "2026-11-27.1"


class RuleSetError(ValueError):
    """A rule-set file that cannot be used; the message names the file and the place in it."""


@dataclass(frozen=True)
class RiskResult:
    """One assessment: the level, why (most severe first), and instrument scores."""

    level: RiskLevel
    reasons: tuple[str, ...]
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class LevelResponse:
    """What an assessed level starts; the numbers are clinic configuration from the rule set."""

    alert: bool
    urgency: str | None
    safety_plan: bool
    emergency_task: bool
    ack_deadline_seconds: int | None


# --- the file format ---------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


_Text = Annotated[str, Field(min_length=1)]


class _RuleSpec(_Spec):
    id: _Text
    level: RiskLevel
    when: dict[str, Any]
    reason: _Text
    source: _Text


class _OverrideSpec(_Spec):
    id: _Text
    reason: _Text
    source: _Text


class _DerivedSpec(_Spec):
    sum: _Text
    source: _Text


class _BandSpec(_Spec):
    min: int
    max: int
    label: _Text


class _ClassifySpec(_Spec):
    field: _Text
    source: _Text
    bands: Annotated[list[_BandSpec], Field(min_length=1)]


class _InstrumentSpec(_Spec):
    default_reason: _Text
    source: _Text
    derived: dict[str, _DerivedSpec] = {}
    classify: dict[str, _ClassifySpec] = {}
    rules: list[_RuleSpec]


class _ResponseSpec(_Spec):
    alert: bool
    urgency: Literal["urgent", "non-urgent"] | None
    safety_plan: bool
    emergency_task: bool
    ack_deadline_seconds: Annotated[int, Field(gt=0)] | None


class _ResponsesSpec(_Spec):
    source: _Text
    levels: dict[RiskLevel, _ResponseSpec]


class _RuleSetSpec(_Spec):
    version: Annotated[str, Field(pattern=r"^\S+$")]
    description: str = ""
    imminent_danger: _OverrideSpec
    instruments: dict[Instrument, _InstrumentSpec]
    responses: _ResponsesSpec


# --- addressable fields ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """What a condition may say about one path: allowed values, and bounds if it is an integer."""

    adapter: TypeAdapter[Any]
    bounds: tuple[int, int] | None = None

    def accepts(self, value: Any) -> bool:
        try:
            self.adapter.validate_python(value, strict=True)
        except ValidationError:
            return False
        return True


def _int_bounds(tp: Any) -> tuple[int, int] | None:
    """(ge, le) of an ``Annotated[int, ...]`` type; None for anything else."""
    if get_origin(tp) is not Annotated or get_args(tp)[0] is not int:
        return None
    found: dict[str, Any] = {}
    for meta in get_args(tp)[1:]:
        for item in meta.metadata if isinstance(meta, FieldInfo) else [meta]:
            if isinstance(item, annotated_types.Ge):
                found["ge"] = item.ge
            elif isinstance(item, annotated_types.Le):
                found["le"] = item.le
    return (found["ge"], found["le"]) if {"ge", "le"} <= found.keys() else None


def _answer_fields(
    model: type[BaseModel],
) -> tuple[dict[str, _Field], dict[str, tuple[int, int]]]:
    """(scalar paths usable in conditions, fixed-length integer lists with their sum's bounds)."""
    scalars: dict[str, _Field] = {}
    sequences: dict[str, tuple[int, int]] = {}
    for name, info in model.model_fields.items():
        if get_origin(info.annotation) is not tuple:
            scalars[name] = _Field(TypeAdapter(info.rebuild_annotation()))
            continue
        elements = get_args(info.annotation)
        bounds = _int_bounds(elements[0])
        if Ellipsis in elements or len(set(elements)) != 1 or bounds is None:
            continue  # only fixed-length lists of bounded integers are addressable
        element, length = elements[0], len(elements)
        for i in range(length):
            scalars[f"{name}.{i}"] = _Field(TypeAdapter(element), bounds)
        lo, hi = bounds
        sequences[name] = (lo * length, hi * length)
    return scalars, sequences


# --- conditions --------------------------------------------------------------------------------

Predicate = Callable[[Mapping[str, Any]], bool]


def _same(value: Any, operand: Any) -> bool:
    return type(value) is type(operand) and value == operand


_COMPARE: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "eq": _same,
    "ne": lambda v, o: not _same(v, o),
    "in": lambda v, o: any(_same(v, x) for x in o),
    "gte": lambda v, o: v is not None and v >= o,
    "gt": lambda v, o: v is not None and v > o,
    "lte": lambda v, o: v is not None and v <= o,
    "lt": lambda v, o: v is not None and v < o,
    "missing": lambda v, o: (v is None) is o,
}
_NUMERIC: Final = frozenset({"gte", "gt", "lte", "lt"})
_OPERATORS: Final = "all, any, not, or field with one of " + ", ".join(_COMPARE)


def _compile(node: Any, fields: Mapping[str, _Field], where: str) -> Predicate:
    """Turn one JSON condition into a predicate, rejecting anything that could never work."""
    if not isinstance(node, dict) or not node:
        raise RuleSetError(f"{where}: a condition must be a non-empty object")
    if "field" not in node:
        if len(node) != 1:
            raise RuleSetError(f"{where}: expected exactly one of {_OPERATORS}")
        ((op, arg),) = node.items()
        if op in ("all", "any"):
            if not isinstance(arg, list) or not arg:
                raise RuleSetError(f"{where}.{op}: expected a non-empty list of conditions")
            parts = tuple(_compile(c, fields, f"{where}.{op}.{i}") for i, c in enumerate(arg))
            combine = all if op == "all" else any
            return lambda values: combine(p(values) for p in parts)
        if op == "not":
            inner = _compile(arg, fields, f"{where}.not")
            return lambda values: not inner(values)
        raise RuleSetError(f"{where}: unknown operator {op!r}; expected {_OPERATORS}")

    path = node["field"]
    ops = [key for key in node if key != "field"]
    if len(ops) != 1 or ops[0] not in _COMPARE:
        raise RuleSetError(
            f"{where}: a field test takes exactly one operator out of {', '.join(_COMPARE)}; "
            f"got {', '.join(map(repr, ops)) or 'none'}"
        )
    op = ops[0]
    spec = fields.get(path) if isinstance(path, str) else None
    if spec is None:
        raise RuleSetError(f"{where}: unknown field {path!r}; known: {', '.join(fields)}")
    operand = _check_operand(op, node[op], spec, f"{where} ({path})")
    compare = _COMPARE[op]
    return lambda values: compare(values.get(path), operand)


def _check_operand(op: str, operand: Any, spec: _Field, where: str) -> Any:
    if op == "missing":
        if type(operand) is not bool:
            raise RuleSetError(f"{where}: 'missing' takes true or false")
        if not spec.accepts(None):
            raise RuleSetError(f"{where}: the field is always answered; 'missing' is meaningless")
        return operand
    if op in _NUMERIC and spec.bounds is None:
        raise RuleSetError(f"{where}: {op!r} needs an integer field")
    if op == "in":
        if not isinstance(operand, list) or not operand:
            raise RuleSetError(f"{where}: 'in' takes a non-empty list")
        operand = tuple(operand)
    for value in operand if op == "in" else (operand,):
        if not spec.accepts(value):
            raise RuleSetError(f"{where}: {value!r} is not a possible value of the field")
    return operand


def _check_template(text: str, names: Mapping[str, object], where: str) -> None:
    """Placeholders must name a derived or classified value, or formatting would fail later."""
    try:
        used = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise RuleSetError(f"{where}: malformed placeholder ({exc})") from None
    unknown = [name for name in used if name not in names]
    if unknown:
        raise RuleSetError(
            f"{where}: unknown placeholder {unknown[0]!r}; known: {', '.join(names) or 'none'}"
        )


# --- the evaluator -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    id: str
    level: RiskLevel
    when: Predicate
    reason: str


@dataclass(frozen=True)
class _Classification:
    name: str
    field: str
    bands: tuple[_BandSpec, ...]

    def label(self, value: int) -> str:
        return next(b.label for b in self.bands if b.min <= value <= b.max)


@dataclass(frozen=True)
class _InstrumentRules:
    rules: tuple[_Rule, ...]
    default_reason: str
    sums: tuple[tuple[str, str], ...]  # (name, list field)
    classifications: tuple[_Classification, ...]

    def evaluate(self, answers: BaseModel) -> RiskResult:
        values: dict[str, Any] = {}
        for name in type(answers).model_fields:
            value = getattr(answers, name)
            values[name] = value
            if isinstance(value, tuple):
                values.update((f"{name}.{i}", v) for i, v in enumerate(value))
        details: dict[str, Any] = {}
        for name, source in self.sums:
            details[name] = values[name] = sum(values[source])
        for c in self.classifications:
            details[c.name] = values[c.name] = c.label(values[c.field])
        # sorted() is stable: same-level reasons keep the order of the file.
        matched = sorted((r for r in self.rules if r.when(values)), key=lambda r: -r.level.rank)
        reasons = [r.reason for r in matched] or [self.default_reason]
        return RiskResult(
            level=max_level(*(r.level for r in matched)),
            reasons=tuple(reason.format_map(details) for reason in reasons),
            details=details,
        )


class RuleSet:
    """A loaded, validated rule set. Build it with :func:`load_ruleset`."""

    def __init__(
        self,
        *,
        version: str,
        content: Mapping[str, Any],
        instruments: Mapping[str, _InstrumentRules],
        imminent_danger_reason: str,
        responses: Mapping[RiskLevel, LevelResponse],
    ) -> None:
        self.version = version
        self._content = copy.deepcopy(dict(content))
        self._instruments = dict(instruments)
        self._imminent_danger_reason = imminent_danger_reason
        self._responses = dict(responses)

    def __repr__(self) -> str:
        return f"RuleSet(version={self.version!r})"

    @property
    def content(self) -> dict[str, Any]:
        """The rule-set document as loaded (a copy).

        Stored under its version next to the assessments, so any assessment can be re-derived.
        """
        return copy.deepcopy(self._content)

    def assess(
        self,
        instrument: str,
        answers: CssrsAnswers | AsqAnswers | Phq9Answers | Mapping[str, Any],
        *,
        imminent_danger: bool = False,
    ) -> RiskResult:
        """Assess one screening; raises ``InvalidAnswers`` for answers that do not fit.

        Staff judgement of imminent danger can only raise the level: the instrument's own
        reasons are kept after the staff reason, so the record shows both.
        """
        parsed = parse_answers(instrument, answers)
        result = self._instruments[instrument].evaluate(parsed)
        if not imminent_danger:
            return result
        return RiskResult(
            level=RiskLevel.IMMINENT,
            reasons=(self._imminent_danger_reason, *result.reasons),
            details=result.details,
        )

    def response_for(self, level: RiskLevel | str) -> LevelResponse:
        """What ``level`` starts: alert, urgency, safety plan, emergency task, ack deadline."""
        return self._responses[RiskLevel(level)]

    def flagged(self, level: RiskLevel | str) -> bool:
        """Whether an assessment at ``level`` is flagged: it alerts the on-call clinician (and
        intake opens its safety plan). The rule set's response table says which levels are
        (moderate and above in the published set); an unknown spelling raises ``ValueError``."""
        return self.response_for(level).alert


def load_ruleset(path: Path | None = None) -> RuleSet:
    """Load and fully validate a rule set; ``None`` loads the bundled current version.

    Raises :class:`RuleSetError` for a file that is not valid JSON or breaks the format, and
    ``OSError`` if it cannot be read.
    """
    source = path if path is not None else RULESETS_DIR / f"{CURRENT_RULESET}.json"
    text = source.read_text(encoding="utf-8")
    try:
        spec = _RuleSetSpec.model_validate_json(text)
        return _build(spec, content=json.loads(text))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise RuleSetError(f"rule set {source}: {problems}") from None
    except RuleSetError as exc:
        raise RuleSetError(f"rule set {source}: {exc}") from None


def _build(spec: _RuleSetSpec, *, content: Mapping[str, Any]) -> RuleSet:
    missing = [name for name in INSTRUMENTS if name not in spec.instruments]
    if missing:
        raise RuleSetError(f"instruments: no rules for {', '.join(missing)}")
    ids = [spec.imminent_danger.id] + [
        rule.id for instrument in spec.instruments.values() for rule in instrument.rules
    ]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuleSetError(f"duplicate rule id(s): {', '.join(duplicates)}")
    return RuleSet(
        version=spec.version,
        content=content,
        instruments={
            name: _build_instrument(name, instrument)
            for name, instrument in spec.instruments.items()
        },
        imminent_danger_reason=spec.imminent_danger.reason,
        responses=_build_responses(spec.responses),
    )


def _build_instrument(name: str, spec: _InstrumentSpec) -> _InstrumentRules:
    where = f"instruments.{name}"
    fields, sequences = _answer_fields(ANSWER_MODELS[name])
    details: dict[str, None] = {}

    def define(key: str, kind: _Field, place: str) -> None:
        if key in fields or key in sequences:
            raise RuleSetError(f"{place}: {key!r} is already a field name")
        fields[key] = kind
        details[key] = None

    sums: list[tuple[str, str]] = []
    for key, derived in spec.derived.items():
        place = f"{where}.derived.{key}"
        total = sequences.get(derived.sum)
        if total is None:
            raise RuleSetError(
                f"{place}: cannot sum {derived.sum!r}; "
                f"known lists: {', '.join(sequences) or 'none'}"
            )
        lo, hi = total
        define(key, _Field(TypeAdapter(Annotated[StrictInt, Field(ge=lo, le=hi)]), (lo, hi)), place)
        sums.append((key, derived.sum))

    classifications: list[_Classification] = []
    for key, classify in spec.classify.items():
        place = f"{where}.classify.{key}"
        target = fields.get(classify.field)
        if target is None or target.bounds is None:
            raise RuleSetError(f"{place}: {classify.field!r} is not an integer field")
        _check_bands(classify.bands, target.bounds, place)
        labels = tuple(band.label for band in classify.bands)
        define(key, _Field(TypeAdapter(Literal[labels])), place)  # type: ignore[arg-type]
        classifications.append(_Classification(key, classify.field, tuple(classify.bands)))

    _check_template(spec.default_reason, details, f"{where}.default_reason")
    rules = []
    for i, rule in enumerate(spec.rules):
        place = f"{where}.rules.{i} ({rule.id})"
        _check_template(rule.reason, details, f"{place}.reason")
        rules.append(
            _Rule(rule.id, rule.level, _compile(rule.when, fields, f"{place}.when"), rule.reason)
        )
    return _InstrumentRules(tuple(rules), spec.default_reason, tuple(sums), tuple(classifications))


def _check_bands(bands: list[_BandSpec], bounds: tuple[int, int], where: str) -> None:
    """Bands must cover every possible value exactly once, so every score gets one label."""
    expected = bounds[0]
    for band in sorted(bands, key=lambda b: b.min):
        if band.min != expected or band.max < band.min:
            raise RuleSetError(
                f"{where}: bands must run from {bounds[0]} without gap or overlap, "
                f"each with min <= max (band at {band.min})"
            )
        expected = band.max + 1
    if expected != bounds[1] + 1:
        raise RuleSetError(f"{where}: bands must end at {bounds[1]}, not {expected - 1}")


def _rank(level: RiskLevel) -> int:
    return level.rank


def _build_responses(spec: _ResponsesSpec) -> dict[RiskLevel, LevelResponse]:
    missing = [level for level in RiskLevel if level not in spec.levels]
    if missing:
        raise RuleSetError(f"responses.levels: missing {', '.join(missing)}")
    if not spec.levels[RiskLevel.IMMINENT].alert:
        raise RuleSetError("responses.levels.imminent: alert must be true: imminent risk pages")
    lowest = min((RiskLevel(lv) for lv, r in spec.levels.items() if r.alert), key=_rank)
    for level in RiskLevel:
        if level.rank > lowest.rank and not spec.levels[level].alert:
            raise RuleSetError(
                f"responses.levels.{level}: alert must be true: the flagged levels are the "
                f"highest ones, and {lowest} alerts"
            )
    responses = {}
    for level, r in spec.levels.items():
        where = f"responses.levels.{level}"
        if (r.urgency is not None, r.ack_deadline_seconds is not None) != (r.alert, r.alert):
            raise RuleSetError(f"{where}: urgency and ack_deadline_seconds go with alert, only")
        if r.emergency_task and not r.alert:
            raise RuleSetError(f"{where}: an emergency task needs an alert")
        responses[level] = LevelResponse(
            r.alert, r.urgency, r.safety_plan, r.emergency_task, r.ack_deadline_seconds
        )
    return responses
