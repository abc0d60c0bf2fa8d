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
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import CodeType
from typing import Any

import mjml
from jinja2 import (
    DictLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    nodes,
    pass_context,
    pass_eval_context,
)
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from markupsafe import Markup, escape

try:  # markupsafe's own escaping, without the Markup its public escape() wraps it in
    from markupsafe._speedups import _escape_inner
except ImportError:  # pragma: no cover - markupsafe built without its C extension
    from markupsafe._native import _escape_inner

from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering import filters
from remarket_mailer.rendering.errors import TemplateSourceError
from remarket_mailer.rendering.locales import (
    SOURCE_LOCALE,
    ExtractedMessage,
    LocaleCatalog,
    catalog_files,
    extract_messages,
    fold_translations,
    load_catalogs,
    resolve_locale,
    strip_compile_time_comments,
)
from remarket_mailer.rendering.sources import (
    FrontMatter,
    TemplateFiles,
    find_line,
    less_than_in_jinja,
    locate_in_sources,
    mjml_problem,
    parse_front_matter,
    traceback_line,
)
from remarket_mailer.sandbox import BoundedSandbox, bound_template, join_bounded

GMAIL_CLIP_BYTES = 102 * 1024
_DICT_ATTRIBUTES = frozenset(dir(dict))
_PLURAL_FILTER = "_translated_plural"


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


def available_languages(templates_dir: Path) -> tuple[str, ...]:
    """English plus every language with a catalog under ``templates_dir/_locales``."""
    return (SOURCE_LOCALE, *(x for x in catalog_files(templates_dir) if x != SOURCE_LOCALE))


class _Sandbox(BoundedSandbox):
    """Jinja's sandbox, immutable (a template cannot ``shop.update(...)`` the dicts every email
    shares), with the growth limits of ``remarket_mailer.sandbox`` (``'x' * n``,
    ``'a'|center(n)``, ``n ** m``...) so a template cannot exhaust the worker's memory."""

    language: str = SOURCE_LOCALE
    translations: Any = None

    def getattr(self, obj: Any, attribute: str) -> Any:
        # ``contact.first_name`` on a plain dict: Jinja tries the attribute first and pays for
        # an AttributeError on every lookup. A dict's only attributes are dict's methods, so
        # for other names the item is the same answer, found without the exception.
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


# Raw-text elements: character references are not decoded inside them, so they keep their
# characters as they are.
_RAW_TEXT_TAG = re.compile(r"<(/?)(?:style|script)\b[^>]*>", re.IGNORECASE)


def char_refs(text: str) -> str:
    """``text`` in ASCII: every other character as a numeric character reference (``€`` →
    ``&#8364;``), which every mail client and browser reads as the character itself."""
    return text if text.isascii() else text.encode("ascii", "xmlcharrefreplace").decode("ascii")


def ascii_template_data(tree: nodes.Template, environment: _Sandbox) -> None:
    """Write the literal HTML of a parsed send-time template in ASCII, in place, except inside
    ``<style>`` and ``<script>``, where a reference would be read literally.

    Why: an email's HTML is then ASCII whenever its values are (see ``html_escape``), and an
    ASCII ``str`` is its own UTF-8. One ``€`` or ``×`` made the whole 20 KB HTML a two-byte
    string that every ESP payload (orjson) and SMTP body had to transcode character by
    character: 12 % of the instructions of a send to an HTTP ESP.
    """
    _ascii_constants(tree, environment)
    raw = False
    for node in tree.find_all(nodes.TemplateData):
        data = node.data
        if data.isascii() and not raw and "<" not in data:
            continue
        pieces: list[str] = []
        start = 0
        for tag in _RAW_TEXT_TAG.finditer(data):
            before = data[start : tag.start()]
            pieces.append(before if raw else char_refs(before))
            pieces.append(tag.group(0))
            raw = not tag.group(1)
            start = tag.end()
        rest = data[start:]
        pieces.append(rest if raw else char_refs(rest))
        node.data = "".join(pieces)


