"""The lint checks that need no render: MJML traps and http links written in a template's
source files, and what a language's catalog lacks or gets wrong."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from remarket_mailer.rendering.lint_findings import Collector
from remarket_mailer.rendering.locales import ExtractedMessage, LocaleCatalog
from remarket_mailer.rendering.samples import SAMPLES_DIR
from remarket_mailer.rendering.sources import JINJA_TAG

_SOURCE_HTTP = re.compile(r"""http://[^\s"'<>{}]*""")
_SIZE_ATTRIBUTE = re.compile(
    r"""\b((?:[a-z]+-)*(?:width|height|size|padding|spacing|radius)(?:-[a-z]+)*)\s*=\s*"[^"]*(?:\{\{|\{%)""",
    re.I,
)
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


def lint_sources(templates_dir: Path, found: Collector) -> None:
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


def lint_catalogs(
    catalogs: Mapping[str, LocaleCatalog], used: list[ExtractedMessage], found: Collector
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
