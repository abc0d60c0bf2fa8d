"""Load ``workflows/*.yaml`` into domain Workflows; report every problem with file and line."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError

from remarket_mailer.domain.attribution import AttributionWindows
from remarket_mailer.domain.caps import parse_caps
from remarket_mailer.domain.durations import parse_duration
from remarket_mailer.domain.experiments import WinnerRule
from remarket_mailer.domain.send_windows import SendWindow
from remarket_mailer.domain.workflow import (
    DateOffset,
    DiscountSpec,
    ExitRule,
    Step,
    Trigger,
    Variant,
    Workflow,
)
from remarket_mailer.errors import WorkflowError
from remarket_mailer.workflows.schema import (
    DiscountSpecModel,
    StepSpec,
    WorkflowSpec,
    parse_date_offset,
)
from remarket_mailer.workflows.segments import SegmentSet, segments_used


def workflow_version(source: str) -> str:
    """A workflow's version is the hash of its file: any edit makes a new version."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def parse_workflow(source: str, file: str = "<workflow>") -> Workflow:
    """Parse and validate one workflow file's text.

    Raises WorkflowError for the first problem; use ``check_workflow`` to get all of them.
    """
    problems = check_workflow(source, file)
    if problems:
        raise problems[0]
    data = yaml.safe_load(source)
    spec = WorkflowSpec.model_validate(data)
    return _to_domain(spec, source, file)


def check_workflow(source: str, file: str = "<workflow>") -> list[WorkflowError]:
    """Every problem in one workflow file, each with its line where the YAML shows one."""
    try:
        node = yaml.compose(source)
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return [WorkflowError(f"YAML syntax error: {getattr(exc, 'problem', exc)}", file, line)]
    if not isinstance(data, dict):
        return [
            WorkflowError("a workflow file must be a mapping with id, trigger and steps", file, 1)
        ]
    try:
        WorkflowSpec.model_validate(data)
    except PydanticValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [part for part in error["loc"] if not str(part).startswith("function-")]
            where = ".".join(str(part) for part in loc) or "(top level)"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(WorkflowError(f"{where}: {message}", file, _line_of(node, loc)))
        return problems
    return []


