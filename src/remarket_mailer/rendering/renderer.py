"""Templates: compile once (layout → MJML → HTML), render per email with sandboxed Jinja.

A template is ``templates/<workflow>/<name>.mjml`` with YAML front matter (subject, preheader)
and a text part ``<name>.txt`` beside it. Both go through two Jinja passes:

1. compile time, delimiters ``[% %]`` / ``[[ ]]``: layouts and partials (``[% extends %]``,
   ``[% include %]``), resolved once;
2. send time, ordinary ``{{ }}`` / ``{% %}``: personal data, in a SandboxedEnvironment with
   StrictUndefined (a missing variable is an error, not an empty string).

MJML is compiled between the two passes, once per template, so a send only pays for the Jinja
render of ready HTML (see DESIGN.md: MJML costs milliseconds, Jinja microseconds).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mjml
import yaml
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
)
from jinja2 import (
    TemplateError as JinjaTemplateError,
)
from jinja2.sandbox import SandboxedEnvironment

from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering import filters

GMAIL_CLIP_BYTES = 102 * 1024


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    preheader: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    name: str
    content_hash: str
    subject: Template
    preheader: Template
    html: Template
    text: Template
    html_source: str
    """The compiled HTML with its Jinja tags, before any personal data (for lint and sizes)."""


def _runtime_env(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        autoescape=autoescape, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters.update(
        money=filters.money,
        number=filters.number,
        date=filters.date,
        datetime=filters.datetime_,
        utm=filters.with_utm,
    )
    return env


class Renderer:
    """Compiles each template once (thread-safe) and renders it per email."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self._layout_env = Environment(
            loader=FileSystemLoader(str(templates_dir)),
            block_start_string="[%",
            block_end_string="%]",
            variable_start_string="[[",
            variable_end_string="]]",
            comment_start_string="[#",
            comment_end_string="#]",
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )
        self._html_env = _runtime_env(autoescape=True)
        self._text_env = _runtime_env(autoescape=False)
        self._compiled: dict[str, CompiledTemplate] = {}
        self._lock = threading.Lock()

    def compiled(self, name: str) -> CompiledTemplate:
        """The compiled template ``name`` (e.g. ``abandoned_cart/reminder_1``); cached."""
        found = self._compiled.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._compiled.get(name)
            if found is None:
                found = self._compile(name)
                self._compiled[name] = found
        return found

    def clear(self) -> None:
        with self._lock:
            self._compiled.clear()

    def render(self, name: str, context: Mapping[str, Any]) -> RenderedEmail:
        """Render subject, preheader, HTML and text for one email.

        Raises TemplateError naming the template when it does not compile or render.
        """
        template = self.compiled(name)
        try:
            subject = " ".join(template.subject.render(context).split())
            preheader = " ".join(template.preheader.render(context).split())
            html = template.html.render({**context, "preheader": preheader})
            text = template.text.render(context)
        except JinjaTemplateError as exc:
            raise TemplateError(f"{name}: {type(exc).__name__}: {exc}") from None
        return RenderedEmail(subject=subject, preheader=preheader, html=html, text=text)

    def _compile(self, name: str) -> CompiledTemplate:
        mjml_path = f"{name}.mjml"
        text_path = f"{name}.txt"
        try:
            raw = (self.templates_dir / mjml_path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TemplateError(f"{name}: template file {mjml_path} not found") from None
        if not (self.templates_dir / text_path).is_file():
            raise TemplateError(f"{name}: missing text part {text_path}")
        front, body = split_front_matter(raw, mjml_path)
        if "subject" not in front:
            raise TemplateError(f"{mjml_path}: front matter has no 'subject'")
        try:
            laid_out = self._layout_env.from_string(body).render()
            text_source = self._layout_env.get_template(text_path).render()
        except TemplateNotFound as exc:
            raise TemplateError(f"{name}: layout or partial {exc.name} not found") from None
        except JinjaTemplateError as exc:
            raise TemplateError(f"{name}: {exc}") from None
        try:
            html_source = mjml.mjml2html(laid_out, fonts={})
        except Exception as exc:  # mjml raises a bare exception type from Rust
            raise TemplateError(f"{mjml_path}: MJML error: {exc}") from None
        digest = hashlib.sha256((raw + text_source).encode()).hexdigest()[:16]
        try:
            return CompiledTemplate(
                name=name,
                content_hash=digest,
                subject=self._text_env.from_string(str(front["subject"])),
                preheader=self._text_env.from_string(str(front.get("preheader", ""))),
                html=self._html_env.from_string(html_source),
                text=self._text_env.from_string(text_source),
                html_source=html_source,
            )
        except JinjaTemplateError as exc:
            raise TemplateError(f"{name}: {exc}") from None


def split_front_matter(raw: str, file: str) -> tuple[dict[str, Any], str]:
    """Split ``---``-fenced YAML front matter from the template body."""
    if not raw.startswith("---"):
        return {}, raw
    parts = raw.split("\n---", 1)
    if len(parts) != 2:
        raise TemplateError(f"{file}: front matter starts with --- but never ends")
    header = parts[0].removeprefix("---")
    body = parts[1].split("\n", 1)[1] if "\n" in parts[1] else ""
    try:
        front = yaml.safe_load(header) or {}
    except yaml.YAMLError as exc:
        raise TemplateError(f"{file}: front matter is not valid YAML: {exc}") from None
    if not isinstance(front, dict):
        raise TemplateError(
            f"{file}: front matter must be a mapping (subject: ..., preheader: ...)"
        )
    return front, body
