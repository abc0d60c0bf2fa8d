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
import difflib
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import escape

from remarket_mailer.domain.workflow import Workflow
from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering import copy_checks
from remarket_mailer.rendering.errors import TemplateSourceError
from remarket_mailer.rendering.locales import (
    SOURCE_LOCALE,
    ExtractedMessage,
    LocaleCatalog,
    catalog_files,
    compile_catalog,
)
from remarket_mailer.rendering.pages import page_problems
from remarket_mailer.rendering.renderer import GMAIL_CLIP_BYTES, Renderer
from remarket_mailer.rendering.samples import SAMPLES_DIR, load_samples, sample_context
from remarket_mailer.rendering.sources import JINJA_TAG, find_line

if TYPE_CHECKING:
    from remarket_mailer.rendering.compiled import CompiledTemplate, RenderedEmail

_LINK = re.compile(r"""\b(?:href|src)\s*=\s*(["'])(.*?)\1""", re.I | re.S)
_TEXT_URL = re.compile(r"""\b[a-z][a-z0-9+.-]*://[^\s<>"')\]]+""", re.I)
_SOURCE_HTTP = re.compile(r"""http://[^\s"'<>{}]*""")
_SIZE_ATTRIBUTE = re.compile(
    r"""\b((?:[a-z]+-)*(?:width|height|size|padding|spacing|radius)(?:-[a-z]+)*)\s*=\s*"[^"]*(?:\{\{|\{%)""",
    re.I,
)
_FINE_SCHEMES = ("https://", "mailto:", "tel:", "#", "cid:")
# Every tag MJML 4 knows: the components of mjml's core preset (packages/mjml-preset-core),
# the children of mj-attributes (mj-all, mj-class) and mj-html-attributes (mj-selector,
# mj-html-attribute), and mj-include. mjml-python drops or passes through any other tag
# without a word, so a typo (<mj-colum>) silently changes the layout.
MJML_TAGS = frozenset(
    {
        "mjml",
        "mj-head",
        "mj-body",
        "mj-include",
        "mj-attributes",
        "mj-all",
        "mj-class",
        "mj-breakpoint",
        "mj-html-attributes",
        "mj-selector",
        "mj-html-attribute",
        "mj-font",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-accordion",
        "mj-accordion-element",
        "mj-accordion-text",
        "mj-accordion-title",
        "mj-button",
        "mj-carousel",
        "mj-carousel-image",
        "mj-column",
        "mj-divider",
        "mj-group",
        "mj-hero",
        "mj-image",
        "mj-navbar",
        "mj-navbar-link",
        "mj-raw",
        "mj-section",
        "mj-social",
        "mj-social-element",
        "mj-spacer",
        "mj-table",
        "mj-text",
        "mj-wrapper",
    }
)
_MJML_TAG = re.compile(r"</?\s*(mj(?:ml|-[a-z0-9-]*))(?=[\s/>])", re.I)