def _ascii_constants(tree: nodes.Template, environment: _Sandbox) -> None:
    """Constant output (``{{ 'é' }}``, a translation folded in) is escaped when the template
    compiles, never by ``html_escape``: write it as literal ASCII HTML now instead."""
    if any(tree.find_all(nodes.EvalContextModifier)):
        return  # {% autoescape %} blocks: leave escaping to the compiler, as written
    eval_ctx = nodes.EvalContext(environment)
    for output in tree.find_all(nodes.Output):
        for index, child in enumerate(output.nodes):
            if isinstance(child, nodes.TemplateData):
                continue
            try:
                value = child.as_const(eval_ctx)
                text = str(escape(value))
            except Exception:  # not constant, or an Undefined: the compiler leaves it to run
                continue  # time, too, where it fails as a TemplateError with its line
            if not text.isascii():
                output.nodes[index] = nodes.TemplateData(char_refs(text), lineno=child.lineno)


_ASCII_MARKUP: dict[str, Markup] = {}
"""Plain str value → its escaped ASCII form. The values that need one are mostly the same few
per batch (prices from the cached money filter, names in subject and greeting)."""


def _markup(text: str) -> Markup:
    # Markup's own __new__ is Python code (it looks for __html__ and an encoding); ``text``
    # is escaped already, so the str constructor alone makes the same object.
    return str.__new__(Markup, text)


def html_escape(value: Any) -> Markup:
    """What compiled HTML templates call for every ``{{ }}``, in place of markupsafe's
    ``escape``: the same escaping, with the result written in ASCII as the literal HTML is
    (``ascii_template_data``). One Python call per value, ~35 per email: markupsafe's escape
    plus Markup's __new__ plus an ASCII ``finalize`` would be three."""
    if type(value) is str:
        if value.isascii():
            return _markup(_escape_inner(value))
        found = _ASCII_MARKUP.get(value)
        if found is None:
            found = _markup(char_refs(_escape_inner(value)))
            if len(_ASCII_MARKUP) >= 10_000:
                _ASCII_MARKUP.clear()
            _ASCII_MARKUP[value] = found
        return found
    # As markupsafe: __html__ first (Markup, a safe object), else the escaped str().
    text = value.__html__() if hasattr(value, "__html__") else _escape_inner(str(value))
    return _markup(char_refs(text))


def _runtime_env(autoescape: bool, language: str, catalog: LocaleCatalog | None) -> _Sandbox:
    """A send-time environment for one language: its filters default to that language when
    the template does not name a locale (or names none, as for a contact without one)."""
    env = _Sandbox(
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
        # Send-time templates include nothing: an empty loader turns {% include '/etc/passwd' %}
        # into TemplateNotFound instead of reading the file.
        loader=DictLoader({}),
    )
    env.policies["ext.i18n.trimmed"] = True
    translations: Any = catalog.translations if catalog is not None else _NullTranslations()
    env.language = language
    env.translations = translations
    # The i18n extension adds this method to the environment at run time. Literal msgids are
    # translated when a template is compiled (fold_translations); these serve the rest.
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]

    @pass_eval_context
    def translated_plural(
        eval_ctx: EvalContext,
        count: Any,
        singular: str,
        plural_form: str,
        variables: dict[str, Any],
        names: tuple[str, ...],
    ) -> str:
        # What a folded {% trans count=... %}{% pluralize %} runs (fold_translations).
        form = str(translations.ngettext(singular, plural_form, count))
        text = Markup(form) if eval_ctx.autoescape else form
        return text % {**variables, **dict.fromkeys(names, count)}

    def money(amount: Any, currency: str, locale: str | None = None) -> str:
        return filters.money(amount, currency, locale or language)

    def number(amount: Any, locale: str | None = None) -> str:
        return filters.number(amount, locale or language)

    def date(
        moment: Any, locale: str | None = None, timezone: str | None = None, format: str = "medium"
    ) -> str:
        return filters.date(moment, locale or language, timezone, format)

    def datetime_(
        moment: Any, locale: str | None = None, timezone: str | None = None, format: str = "medium"
    ) -> str:
        return filters.datetime_(moment, locale or language, timezone, format)

    def plural(
        count: Any,
        one: str,
        other: str,
        *,
        zero: str | None = None,
        two: str | None = None,
        few: str | None = None,
        many: str | None = None,
        locale: str | None = None,
    ) -> str:
        return filters.plural(
            count, one, other, zero=zero, two=two, few=few, many=many, locale=locale or language
        )

    @pass_context
    def utm(
        context: Context, url: Any, campaign: str | None = None, content: str | None = None
    ) -> str:
        # get_all(): the template's data as one dict (no copy unless it {% set %}s names);
        # Context.get resolves through four Python calls per lookup.
        return filters.utm_from_context(context.get_all(), str(url), campaign, content)

    env.filters.update(
        money=money, number=number, date=date, datetime=datetime_, plural=plural, utm=utm
    )
    env.filters[_PLURAL_FILTER] = translated_plural
    return env


