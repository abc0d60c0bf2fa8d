"""``remarket lint``: compile every template in every language with sample contexts, and report
every problem as ``file:line: problem``.

Checks, per template × language × sample: Jinja syntax (both passes), MJML errors, undefined
variables (StrictUndefined), a missing text part, a missing unsubscribe link in the HTML or the
text, HTML over Gmail's 102 KB clipping limit, links that are not https; per file: a ``<`` inside
a send-time Jinja tag, Jinja in an MJML size attribute, a tag MJML does not know (``<mj-colum>``);
per catalog: invalid ``.po`` files, messages without a translation, fuzzy or wrong-placeholder
translations, and msgids used in templates that a catalog lacks. With workflows: every step's
template exists, and renders with that step's discount (or without one).

Every sample is also rendered under each combination of the optional blocks it has: without
its discount (a pool ran dry under ``send_without_code``), with no items (an empty cart, no
products to recommend), without a first name. Each rendered email's copy is then read as a
recipient would (``copy_checks``): template syntax or a ``None`` left in it, an empty subject,
dangling punctuation or two spaces in the subject or preheader, and a word for "code" or
"discount" in any part of an email that has no discount. A problem the samples show as they
are is reported with those samples; one that only a combination shows names it (``sample
default, no discount``).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remarket_mailer.domain.workflow import Workflow
from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering.errors import TemplateSourceError
from remarket_mailer.rendering.lint_findings import Collector, LintProblem, LintReport
from remarket_mailer.rendering.lint_render import lint_render
from remarket_mailer.rendering.lint_static import lint_catalogs, lint_sources
from remarket_mailer.rendering.locales import (
    SOURCE_LOCALE,
    LocaleCatalog,
    catalog_files,
    compile_catalog,
)
from remarket_mailer.rendering.pages import page_problems
from remarket_mailer.rendering.renderer import Renderer
from remarket_mailer.rendering.samples import SAMPLES_DIR, load_samples, sample_context
from remarket_mailer.rendering.sources import find_line

if TYPE_CHECKING:
    from remarket_mailer.rendering.compiled import CompiledTemplate

__all__ = [
    "LintProblem",
    "LintReport",
    "lint_report",
    "lint_templates",
    "missing_templates",
    "run_lint",
]


def lint_templates(
    templates_dir: Path,
    workflows: Iterable[Workflow] | None = None,
    sample_contexts: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[LintProblem]:
    """Every problem in the templates under ``templates_dir`` (empty: all good).

    ``sample_contexts`` default to ``<templates_dir>/_samples/*.yaml``. Never raises for a
    problem in a template, catalog or sample: each becomes a LintProblem.
    """
    return lint_report(templates_dir, workflows, sample_contexts).problems


def lint_report(
    templates_dir: Path,
    workflows: Iterable[Workflow] | None = None,
    sample_contexts: Mapping[str, Mapping[str, Any]] | None = None,
) -> LintReport:
    """``lint_templates`` with what was checked: templates, languages and samples."""
    early: list[LintProblem] = []
    catalogs: dict[str, LocaleCatalog] = {}
    for locale, path in catalog_files(templates_dir).items():
        try:
            catalogs[locale] = compile_catalog(path.read_text(encoding="utf-8"), locale, path)
        except TemplateSourceError as exc:
            early.append(LintProblem(exc.file, exc.line, exc.message))
    samples: dict[str, Mapping[str, Any]]
    if sample_contexts is not None:
        samples = dict(sample_contexts)
    else:
        try:
            samples = dict(load_samples(templates_dir))
        except TemplateSourceError as exc:
            early.append(LintProblem(exc.file, exc.line, exc.message))
            samples = {}
        if not samples:
            where = str(templates_dir / SAMPLES_DIR)
            early.append(LintProblem(where, None, "no sample contexts (*.yaml) to render with"))
    languages = (SOURCE_LOCALE, *catalogs)
    found = Collector(languages, tuple(samples))
    for problem in early:
        found.add(problem.file, problem.line, problem.message)
    renderer = Renderer(templates_dir, languages=catalogs)
    names = renderer.templates()
    steps = _steps(workflows or (), templates_dir, found)
    for name in sorted({*names, *steps}):
        if name not in names and not (templates_dir / f"{name}.mjml").is_file():
            continue  # reported against the workflow that uses it
        _lint_template(renderer, name, languages, samples, steps.get(name, []), found)
    lint_sources(templates_dir, found)
    lint_catalogs(catalogs, renderer.messages(), found)
    for file, line, message in page_problems(templates_dir, catalogs):
        found.add(file, line, message)
    return LintReport(found.problems(), names, languages, tuple(samples))


@dataclass(frozen=True, slots=True)
class _Step:
    workflow: Workflow
    step_id: str
    has_discount: bool


def missing_templates(templates_dir: Path, workflows: Iterable[Workflow]) -> list[LintProblem]:
    """A problem, at the workflow file's line, for each step whose template has no ``.mjml``
    file under ``templates_dir`` (``remarket workflows validate`` and lint both report it)."""
    problems = []
    for workflow in workflows:
        for step in workflow.steps:
            if (templates_dir / f"{step.template}.mjml").is_file():
                continue
            file = workflow.source or workflow.id
            problems.append(
                LintProblem(
                    file,
                    _line_in(Path(file), f"template: {step.template}"),
                    f"step {step.id!r} uses template {step.template!r}, "
                    f"which has no {templates_dir / step.template}.mjml",
                )
            )
    return problems


def _steps(
    workflows: Iterable[Workflow], templates_dir: Path, found: Collector
) -> dict[str, list[_Step]]:
    workflows = list(workflows)
    for problem in missing_templates(templates_dir, workflows):
        found.add(problem.file, problem.line, problem.message)
    steps: dict[str, list[_Step]] = {}
    for workflow in workflows:
        for step in workflow.steps:
            if (templates_dir / f"{step.template}.mjml").is_file():
                steps.setdefault(step.template, []).append(
                    _Step(workflow, step.id, step.discount is not None)
                )
    return steps


def _line_in(path: Path, needle: str) -> int | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    where = find_line([(str(path), text)], needle)
    return where[1] if where else None


def _contexts(
    samples: Mapping[str, Mapping[str, Any]], steps: list[_Step], language: str
) -> Iterable[tuple[str, dict[str, Any]]]:
    """Each sample as is, or, for a template that workflows use, once per step using it."""
    for sample_name, sample in samples.items():
        if not steps:
            yield sample_name, sample_context(sample, language)
            continue
        for step in steps:
            context = sample_context(sample, language)
            if step.has_discount != bool(context.get("discount")):
                if step.has_discount:
                    continue  # this sample has no discount to give the step
                context["discount"] = None
            context["workflow"] = {
                **(context.get("workflow") or {}),
                "id": step.workflow.id,
                "name": step.workflow.name,
                "category": step.workflow.category,
            }
            context["step"] = {"id": step.step_id}
            yield sample_name, context


def _variants(sample_name: str, context: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """``context`` under every combination of leaving out the optional blocks it has: the
    discount, the items (cart items, the event's items and recommendations), the first name.
    Named after the sample (``default, no discount, no items``); the sample itself excluded."""
    cart, event, contact = (
        part if isinstance(part := context.get(key), dict) else {}
        for key in ("cart", "event", "contact")
    )
    has_items = any((cart.get("items"), event.get("items"), event.get("recommendations")))
    optional = [
        name
        for name, present in (
            ("no discount", bool(context.get("discount"))),
            ("no items", has_items),
            ("no first name", bool(contact.get("first_name"))),
        )
        if present
    ]
    for size in range(1, len(optional) + 1):
        for left_out in itertools.combinations(optional, size):
            variant = copy.deepcopy(context)
            if "no discount" in left_out:
                variant["discount"] = None
            if "no items" in left_out:
                for part, keys in (("cart", ("items",)), ("event", ("items", "recommendations"))):
                    if isinstance(variant.get(part), dict):
                        for key in keys:
                            if key in variant[part]:
                                variant[part][key] = []
            if "no first name" in left_out:
                variant["contact"]["first_name"] = None
            yield ", ".join((sample_name, *left_out)), variant


def _combinations(templates_dir: Path) -> int:
    """How many renders per template and language ``_variants`` adds to the samples."""
    try:
        samples = load_samples(templates_dir)
    except TemplateSourceError:
        return 0  # reported by lint itself
    return sum(len(list(_variants(n, sample_context(s)))) for n, s in samples.items())


def _lint_template(
    renderer: Renderer,
    name: str,
    languages: tuple[str, ...],
    samples: Mapping[str, Mapping[str, Any]],
    steps: list[_Step],
    found: Collector,
) -> None:
    mjml_file = str(renderer.templates_dir / f"{name}.mjml")
    compiled: dict[str, CompiledTemplate] = {}
    for language in languages:
        try:
            compiled[language] = renderer.compiled(name, language)
        except TemplateError as exc:
            found.add_error(exc, mjml_file, language)
    # The samples as they are first, so a problem they show is reported with them.
    for variants in (False, True):
        for language, template in compiled.items():
            for sample_name, context in _contexts(samples, steps, language):
                renders = _variants(sample_name, context) if variants else [(sample_name, context)]
                for render_name, render_context in renders:
                    lint_render(
                        renderer, template, language, render_name, render_context, found, variants
                    )


def run_lint(
    directory: Path,
    echo: Callable[[str], None],
    workflows: Iterable[Workflow] | None = None,
) -> int:
    """Lint the templates in ``directory``; ``echo`` each problem line and a summary line.

    Returns the exit code: 0 when there is no problem, 1 otherwise (2 when ``directory`` is
    not a directory).
    """
    if not directory.is_dir():
        echo(f"{directory}: not a directory")
        return 2
    report = lint_report(directory, workflows)
    for problem in report.problems:
        echo(str(problem))
    checked = (
        f"{len(report.templates)} template(s) × {len(report.languages)} language(s) "
        f"({', '.join(report.languages)}) × {len(report.samples)} sample(s)"
        f" and {_combinations(directory)} combination(s) without discount, items or first name"
    )
    if report.problems:
        echo(f"{len(report.problems)} problem(s) in {checked}")
        return 1
    echo(f"{checked}: OK")
    return 0