@dataclass(frozen=True, slots=True)
class LintProblem:
    """One problem: ``file`` as given (``templates/x/y.mjml``), 1-based ``line`` or None."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass
class LintReport:
    """What lint looked at and what it found."""

    problems: list[LintProblem]
    templates: list[str]
    languages: tuple[str, ...]
    samples: tuple[str, ...]


@dataclass
class _Found:
    languages: set[str] = field(default_factory=set)
    samples: set[str] = field(default_factory=set)
    plain: bool = True
    """Found with a sample as it is (not only with a combination of optional blocks)."""
    example: str | None = None


class _Collector:
    """Problems in order found; one per (file, line, message), with where it showed up."""

    def __init__(self, languages: tuple[str, ...], samples: tuple[str, ...]) -> None:
        self.languages = languages
        self.samples = samples
        self.found: dict[tuple[str, int | None, str], _Found] = {}

    def add(
        self,
        file: str,
        line: int | None,
        message: str,
        language: str | None = None,
        sample: str | None = None,
        *,
        variant: bool = False,
        example: str | None = None,
    ) -> None:
        key = (file, line, message)
        seen = self.found.get(key)
        if seen is None:
            seen = self.found[key] = _Found(plain=not variant, example=example)
        elif variant and seen.plain:
            return  # the samples as they are already show it: report it with them
        if language is not None:
            seen.languages.add(language)
        if sample is not None:
            seen.samples.add(sample)

    def add_error(
        self, error: TemplateError, fallback: str, language: str | None, sample: str | None = None
    ) -> None:
        if isinstance(error, TemplateSourceError):
            self.add(error.file, error.line, error.message, language, sample)
        else:
            self.add(fallback, None, str(error), language, sample)

    def problems(self) -> list[LintProblem]:
        result = []
        for (file, line, message), seen in self.found.items():
            notes = []
            if seen.languages and len(seen.languages) < len(self.languages):
                notes.append("language " + ", ".join(sorted(seen.languages)))
            if seen.samples and not set(self.samples) <= seen.samples:
                names = sorted(seen.samples, key=lambda s: (s.count(","), s))
                more = f"; and {len(names) - 3} more" if len(names) > 3 else ""
                notes.append("sample " + "; ".join(names[:3]) + more)
            example = f": {seen.example!r}" if seen.example else ""
            suffix = f" [{'; '.join(notes)}]" if notes else ""
            result.append(LintProblem(file, line, message + example + suffix))
        return sorted(result, key=lambda p: (p.file, p.line or 0, p.message))


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
    found = _Collector(languages, tuple(samples))
    for problem in early:
        found.add(problem.file, problem.line, problem.message)
    renderer = Renderer(templates_dir, languages=catalogs)
    names = renderer.templates()
    steps = _steps(workflows or (), templates_dir, found)
    for name in sorted({*names, *steps}):
        if name not in names and not (templates_dir / f"{name}.mjml").is_file():
            continue  # reported against the workflow that uses it
        _lint_template(renderer, name, languages, samples, steps.get(name, []), found)
    _lint_sources(templates_dir, found)
    _lint_catalogs(catalogs, renderer.messages(), found)
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
    workflows: Iterable[Workflow], templates_dir: Path, found: _Collector
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
    found: _Collector,
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
                    _lint_render(
                        renderer, template, language, render_name, render_context, found, variants
                    )


def _lint_render(
    renderer: Renderer,
    compiled: CompiledTemplate,
    language: str,
    sample_name: str,
    context: dict[str, Any],
    found: _Collector,
    variant: bool,
) -> None:
    name = compiled.name
    mjml_file = str(renderer.templates_dir / f"{name}.mjml")
    text_file = str(renderer.templates_dir / f"{name}.txt")

    def add(file: str, line: int | None, message: str, example: str | None = None) -> None:
        found.add(file, line, message, language, sample_name, variant=variant, example=example)

    try:
        email = renderer.render(name, context, locale=language)
    except TemplateError as exc:
        if isinstance(exc, TemplateSourceError):
            add(exc.file, exc.line, exc.message)
        else:
            add(mjml_file, None, str(exc))
        return
    header_lines = dict(compiled.header_lines)
    if not email.subject:
        add(mjml_file, header_lines.get("subject", 1), "the subject is empty")
    unsubscribe = str((context.get("links") or {}).get("unsubscribe") or "")
    if unsubscribe and f'href="{escape(unsubscribe)}"' not in email.html:
        found.add(mjml_file, 1, "the HTML part has no link to {{ links.unsubscribe }}")
    if unsubscribe and unsubscribe not in email.text:
        found.add(text_file, 1, "the text part has no {{ links.unsubscribe }} link")
    size = len(email.html.encode())
    if size > GMAIL_CLIP_BYTES:
        add(
            mjml_file,
            1,
            f"the HTML is {size / 1024:.1f} KB; Gmail clips emails over "
            f"{GMAIL_CLIP_BYTES // 1024} KB",
        )
    links = [m.group(2) for m in _LINK.finditer(email.html)]
    links += _TEXT_URL.findall(email.text)
    for link in links:
        _check_link(link, compiled.sources, mjml_file, found, sample_name, variant)
    _check_copy(email, bool(context.get("discount")), mjml_file, text_file, header_lines, add)


def _check_copy(
    email: RenderedEmail,
    has_discount: bool,
    mjml_file: str,
    text_file: str,
    header_lines: Mapping[str, int],
    add: Callable[[str, int | None, str, str | None], None],
) -> None:
    """What the recipient would read wrong: see ``copy_checks``."""
    visible = copy_checks.visible_text(email.html, email.preheader)
    parts = (
        ("subject", mjml_file, header_lines.get("subject", 1), email.subject),
        ("preheader", mjml_file, header_lines.get("preheader", 1), email.preheader),
        ("HTML part", mjml_file, None, visible),
        ("text part", text_file, None, email.text),
    )
    for part, file, line, text in parts:
        checked = copy_checks.markup(email.html) if part == "HTML part" else text
        leftover = copy_checks.leftover(checked)
        if leftover:
            add(file, line, f"the {part} shows template syntax or None", leftover)
        if part in ("subject", "preheader") and text:
            what = copy_checks.dangling(text)
            if what:
                add(file, line, f"the {part} {what}", text)
        if not has_discount:
            code = copy_checks.mentions_offer(text, email.locale)
            if code:
                add(
                    file,
                    line,
                    f"the {part} mentions a code or a discount, but this email has none (put it "
                    "under {% if discount %})",
                    code,
                )


def _check_link(
    link: str,
    sources: tuple[tuple[str, str], ...],
    mjml_file: str,
    found: _Collector,
    sample: str,
    variant: bool = False,
) -> None:
    url = link.strip().replace("&amp;", "&")
    if url.lower().startswith(_FINE_SCHEMES):
        return
    if url.lower().startswith("http://"):
        written = url.split("?", 1)[0]
        if any(written in text for _, text in sources):
            return  # reported where it is written, by _lint_sources
        found.add(
            mjml_file, 1, f"renders a link that is not https: {url}", sample=sample, variant=variant
        )
    else:
        found.add(
            mjml_file,
            1,
            f"renders a link that is not absolute https: {url!r}",
            sample=sample,
            variant=variant,
        )


def _lint_sources(templates_dir: Path, found: _Collector) -> None:
    """Checks that need no render: MJML traps and http links written in a source."""
    for path in sorted([*templates_dir.rglob("*.mjml"), *templates_dir.rglob("*.txt")]):
        rel = path.relative_to(templates_dir)
        if rel.parts[0] in ("_locales", SAMPLES_DIR):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            found.add(str(path), None, "not readable as UTF-8 text")
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for match in _SOURCE_HTTP.finditer(line):
                if len(match.group(0)) > len("http://"):
                    found.add(str(path), number, f"link is not https: {match.group(0)}")
            if path.suffix != ".mjml":
                continue
            for match in _MJML_TAG.finditer(line):
                tag = match.group(1).lower()
                if tag not in MJML_TAGS:
                    close = difflib.get_close_matches(tag, sorted(MJML_TAGS), n=1)
                    hint = f" (did you mean <{close[0]}>?)" if close else ""
                    found.add(
                        str(path),
                        number,
                        f"<{tag}> is not an MJML tag{hint}: MJML ignores it and the layout "
                        "changes without an error",
                    )
            for match in JINJA_TAG.finditer(line):
                if "<" in match.group(0):
                    found.add(
                        str(path),
                        number,
                        "'<' inside a Jinja tag: MJML reads it as the start of an element "
                        "(compare the other way round, or use a filter)",
                    )
            for match in _SIZE_ATTRIBUTE.finditer(line):
                found.add(
                    str(path),
                    number,
                    f"Jinja in the size attribute {match.group(1)!r}: MJML drops it; use a "
                    "fixed value or compile-time [[ ]]",
                )


def _lint_catalogs(
    catalogs: Mapping[str, LocaleCatalog], used: list[ExtractedMessage], found: _Collector
) -> None:
    for locale, loaded in catalogs.items():
        po = str(loaded.path)
        ids: dict[str, tuple[Any, int | None]] = {}
        for message in loaded.catalog:
            if not message.id:
                continue
            msgid = message.id if isinstance(message.id, str) else message.id[0]
            ids[msgid] = (message.id, message.lineno)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if message.fuzzy:
                found.add(po, message.lineno, f"fuzzy translation (not used) for {msgid!r}")
            elif not all(strings):
                found.add(po, message.lineno, f"missing translation for {msgid!r}")
        for message, errors in loaded.catalog.check():
            for error in errors:
                found.add(po, message.lineno, f"{error} in the translation of {message.id!r}")
        for use in used:
            entry = ids.get(use.msgid)
            if entry is None:
                found.add(
                    use.file,
                    use.line,
                    f"no {locale} translation for {use.msgid!r} (add it to {po})",
                )
            elif use.plural is not None and not isinstance(entry[0], tuple):
                found.add(po, entry[1], f"{use.msgid!r} is used with a plural: add msgid_plural")


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
