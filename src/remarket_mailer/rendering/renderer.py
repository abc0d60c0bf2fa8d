"""Templates: compile once per language (layout → MJML → HTML), render per email, sandboxed.

A template is ``templates/<workflow>/<name>.mjml`` with YAML front matter (subject, preheader)
and a text part ``<name>.txt`` beside it. Both go through two Jinja passes:

1. compile time, delimiters ``[% %]`` / ``[[ ]]``: layouts and partials (``[% extends %]``,
   ``[% include %]``), resolved once; ``[[ lang ]]`` and ``[[ dir ]]`` are the language tag
   and text direction being compiled (a layout that uses them is compiled per language);
2. send time, ordinary ``{{ }}`` / ``{% %}``: personal data and ``{% trans %}`` / ``_()``
   translations, in a sandbox with StrictUndefined (a missing variable is an error, not an
   empty string) and no access to files, the environment or Python internals. ``{{ lang }}``
   (``nl``, ``pt-BR``) and ``{{ dir }}`` (``ltr``/``rtl``) are set for every part.

In text parts, a line that ends in ``{% endtrans %}`` loses its line break (``trim_blocks``):
end it with ``{% endtrans +%}`` instead.

MJML is compiled between the two passes, once per (template, language), so a send only pays
for the Jinja render of ready HTML (measured: MJML costs milliseconds, Jinja microseconds).
MJML output and Jinja's generated code are cached by the hash of their input, so languages
whose laid-out MJML is the same share both; ``refresh()`` drops templates whose files changed,
``clear()`` drops everything.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import CodeType
from typing import Any

from jinja2 import Template, TemplateSyntaxError
from markupsafe import escape

from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering import filters
from remarket_mailer.rendering.ascii_html import ascii_template_data, html_escape
from remarket_mailer.rendering.compiled import CompiledTemplate, RenderedEmail
from remarket_mailer.rendering.errors import TemplateSourceError
from remarket_mailer.rendering.failures import first_syntax_error, render_error
from remarket_mailer.rendering.layout import Layouts
from remarket_mailer.rendering.locales import (
    SOURCE_LOCALE,
    ExtractedMessage,
    LocaleCatalog,
    catalog_files,
    extract_messages,
    fold_translations,
    load_catalogs,
    resolve_locale,
)
from remarket_mailer.rendering.send_env import (
    PLURAL_FILTER,
    Runtime,
    TemplateSandbox,
    run,
    runtime,
)
from remarket_mailer.rendering.sources import (
    FrontMatter,
    edited,
    locate_in_sources,
    restamp,
    stamp,
)
from remarket_mailer.sandbox import bound_template

__all__ = [
    "GMAIL_CLIP_BYTES",
    "CompiledTemplate",
    "RenderedEmail",
    "Renderer",
    "available_languages",
]

GMAIL_CLIP_BYTES = 102 * 1024


def available_languages(templates_dir: Path) -> tuple[str, ...]:
    """English plus every language with a catalog under ``templates_dir/_locales``."""
    return (SOURCE_LOCALE, *(x for x in catalog_files(templates_dir) if x != SOURCE_LOCALE))


class Renderer:
    """Compiles each template once per language (thread-safe) and renders it per email.

    ``languages`` are the languages emails may go out in; English (the templates' source
    language) always. None means English only: a language is switched on on purpose, once its
    catalog is reviewed. ``reload_after`` (seconds) makes renders notice edited files that
    often; None leaves that to ``refresh()``.
    """

    def __init__(
        self,
        templates_dir: Path,
        *,
        languages: Iterable[str] | None = None,
        reload_after: float | None = None,
    ) -> None:
        self.templates_dir = templates_dir
        self._layouts = Layouts(templates_dir)
        requested = [x for x in (languages or ()) if x != SOURCE_LOCALE]
        self._catalogs: dict[str, LocaleCatalog] = load_catalogs(templates_dir, requested)
        self._wanted = requested
        self.languages: tuple[str, ...] = (SOURCE_LOCALE, *self._catalogs)
        self._runtimes: dict[str, Runtime] = {}
        self._compiled: dict[tuple[str, str], CompiledTemplate] = {}
        self._code: dict[tuple[bool, str, str, str], CodeType] = {}
        self._resolved: dict[tuple[str | None, str | None], str] = {}
        self._lock = threading.RLock()
        self._reload_after = reload_after
        self._checked_at = time.monotonic()

    # -- public ------------------------------------------------------------------------------

    def templates(self) -> list[str]:
        """Names of every template (``abandoned_cart/reminder_1``), outside ``_`` folders."""
        names = []
        for path in self.templates_dir.rglob("*.mjml"):
            rel = path.relative_to(self.templates_dir)
            if not any(part.startswith("_") for part in rel.parts):
                names.append(rel.with_suffix("").as_posix())
        return sorted(names)

    def language_for(self, context: Mapping[str, Any], locale: str | None = None) -> str:
        """The language an email to this context goes out in (see ``locales``). Never raises."""
        if locale is None:
            contact = context.get("contact")
            locale = contact.get("locale") if isinstance(contact, Mapping) else None
        workflow = context.get("workflow")
        fallback = workflow.get("locale") if isinstance(workflow, Mapping) else None
        key = (locale, fallback)
        found = self._resolved.get(key)
        if found is None:
            found = resolve_locale(self.languages, locale, fallback)
            if len(self._resolved) > 10_000:  # contacts' free-text locales: keep it bounded
                self._resolved.clear()
            self._resolved[key] = found
        return found

    def compiled(self, name: str, locale: str = SOURCE_LOCALE) -> CompiledTemplate:
        """The compiled template ``name`` (``abandoned_cart/reminder_1``) in ``locale``; cached.

        Raises TemplateError (a TemplateSourceError with file and line when known) when a file
        is missing or does not compile.
        """
        if self._reload_after is not None and (
            time.monotonic() - self._checked_at >= self._reload_after
        ):
            self.refresh()
        key = (name, locale)
        found = self._compiled.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._compiled.get(key)
            if found is None:
                try:
                    found = self._compile(name, locale)
                except TemplateError:
                    raise
                except Exception as exc:  # a template is user code: any failure is its error
                    raise TemplateSourceError(
                        self._display(f"{name}.mjml"),
                        None,
                        f"does not compile: {type(exc).__name__}: {exc}",
                    ) from None
                self._compiled[key] = found
        return found

    def warm(self, names: Iterable[str]) -> dict[str, TemplateError]:
        """Compile ``names`` in every language now, as a worker does before it takes work, so
        the first batches do not pay for it (and ``gc.freeze`` afterwards covers the compiled
        templates). Returns what failed, by ``name [language]``: those fail only their own
        deliveries when sent, as they would have anyway."""
        failed: dict[str, TemplateError] = {}
        for name in dict.fromkeys(names):
            for language in self.languages:
                try:
                    self.compiled(name, language)
                except TemplateError as exc:
                    failed[f"{name} [{language}]"] = exc
        return failed

    def render(
        self, name: str, context: Mapping[str, Any], *, locale: str | None = None
    ) -> RenderedEmail:
        """Render subject, preheader, HTML and text for one email.

        The language is ``locale`` if given, else the contact's, else the workflow's default
        (``context["workflow"]["locale"]``), else English. Raises TemplateError naming the
        template (file and line when they can be found) when it does not compile or render.
        """
        language = self.language_for(context, locale)
        template = self.compiled(name, language)
        # One namespace per environment (globals + context), shared by the parts rendered in
        # it, instead of the three copies per part Template.render makes.
        text_data = {**template.text.globals, **context, "lang": template.lang, "dir": template.dir}
        part = "subject"
        try:
            subject = " ".join(run(template.subject, text_data).split())
            part = "preheader"
            preheader = " ".join(run(template.preheader, text_data).split())
            part = "html"
            html_data = {
                **template.html.globals,
                **context,
                "lang": template.lang,
                "dir": template.dir,
                "preheader": preheader,
            }
            html = run(template.html, html_data)
            part = "text"
            text = run(template.text, text_data).lstrip("\n")  # the block tag's line break
        except Exception as exc:  # a template is user code: any failure is a template error
            raise render_error(template, part, exc) from None
        return RenderedEmail(subject, preheader, html, text, language)

    def refresh(self) -> list[str]:
        """Forget compiled templates whose files (or catalog) changed; returns their names.

        A file that was only touched (same content) keeps its compiled template.
        """
        with self._lock:
            self._checked_at = time.monotonic()
            if self._catalogs_changed():
                names = sorted({name for name, _ in self._compiled})
                self.clear()
                return names
            stale = self._layouts.refresh()
            for key, compiled in list(self._compiled.items()):
                if key[0] in stale or edited(compiled.sources, compiled.stamps):
                    stale.add(key[0])
                    del self._compiled[key]
                else:
                    self._compiled[key] = replace(compiled, stamps=restamp(compiled.stamps))
            return sorted(stale)

    def clear(self) -> None:
        """Forget every compiled template, MJML output and catalog; the next render reloads."""
        with self._lock:
            self._compiled.clear()
            self._code.clear()
            self._layouts.clear()
            self._runtimes.clear()
            self._resolved.clear()
            self._catalogs = load_catalogs(self.templates_dir, self._wanted)
            self.languages = (SOURCE_LOCALE, *self._catalogs)

    def messages(self) -> list[ExtractedMessage]:
        """Every msgid the templates translate (``{% trans %}``, ``_()``), with file and line."""
        with self._lock:
            env = self._runtime(SOURCE_LOCALE).text
        return extract_messages(env, self.templates_dir)

    def catalog(self, locale: str) -> LocaleCatalog | None:
        """The loaded catalog of ``locale`` (None for English)."""
        return self._catalogs.get(locale)

    # -- compiling ---------------------------------------------------------------------------

    def _runtime(self, locale: str) -> Runtime:
        found = self._runtimes.get(locale)
        if found is None:
            catalog = self._catalogs.get(locale)
            found = runtime(locale, catalog)
            self._runtimes[locale] = found
        return found

    def _display(self, name: str) -> str:
        return str(self.templates_dir / name)

    def _compile(self, name: str, locale: str) -> CompiledTemplate:
        laid = self._layouts.lay_out(name, locale)
        front, sources = laid.front, laid.sources
        mjml_file = sources[0][0]
        runtime = self._runtime(locale)
        subject = self._send_time(
            runtime.text, str(front.data["subject"]), mjml_file, front, "subject"
        )
        preheader = self._send_time(
            runtime.text, str(front.data.get("preheader", "")), mjml_file, front, "preheader"
        )
        html = self._send_time_compiled(
            runtime.html, laid.html_source, f"{mjml_file} [html]", sources
        )
        text_sources = (*(s for s in sources if s[0].endswith(".txt")), *sources)
        text = self._send_time_compiled(
            runtime.text, laid.text_source, f"{mjml_file} [text]", text_sources
        )
        catalog = self._catalogs.get(locale)
        digest = hashlib.sha256()
        for _, content in sources:
            digest.update(content.encode())
        digest.update((catalog.content_hash if catalog else "").encode())
        stamp_paths = [path for path, _, _ in laid.stamps]
        if catalog is not None:
            stamp_paths.append(catalog.path)
        tag, direction = filters.language_tag(locale)
        return CompiledTemplate(
            name=name,
            content_hash=digest.hexdigest()[:16],
            subject=subject,
            preheader=preheader,
            html=html,
            text=text,
            html_source=laid.html_source,
            locale=locale,
            text_source=laid.text_source,
            sources=sources,
            stamps=tuple(stamp(p) for p in stamp_paths),
            header_lines=tuple(front.lines.items()),
            header_sources=(
                ("subject", str(front.data["subject"])),
                ("preheader", str(front.data.get("preheader", ""))),
            ),
            lang=tag,
            dir=direction,
        )

    def _from_source(self, env: TemplateSandbox, source: str, filename: str) -> Template:
        """``env.from_string`` with a filename (tracebacks say which part failed) and the
        literal translations of the env's language resolved; generated code is reused for an
        identical source in the same language."""
        digest = hashlib.sha256(source.encode()).hexdigest()
        key = (env.autoescape is True, filename, digest, env.language)
        code = self._code.get(key)
        if code is None:
            parsed = env.parse(source, name=filename, filename=filename)
            parsed = fold_translations(parsed, env, env.translations, PLURAL_FILTER)
            if env.autoescape is True:
                ascii_template_data(parsed, env)
            code = env.compile(parsed, name=filename, filename=filename)
            self._code[key] = code
        # A plain dict, not Jinja's ChainMap: every render copies the globals, and copying a
        # ChainMap runs in Python. The environments' globals never change after creation.
        template = env.template_class.from_code(env, code, dict(env.make_globals(None)), None)
        bound_template(template)
        if env.autoescape is True:
            # Generated code calls the module-level name ``escape`` for every ``{{ }}``.
            namespace = template.root_render_func.__globals__
            assert namespace.get("escape") is escape, "Jinja's generated code changed"
            namespace["escape"] = html_escape
        return template

    def _send_time(
        self, env: TemplateSandbox, source: str, mjml_file: str, front: FrontMatter, key: str
    ) -> Template:
        start = front.lines.get(key, 1)
        try:
            return self._from_source(env, source, f"{mjml_file} [{key}]")
        except TemplateSyntaxError as exc:
            line = start + (exc.lineno or 1) - 1
            raise TemplateSourceError(
                mjml_file, line, f"{key}: syntax error: {exc.message}"
            ) from None

    def _send_time_compiled(
        self, env: TemplateSandbox, source: str, filename: str, sources: tuple[tuple[str, str], ...]
    ) -> Template:
        try:
            return self._from_source(env, source, filename)
        except TemplateSyntaxError as exc:
            found = first_syntax_error(env, sources)
            if found is not None:
                raise found from None
            where = locate_in_sources(source, exc.lineno, str(exc), sources)
            file, line = (where[0], where[1]) if where else (sources[0][0], None)
            raise TemplateSourceError(file, line, f"syntax error: {exc.message}") from None

    def _catalogs_changed(self) -> bool:
        for catalog in self._catalogs.values():
            try:
                text = catalog.path.read_text(encoding="utf-8")
            except OSError:
                return True
            if hashlib.sha256(text.encode()).hexdigest()[:16] != catalog.content_hash:
                return True
        return False
