"""Segments: ``segments/*.yaml`` files, each a name and an expression over a contact's facts.

    name: recent_buyers_7d
    description: Placed an order in the last 7 days
    expression: ordered(7) > 0

The expression language is the workflows' (``workflows.expressions``); the names it sees are
``domain.segments.behaviour_names``. Loading checks every file and reports all problems with
file and line: YAML, unknown keys, a name that is not an identifier or is used twice, an
expression that does not compile, uses a name segments do not have, or gives a window that is
not a constant number of days up to ``MAX_WINDOW``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from jinja2 import nodes
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from remarket_mailer.domain.segments import (
    SEGMENT_NAMES,
    WINDOW_FUNCTIONS,
    ContactBehaviour,
    EngagementFact,
    OrderFact,
    ViewFact,
    behaviour_names,
    window,
)
from remarket_mailer.domain.workflow import Workflow
from remarket_mailer.errors import ValidationError, WorkflowError
from remarket_mailer.workflows.expressions import compile_expression, evaluate, parse_expression

SEGMENT_FUNCTION = "in_segment"
"""What workflow expressions call to ask whether the contact is in a segment."""


class SegmentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    description: str = ""
    expression: str = Field(min_length=1, max_length=2000)


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    expression: str
    description: str = ""
    source: str = "<segment>"
    needs_categories: bool = False
    """It asks ``viewed``/``bought`` for a category: the catalog's categories are read."""

    @property
    def version(self) -> str:
        """Changes when the expression does: stored memberships of another version are
        stale until the next full refresh."""
        return hashlib.sha256(self.expression.encode()).hexdigest()[:16]


@dataclass
class SegmentSet:
    segments: dict[str, Segment] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.segments)

    def names(self) -> list[str]:
        return sorted(self.segments)


def evaluate_segment(segment: Segment, facts: ContactBehaviour, now: datetime) -> bool:
    """Whether the contact is in ``segment`` at ``now``. Raises ValidationError when the
    expression fails for these facts."""
    return evaluate(segment.expression, behaviour_names(facts, now))


def members_of(
    segments: Iterable[Segment], facts: Iterable[ContactBehaviour], now: datetime
) -> tuple[dict[str, set[int]], list[str]]:
    """segment name → the contacts of ``facts`` in it, and one line per failed evaluation (a
    contact whose evaluation fails is not a member)."""
    chosen = list(segments)
    found: dict[str, set[int]] = {s.name: set() for s in chosen}
    errors: list[str] = []
    for contact in facts:
        names = behaviour_names(contact, now)
        for segment in chosen:
            try:
                if evaluate(segment.expression, names):
                    found[segment.name].add(contact.contact_id)
            except ValidationError as exc:
                errors.append(f"segment={segment.name} contact={contact.contact_id}: {exc}")
    return found, errors


# -- checking ----------------------------------------------------------------------------------


def _calls(tree: nodes.Node) -> list[nodes.Call]:
    """Every call in ``tree``, ``tree`` itself included (``find_all`` skips the root)."""
    return [n for n in (tree, *tree.find_all(nodes.Call)) if isinstance(n, nodes.Call)]


def _names(tree: nodes.Node) -> set[str]:
    found = (tree, *tree.find_all(nodes.Name))
    return {n.name for n in found if isinstance(n, nodes.Name) and n.ctx == "load"}


_SAMPLE_NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
_SAMPLES = (
    ContactBehaviour(1, {"email": None, "attributes": {}, "is_customer": False}),
    ContactBehaviour(
        2,
        {
            "email": "ann@example.org",
            "first_name": "Ann",
            "last_name": "Lee",
            "locale": "nl",
            "timezone": "Europe/Amsterdam",
            "attributes": {},
            "is_customer": True,
        },
        orders=(OrderFact(_SAMPLE_NOW - timedelta(days=3), Decimal("74.50"), ("p1",), ("mugs",)),),
        views=(ViewFact(_SAMPLE_NOW - timedelta(days=1), "p2", "mugs"),),
        engagement=(EngagementFact("clicked", _SAMPLE_NOW - timedelta(days=2)),),
        consents={"marketing": "granted", "ads": "withdrawn"},
    ),
)


def expression_problems(expression: str) -> list[str]:
    """What is wrong with a segment expression (empty: nothing)."""
    try:
        compile_expression(expression)
        tree = parse_expression(expression)
    except ValidationError as exc:
        return [str(exc)]
    problems: list[str] = []
    for name in sorted(_names(tree)):
        if name not in SEGMENT_NAMES:
            known = ", ".join(sorted(SEGMENT_NAMES))
            problems.append(f"unknown name {name!r} (segments know: {known})")
    for call in _calls(tree):
        if isinstance(call.node, nodes.Name) and call.node.name in WINDOW_FUNCTIONS:
            problems.extend(_window_problem(call.node.name, call.args))
    if problems:
        return problems
    for sample in _SAMPLES:  # names and windows are right: what is left fails on any contact
        try:
            evaluate(expression, behaviour_names(sample, _SAMPLE_NOW))
        except ValidationError as exc:
            return [str(exc)]
    return []


