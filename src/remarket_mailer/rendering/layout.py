"""The compile-time pass of a template: layouts and partials (``[% %]`` / ``[[ ]]``) laid
out, then MJML compiled to HTML, once per template (per language only when a file it is built
from uses ``[[ lang ]]`` or ``[[ dir ]]``). MJML output is cached by the hash of its input, so
languages whose laid-out MJML is the same share it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

import mjml
from jinja2 import StrictUndefined, TemplateNotFound, TemplateSyntaxError
from jinja2 import TemplateError as JinjaTemplateError

from remarket_mailer.rendering import filters
from remarket_mailer.rendering.errors import TemplateSourceError
from remarket_mailer.rendering.send_env import TemplateSandbox
from remarket_mailer.rendering.sources import (
    FrontMatter,
    TemplateFiles,
    edited,
    find_line,
    less_than_in_jinja,
    mjml_problem,
    parse_front_matter,
    restamp,
    stamp,
)


@dataclass(frozen=True, slots=True)
class LaidOut:
    """A template after the compile-time pass and MJML, before send-time Jinja."""

    front: FrontMatter
    html_source: str
    text_source: str
    sources: tuple[tuple[str, str], ...]
    stamps: tuple[tuple[Path, int, int], ...]


# A compile-time tag that mentions lang or dir: that template is laid out once per language.
_USES_LANGUAGE = re.compile(r"(?:\[\[|\[%)(?:(?!\]\]|%\]).)*?\b(?:lang|dir)\b", re.S)


class Layouts:
    """Lays out templates of one directory, cached (the caller holds the lock)."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self._files = TemplateFiles(templates_dir)
        self._env = TemplateSandbox(
            loader=self._files,
            block_start_string="[%",
            block_end_string="%]",
            variable_start_string="[[",
            variable_end_string="]]",
            comment_start_string="[#",
            comment_end_string="#]",
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            cache_size=0,  # so the loader sees, and records, every file of every compile
        )
        self._mjml: dict[str, str] = {}
        self._layouts: dict[tuple[str, str], LaidOut] = {}

    def refresh(self) -> set[str]:
        """Forget laid-out templates whose files changed; returns their names."""
        stale: set[str] = set()
        for key, laid in list(self._layouts.items()):
            if edited(laid.sources, laid.stamps):
                stale.add(key[0])
                del self._layouts[key]
            else:
                self._layouts[key] = replace(laid, stamps=restamp(laid.stamps))
        return stale

    def clear(self) -> None:
        self._mjml.clear()
        self._layouts.clear()

    def _display(self, name: str) -> str:
        return str(self.templates_dir / name)

    def lay_out(self, name: str, locale: str) -> LaidOut:
        """The compile-time pass and MJML for ``name``: shared by every language unless a file
        it is built from uses ``[[ lang ]]`` or ``[[ dir ]]``."""
        found = self._layouts.get((name, "*")) or self._layouts.get((name, locale))
        if found is not None:
            return found
        mjml_name, text_name = f"{name}.mjml", f"{name}.txt"
        mjml_file = self._display(mjml_name)
        try:
            mjml_path = self._files.path(mjml_name)
        except TemplateNotFound:
            raise TemplateSourceError(mjml_file, None, "template file not found") from None
        try:
            self._files.path(text_name)
        except TemplateNotFound:
            raise TemplateSourceError(mjml_file, 1, f"missing text part {text_name}") from None
        raw = mjml_path.read_text(encoding="utf-8")
        front = parse_front_matter(raw, mjml_file)
        if "subject" not in front.data:
            raise TemplateSourceError(mjml_file, 1, "front matter has no 'subject'")
        tag, direction = filters.language_tag(locale)
        self._files.loaded = []
        try:
            laid_out = self._env.get_template(mjml_name).render(lang=tag, dir=direction)
            text_source = self._env.get_template(text_name).render(lang=tag, dir=direction)
        except TemplateSyntaxError as exc:
            where = exc.filename or mjml_file
            raise TemplateSourceError(where, exc.lineno, f"syntax error: {exc.message}") from None
        except (JinjaTemplateError, TemplateSourceError) as exc:
            raise self._layout_error(mjml_file, exc) from None
        loaded = list(dict.fromkeys(self._files.loaded))
        sources = tuple(
            (self._display(n), (self.templates_dir / n).read_text(encoding="utf-8")) for n in loaded
        )
        per_language = any(_USES_LANGUAGE.search(text) for _, text in sources)
        laid = LaidOut(
            front=front,
            html_source=self._mjml_to_html(laid_out, sources, mjml_file),
            text_source=text_source,
            sources=sources,
            stamps=tuple(stamp(self.templates_dir / n) for n in loaded),
        )
        self._layouts[(name, locale if per_language else "*")] = laid
        return laid

    def _layout_error(self, mjml_file: str, exc: Exception) -> TemplateSourceError:
        """A compile-time failure (missing partial, ``[[ x ]]`` undefined) at its file:line."""
        if isinstance(exc, TemplateSourceError):
            return exc
        tb = exc.__traceback__
        where: tuple[str, int | None] = (mjml_file, None)
        root = str(self.templates_dir)
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename.startswith(root):
                where = (filename, tb.tb_lineno)
            tb = tb.tb_next
        if isinstance(exc, TemplateNotFound):
            return TemplateSourceError(*where, f"layout or partial {exc.name!r} not found")
        return TemplateSourceError(*where, f"{type(exc).__name__}: {exc}")

    def _mjml_to_html(
        self, laid_out: str, sources: tuple[tuple[str, str], ...], mjml_file: str
    ) -> str:
        key = hashlib.sha256(laid_out.encode()).hexdigest()
        found = self._mjml.get(key)
        if found is not None:
            return found
        try:
            html = str(mjml.mjml2html(laid_out, fonts={}))
        except Exception as exc:  # mrml raises a bare ValueError without a position
            raise _mjml_error(laid_out, sources, mjml_file, str(exc)) from None
        self._mjml[key] = html
        return html


def _mjml_error(
    laid_out: str, sources: tuple[tuple[str, str], ...], mjml_file: str, message: str
) -> TemplateSourceError:
    less_than = less_than_in_jinja(sources)
    if less_than is not None:
        return TemplateSourceError(
            *less_than,
            "MJML error: '<' inside a Jinja tag reads as the start of an element "
            "(compare the other way round, or use a filter)",
        )
    problem = mjml_problem(laid_out)
    if problem is not None:
        line, description = problem
        text = laid_out.splitlines()[line - 1].strip() if line <= len(laid_out.splitlines()) else ""
        where = find_line(sources, text) if len(text) > 3 else None
        if where is not None:
            return TemplateSourceError(*where, f"MJML error: {description}")
    return TemplateSourceError(mjml_file, None, f"MJML error: {message}")