class _NullTranslations:
    """English: msgids are the English text, with the English plural rule."""

    @staticmethod
    def gettext(message: str) -> str:
        return message

    @staticmethod
    def ngettext(singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural

    @staticmethod
    def pgettext(context: str, message: str) -> str:
        return message

    @staticmethod
    def npgettext(context: str, singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural


@dataclass(frozen=True, slots=True)
class _LaidOut:
    """A template after the compile-time pass and MJML, before send-time Jinja."""

    front: FrontMatter
    html_source: str
    text_source: str
    sources: tuple[tuple[str, str], ...]
    stamps: tuple[tuple[Path, int, int], ...]


# A compile-time tag that mentions lang or dir: that template is laid out once per language.
_USES_LANGUAGE = re.compile(r"(?:\[\[|\[%)(?:(?!\]\]|%\]).)*?\b(?:lang|dir)\b", re.S)


@dataclass(frozen=True, slots=True)
class _Runtime:
    """The send-time environments of one language."""

    html: _Sandbox
    text: _Sandbox


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
        self._files = TemplateFiles(templates_dir)
        self._layout_env = _Sandbox(
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
        requested = [x for x in (languages or ()) if x != SOURCE_LOCALE]
        self._catalogs: dict[str, LocaleCatalog] = load_catalogs(templates_dir, requested)
        self._wanted = requested
        self.languages: tuple[str, ...] = (SOURCE_LOCALE, *self._catalogs)
        self._runtimes: dict[str, _Runtime] = {}
        self._compiled: dict[tuple[str, str], CompiledTemplate] = {}
        self._mjml: dict[str, str] = {}
        self._code: dict[tuple[bool, str, str, str], CodeType] = {}
        self._layouts: dict[tuple[str, str], _LaidOut] = {}
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
            subject = " ".join(_run(template.subject, text_data).split())
            part = "preheader"
            preheader = " ".join(_run(template.preheader, text_data).split())
            part = "html"
            html_data = {
                **template.html.globals,
                **context,
                "lang": template.lang,
                "dir": template.dir,
                "preheader": preheader,
            }
            html = _run(template.html, html_data)
            part = "text"
            text = _run(template.text, text_data).lstrip("\n")  # the block tag's line break
        except Exception as exc:  # a template is user code: any failure is a template error
            raise self._render_error(template, part, exc) from None
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
            stale: set[str] = set()
            for key, laid in list(self._layouts.items()):
                if _edited(laid.sources, laid.stamps):
                    stale.add(key[0])
                    del self._layouts[key]
                else:
                    self._layouts[key] = replace(laid, stamps=_restamp(laid.stamps))
            for key, compiled in list(self._compiled.items()):
                if key[0] in stale or _edited(compiled.sources, compiled.stamps):
                    stale.add(key[0])
                    del self._compiled[key]
                else:
                    self._compiled[key] = replace(compiled, stamps=_restamp(compiled.stamps))
            return sorted(stale)

    def clear(self) -> None:
        """Forget every compiled template, MJML output and catalog; the next render reloads."""
        with self._lock:
            self._compiled.clear()
            self._mjml.clear()
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

    def _runtime(self, locale: str) -> _Runtime:
        found = self._runtimes.get(locale)
        if found is None:
            catalog = self._catalogs.get(locale)
            found = _Runtime(
                html=_runtime_env(True, locale, catalog), text=_runtime_env(False, locale, catalog)
            )
            self._runtimes[locale] = found
        return found

    def _display(self, name: str) -> str:
        return str(self.templates_dir / name)

    def _lay_out(self, name: str, locale: str) -> _LaidOut:
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
            laid_out = self._layout_env.get_template(mjml_name).render(lang=tag, dir=direction)
            text_source = self._layout_env.get_template(text_name).render(lang=tag, dir=direction)
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
        laid = _LaidOut(
            front=front,
            html_source=self._mjml_to_html(laid_out, sources, mjml_file),
            text_source=text_source,
            sources=sources,
            stamps=tuple(_stamp(self.templates_dir / n) for n in loaded),
        )
        self._layouts[(name, locale if per_language else "*")] = laid
        return laid

    def _compile(self, name: str, locale: str) -> CompiledTemplate:
        laid = self._lay_out(name, locale)
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
            stamps=tuple(_stamp(p) for p in stamp_paths),
            header_lines=tuple(front.lines.items()),
            header_sources=(
                ("subject", str(front.data["subject"])),
                ("preheader", str(front.data.get("preheader", ""))),
            ),
            lang=tag,
            dir=direction,
        )

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

    def _from_source(self, env: _Sandbox, source: str, filename: str) -> Template:
        """``env.from_string`` with a filename (tracebacks say which part failed) and the
        literal translations of the env's language resolved; generated code is reused for an
        identical source in the same language."""
        digest = hashlib.sha256(source.encode()).hexdigest()
        key = (env.autoescape is True, filename, digest, env.language)
        code = self._code.get(key)
        if code is None:
            parsed = env.parse(source, name=filename, filename=filename)
            parsed = fold_translations(parsed, env, env.translations, _PLURAL_FILTER)
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
        self, env: _Sandbox, source: str, mjml_file: str, front: FrontMatter, key: str
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
        self, env: _Sandbox, source: str, filename: str, sources: tuple[tuple[str, str], ...]
    ) -> Template:
        try:
            return self._from_source(env, source, filename)
        except TemplateSyntaxError as exc:
            found = _first_syntax_error(env, sources)
            if found is not None:
                raise found from None
            where = locate_in_sources(source, exc.lineno, str(exc), sources)
            file, line = (where[0], where[1]) if where else (sources[0][0], None)
            raise TemplateSourceError(file, line, f"syntax error: {exc.message}") from None

    def _render_error(self, template: CompiledTemplate, part: str, exc: Exception) -> TemplateError:
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

    def _catalogs_changed(self) -> bool:
        for catalog in self._catalogs.values():
            try:
                text = catalog.path.read_text(encoding="utf-8")
            except OSError:
                return True
            if hashlib.sha256(text.encode()).hexdigest()[:16] != catalog.content_hash:
                return True
        return False


def _run(template: Template, data: dict[str, Any]) -> str:
    """``template.render(data)`` without copying ``data``: templates cannot change it (their
    ``{% set %}`` goes to the context's own variables)."""
    context = template.new_context(data, shared=True)
    try:
        return join_bounded(template.root_render_func(context))
    except Exception:
        template.environment.handle_exception()  # re-raises, with template lines in the traceback


def _first_syntax_error(
    env: _Sandbox, sources: tuple[tuple[str, str], ...]
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


def _stamp(path: Path) -> tuple[Path, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return path, -1, -1
    return path, stat.st_mtime_ns, stat.st_size


def _edited(
    sources: tuple[tuple[str, str], ...], stamps: tuple[tuple[Path, int, int], ...]
) -> bool:
    """True when a file has other content than when compiled (only read if its stamp moved)."""
    if all(_stamp(path) == (path, mtime, size) for path, mtime, size in stamps):
        return False
    for file, content in sources:
        try:
            if Path(file).read_text(encoding="utf-8") != content:
                return True
        except OSError:
            return True
    return False


def _restamp(stamps: tuple[tuple[Path, int, int], ...]) -> tuple[tuple[Path, int, int], ...]:
    return tuple(_stamp(path) for path, _, _ in stamps)