def _window_problem(function: str, args: list[nodes.Expr]) -> list[str]:
    if not args or not isinstance(args[0], nodes.Const):
        return [f"{function}(...) needs a window as its first argument, e.g. {function}(30)"]
    try:
        window(args[0].value)
    except ValueError as exc:
        return [f"{function}({args[0].value!r}): {exc}"]
    return []


def check_segment(source: str, file: str = "<segment>") -> tuple[Segment | None, list[str]]:
    """The segment of one file's text and its problems, each ``file:line: message``."""
    try:
        node = yaml.compose(source)
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        return None, [f"{file}:{line}: YAML syntax error: {getattr(exc, 'problem', exc)}"]
    if not isinstance(data, dict):
        return None, [f"{file}:1: a segment file is a mapping with name and expression"]
    try:
        spec = SegmentSpec.model_validate(data)
    except PydanticValidationError as exc:
        return None, [
            f"{file}:{_line(node, str(error['loc'][0]) if error['loc'] else '')}: "
            f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        ]
    problems = expression_problems(spec.expression)
    if problems:
        line = _line(node, "expression")
        return None, [f"{file}:{line}: expression: {p}" for p in problems]
    categories = _asks_categories(spec.expression)
    return Segment(spec.name, spec.expression, spec.description, file, categories), []


def _asks_categories(expression: str) -> bool:
    return any(
        isinstance(call.node, nodes.Name)
        and call.node.name in ("viewed", "bought")
        and (len(call.args) >= 3 or any(k.key == "category" for k in call.kwargs))
        for call in _calls(parse_expression(expression))
    )


def _line(node: yaml.Node | None, key: str) -> int:
    if isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if k.value == key:
                return int(k.start_mark.line) + 1
    return 1


def load_segments(directory: Path) -> SegmentSet:
    """Every ``*.yaml``/``*.yml`` segment of ``directory`` (none when it does not exist).

    Raises WorkflowError listing every problem found."""
    result = SegmentSet()
    if not directory.is_dir():
        return result
    problems: list[str] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        segment, found = check_segment(path.read_text(encoding="utf-8"), str(path))
        problems.extend(found)
        if segment is None:
            continue
        if segment.name in result.segments:
            other = result.segments[segment.name].source
            problems.append(f"{path}:1: segment name {segment.name!r} is also used by {other}")
            continue
        result.segments[segment.name] = segment
    if problems:
        raise WorkflowError(f"{len(problems)} problem(s) in segments:\n" + "\n".join(problems))
    return result


def segments_used(workflow: Workflow) -> dict[str, set[str]]:
    """segment name → where ``workflow`` uses it (``trigger.filter``, ``exit``, a step)."""
    used: dict[str, set[str]] = {}
    expressions = [("trigger.filter", workflow.trigger.filter)]
    expressions += [(f"exit.{r.event or 'segment'}.condition", r.condition) for r in workflow.exits]
    expressions += [(f"steps.{s.id}.condition", s.condition) for s in workflow.steps]
    for where, source in expressions:
        if source is None:
            continue
        for call in _calls(parse_expression(source)):
            if isinstance(call.node, nodes.Name) and call.node.name == SEGMENT_FUNCTION:
                first = call.args[0] if call.args else None
                name = first.value if isinstance(first, nodes.Const) else None
                used.setdefault(str(name), set()).add(where)
    for rule in workflow.exits:
        if rule.segment is not None:
            used.setdefault(rule.segment, set()).add("exit.segment")
    return used


def check_references(workflows: Mapping[str, Workflow], segments: SegmentSet) -> list[str]:
    """One line per workflow use of a segment that does not exist (or is not named by a
    constant string, which could not be checked)."""
    problems: list[str] = []
    for workflow in workflows.values():
        for name, places in sorted(segments_used(workflow).items()):
            if name not in segments.segments:
                where = ", ".join(sorted(places))
                known = ", ".join(segments.names()) or "none defined"
                problems.append(
                    f"{workflow.source}: {where}: segment {name!r} does not exist "
                    f"(segments: {known})"
                )
    return problems


def segment_lookup(memberships: Mapping[int, frozenset[str]], contact_id: int) -> dict[str, Any]:
    """The ``in_segment`` name for one contact's expression context."""
    mine = memberships.get(contact_id, frozenset())
    return {SEGMENT_FUNCTION: lambda name: str(name) in mine}
