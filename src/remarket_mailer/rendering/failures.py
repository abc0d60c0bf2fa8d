"""Where a send-time template failed: the file and line of the source it was built from (the
compiled HTML is what runs, but nobody edits it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jinja2 import Environment, TemplateSyntaxError

from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering.errors import TemplateSourceError
from remarket_mailer.rendering.locales import SOURCE_LOCALE, strip_compile_time_comments
from remarket_mailer.rendering.sources import (
    locate_in_sources,
    parse_front_matter,
    traceback_line,
)

if TYPE_CHECKING:
    from remarket_mailer.rendering.renderer import CompiledTemplate


def render_error(template: CompiledTemplate, part: str, exc: Exception) -> TemplateError:
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, KeyError) and template.locale != SOURCE_LOCALE:
        message += f" (the {template.locale} translation uses a placeholder not passed to it)"
    if not template.sources:
        return TemplateError(f"{template.name}: {message}")
    mjml_file = template.sources[0][0]
    filename = f"{mjml_file} [{part}]"
    line = traceback_line(exc.__traceback__, filename)
    if part in ("subject", "preheader"):
        # Folded YAML (>-) joins lines, so look for the failing tag in the file itself.
        source = dict(template.header_sources).get(part, "")
        found = locate_in_sources(source, line, str(exc), template.sources[:1])
        start = dict(template.header_lines).get(part, 1)
        at = found[1] if found else start + (line or 1) - 1
        return TemplateSourceError(mjml_file, at, f"{part}: {message}")
    if part == "html":
        where = locate_in_sources(template.html_source, line, str(exc), template.sources)
    else:
        text_first = (
            *(s for s in template.sources if s[0].endswith(".txt")),
            *template.sources,
        )
        where = locate_in_sources(template.text_source, line, str(exc), text_first)
    if where is None:
        return TemplateSourceError(mjml_file, None, f"{part}: {message}")
    file, line, tag = where
    return TemplateSourceError(file, line, f"{message} (in {tag})" if tag else message)


def first_syntax_error(
    env: Environment, sources: tuple[tuple[str, str], ...]
) -> TemplateSourceError | None:
    """The first file with a send-time syntax error of its own, at its line."""
    for file, text in sources:
        body = text
        if file.endswith(".mjml"):
            try:
                front = parse_front_matter(text, file)
            except TemplateSourceError as exc:
                return exc
            body = "\n" * (front.body_line - 1) + front.body
        try:
            env.parse(strip_compile_time_comments(body))
        except TemplateSyntaxError as exc:
            text_of = exc.message or ""
            if "Unexpected end of template" in text_of or "unknown tag 'end" in text_of:
                continue  # a block opened in one file and closed in another is legitimate
            return TemplateSourceError(file, exc.lineno, f"syntax error: {exc.message}")
    return None