def _line_of(node: yaml.Node | None, loc: Iterable[Any]) -> int | None:
    """The 1-based line of the YAML node at ``loc``, or of its nearest existing parent."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _td(value: str | None) -> timedelta | None:
    return parse_duration(value) if value is not None else None


def _step(step: StepSpec) -> Step:
    at = None
    if step.at is not None:
        fact, sign, amount = parse_date_offset(step.at)
        at = DateOffset(fact, sign * parse_duration(amount))
    return Step(
        id=step.id,
        wait=parse_duration(step.wait) if step.wait is not None else timedelta(0),
        at=at,
        local_time=step.local_time,
        template=step.template,
        condition=step.condition,
        discount=_discount(step.discount) if step.discount is not None else None,
        expires_after=_td(step.expires_after),
        variants=tuple(Variant(v.id, v.template, v.weight) for v in (step.variants or [])),
        winner=WinnerRule(step.winner.after, step.winner.alpha) if step.winner else None,
    )


def _discount(d: DiscountSpecModel) -> DiscountSpec:
    return DiscountSpec(
        kind="percent" if d.percent is not None else "fixed",
        value=d.percent if d.percent is not None else (d.amount or Decimal(0)),
        currency=d.currency,
        expires_after=_td(d.expires_after),
        minimum_order=d.minimum_order,
        prefix=d.prefix,
        length=d.length,
        reuse=d.reuse,
        pool=d.pool,
        when_exhausted=d.when_exhausted,
    )


def _to_domain(spec: WorkflowSpec, source: str, file: str) -> Workflow:
    steps = [_step(step) for step in spec.steps]
    return Workflow(
        id=spec.id,
        name=spec.name,
        version=workflow_version(source),
        trigger=Trigger(
            events=spec.trigger.events,
            key=spec.trigger.key,
            filter=spec.trigger.filter,
            reenter_after=_td(spec.trigger.reenter_after),
            min_drop_percent=spec.trigger.min_drop_percent,
        ),
        steps=tuple(steps),
        exits=tuple(ExitRule(e.event, e.match, e.condition, e.segment) for e in spec.exit),
        description=spec.description,
        enabled=spec.enabled,
        category=spec.category,
        priority=spec.priority,
        from_email=spec.from_email,
        reply_to=spec.reply_to,
        send_window=(
            SendWindow(spec.send_window.start, spec.send_window.end) if spec.send_window else None
        ),
        holdout_percent=spec.holdout_percent,
        attribution=AttributionWindows(
            parse_duration(spec.attribution.after_engagement),
            parse_duration(spec.attribution.after_delivery),
        )
        if spec.attribution
        else AttributionWindows(),
        caps=parse_caps(spec.frequency_caps) if spec.frequency_caps is not None else None,
        caps_exempt=spec.caps_exempt,
        provider=spec.provider,
        source=file,
    )


@dataclass
class WorkflowSet:
    """The workflows of one directory, indexed for the ingest path, plus known old versions."""

    workflows: dict[str, Workflow] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    _versions: dict[tuple[str, str], Workflow] = field(default_factory=dict)
    stored: set[tuple[str, str]] = field(default_factory=set)
    """(workflow, version) pairs this process has seen committed to workflow_versions: ingest
    writes each version's source once per process, not once per event."""
    segments: SegmentSet = field(default_factory=SegmentSet)
    """The segments (segments/*.yaml) that ingest keeps up to date and workflows may use."""
    _uses_segments: bool | None = None

    def add(self, workflow: Workflow, source: str) -> None:
        if workflow.id in self.workflows:
            raise WorkflowError(
                f"workflow id {workflow.id!r} is also used by {self.workflows[workflow.id].source}",
                workflow.source,
            )
        self.workflows[workflow.id] = workflow
        self.sources[workflow.id] = source
        self._uses_segments = None
        self._versions[(workflow.id, workflow.version)] = workflow

    def triggered_by(self, event_type: str) -> list[Workflow]:
        return [w for w in self.workflows.values() if event_type in w.trigger.events]

    def exited_by(self, event_type: str) -> list[tuple[Workflow, ExitRule]]:
        """(workflow, rule) for every exit rule on ``event_type``; all versions share exits."""
        found: list[tuple[Workflow, ExitRule]] = []
        for workflow in self.workflows.values():
            for rule in workflow.exits:
                if rule.event == event_type:
                    found.append((workflow, rule))
        return found

    def segment_exits(self) -> dict[str, list[str]]:
        """segment name → the workflows with an exit rule ``segment: NAME``."""
        found: dict[str, list[str]] = {}
        for workflow in self.workflows.values():
            for rule in workflow.exits:
                if rule.segment is not None:
                    found.setdefault(rule.segment, []).append(workflow.id)
        return found

    def uses_segments(self) -> bool:
        """Whether any workflow asks ``in_segment(...)`` or exits by a segment."""
        if self._uses_segments is None:
            self._uses_segments = any(segments_used(w) for w in self.workflows.values())
        return self._uses_segments

    def version(self, workflow_id: str, version: str) -> Workflow | None:
        return self._versions.get((workflow_id, version))

    def remember(self, workflow_id: str, version: str, source: str) -> Workflow:
        """Parse and keep an older version (loaded from the database for running enrollments)."""
        workflow = parse_workflow(source, f"{workflow_id}@{version}")
        self._versions[(workflow_id, version)] = workflow
        return workflow


def load_workflows(directory: Path) -> WorkflowSet:
    """Load every ``*.yaml``/``*.yml`` file; raise WorkflowError listing all problems found."""
    if not directory.is_dir():
        raise WorkflowError(f"workflows directory {directory} does not exist")
    result = WorkflowSet()
    problems: list[WorkflowError] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        source = path.read_text(encoding="utf-8")
        found = check_workflow(source, str(path))
        if found:
            problems.extend(found)
            continue
        try:
            result.add(parse_workflow(source, str(path)), source)
        except WorkflowError as exc:
            problems.append(exc)
    if problems:
        raise WorkflowError(
            f"{len(problems)} problem(s) in workflows:\n" + "\n".join(str(p) for p in problems)
        )
    return result
