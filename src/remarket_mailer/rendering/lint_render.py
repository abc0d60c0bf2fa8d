"""The lint checks of one rendered email: it renders, has a subject and an unsubscribe link in
both parts, fits under Gmail's clipping limit, links only to https, and reads right
(``copy_checks``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from markupsafe import escape

from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering import copy_checks
from remarket_mailer.rendering.compiled import CompiledTemplate, RenderedEmail
from remarket_mailer.rendering.errors import TemplateSourceError
from remarket_mailer.rendering.lint_findings import Collector
from remarket_mailer.rendering.renderer import GMAIL_CLIP_BYTES, Renderer

_LINK = re.compile(r"""\b(?:href|src)\s*=\s*(["'])(.*?)\1""", re.I | re.S)
_TEXT_URL = re.compile(r"""\b[a-z][a-z0-9+.-]*://[^\s<>"')\]]+""", re.I)
_FINE_SCHEMES = ("https://", "mailto:", "tel:", "#", "cid:")


def lint_render(
    renderer: Renderer,
    compiled: CompiledTemplate,
    language: str,
    sample_name: str,
    context: dict[str, Any],
    found: Collector,
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
    found: Collector,
    sample: str,
    variant: bool = False,
) -> None:
    url = link.strip().replace("&amp;", "&")
    if url.lower().startswith(_FINE_SCHEMES):
        return
    if url.lower().startswith("http://"):
        written = url.split("?", 1)[0]
        if any(written in text for _, text in sources):
            return  # reported where it is written, by lint_sources
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
