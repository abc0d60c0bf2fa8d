"""What the renderer hands out: a template compiled for one language, and one rendered email."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import Template

from remarket_mailer.rendering.locales import SOURCE_LOCALE


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """One email's parts, ready for a message."""

    subject: str
    preheader: str
    html: str
    text: str
    locale: str = SOURCE_LOCALE
    """The language the email was rendered in (``nl``, ``en``): for Content-Language."""


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A template compiled for one language: four send-time Jinja templates and their sources."""

    name: str
    content_hash: str
    subject: Template
    preheader: Template
    html: Template
    text: Template
    html_source: str
    """The compiled HTML with its Jinja tags, before any personal data (for lint and sizes)."""
    locale: str = SOURCE_LOCALE
    text_source: str = ""
    sources: tuple[tuple[str, str], ...] = ()
    """(file, text) of every file it was built from, the template's own ``.mjml`` first."""
    stamps: tuple[tuple[Path, int, int], ...] = ()
    """(path, mtime_ns, size) of those files and the catalog, to notice edits cheaply."""
    header_lines: tuple[tuple[str, int], ...] = ()
    """Line of each front matter value (subject, preheader) in the ``.mjml`` file."""
    header_sources: tuple[tuple[str, str], ...] = ()
    """Send-time source of each front matter value, to locate a failure in it."""
    lang: str = SOURCE_LOCALE
    """``{{ lang }}``: the language as an HTML lang attribute writes it (``pt-BR``)."""
    dir: str = "ltr"
    """``{{ dir }}``: ``ltr`` or ``rtl``."""
