"""Languages: gettext catalogs read from ``.po`` files and compiled to ``.mo`` in memory.

Translations live beside the templates they translate::

    <templates>/_locales/<lang>/LC_MESSAGES/messages.po     (nl, it, ru, nb, vi, pt_BR, ...)

English is the source language: the msgids in the templates are the English text, so English
needs no catalog. Nothing generated is committed: every ``.po`` file is parsed with Babel and
compiled with ``babel.messages.mofile`` when the renderer loads it (a few milliseconds).

A contact's language is picked as: their own locale (``nl-NL`` → ``nl_NL`` if there is such a
catalog, else ``nl``), then the workflow's default, then English — and only among the languages
the renderer was told to send in.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.support import Translations
from jinja2 import Environment, nodes
from jinja2.visitor import NodeTransformer

from remarket_mailer.rendering.errors import TemplateSourceError

SOURCE_LOCALE = "en"
LOCALES_DIR = "_locales"
DOMAIN = "messages"

# Norwegian written without a variant is Bokmål for nearly every reader; Nynorsk readers read
# Bokmål far more easily than English.
_ALIASES = {"no": "nb", "nn": "nb"}
_TAG = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True, slots=True)
class LocaleCatalog:
    """One language's translations, ready for Jinja, with the parsed catalog kept for lint."""

    locale: str
    path: Path
    catalog: Catalog
    translations: Translations
    content_hash: str


def catalog_path(templates_dir: Path, locale: str) -> Path:
    """Where the ``.po`` file of ``locale`` lives under ``templates_dir``."""
    return templates_dir / LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_catalog(text: str, locale: str, path: Path) -> LocaleCatalog:
    """Parse one ``.po`` file's text and compile it in memory.

    Fuzzy entries are left out, as ``msgfmt`` does. Raises TemplateSourceError with the line
    of the first syntax error.
    """
    try:
        catalog = read_po(io.StringIO(text), locale=locale, abort_invalid=True)
    except PoFileError as exc:  # Babel counts these lines from 0
        line = exc.lineno + 1 if isinstance(exc.lineno, int) else None
        raise TemplateSourceError(str(path), line, f"invalid .po file: {exc}") from None
    except ValueError as exc:  # an unknown locale name, or a malformed Plural-Forms header
        raise TemplateSourceError(str(path), 1, f"invalid .po file: {exc}") from None
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return LocaleCatalog(
        locale=locale,
        path=path,
        catalog=catalog,
        translations=Translations(buffer, domain=DOMAIN),
        content_hash=hashlib.sha256(text.encode()).hexdigest()[:16],
    )


def catalog_files(templates_dir: Path) -> dict[str, Path]:
    """Every language that has a ``.po`` file, by its directory name (``nl``, ``pt_BR``)."""
    root = templates_dir / LOCALES_DIR
    if not root.is_dir():
        return {}
    found: dict[str, Path] = {}
    for directory in sorted(root.iterdir()):
        path = directory / "LC_MESSAGES" / f"{DOMAIN}.po"
        if directory.is_dir() and _TAG.match(directory.name) and path.is_file():
            found[directory.name] = path
    return found


def load_catalogs(
    templates_dir: Path, languages: Iterable[str] | None = None
) -> dict[str, LocaleCatalog]:
    """Compile the catalogs of ``languages`` (all that exist when None), keyed by language.

    Raises TemplateSourceError naming the file and line of an invalid ``.po`` file, or naming
    a requested language that has no catalog.
    """
    files = catalog_files(templates_dir)
    wanted = list(files) if languages is None else [x for x in languages if x != SOURCE_LOCALE]
    loaded: dict[str, LocaleCatalog] = {}
    for locale in wanted:
        path = files.get(locale)
        if path is None:
            expected = catalog_path(templates_dir, locale)
            raise TemplateSourceError(str(expected), None, f"no catalog for language {locale!r}")
        loaded[locale] = compile_catalog(path.read_text(encoding="utf-8"), locale, path)
    return loaded


def candidates(name: str | None) -> Iterator[str]:
    """Catalog names to try for a contact's locale, most specific first, lower case.

    ``nl-NL`` → ``nl_nl``, ``nl``; ``zh-Hant-TW`` → ``zh_hant_tw``, ``zh_hant``, ``zh``;
    ``no`` → ``no``, ``nb``.
    """
    if not name or not _TAG.match(name.strip()):
        return
    parts = name.strip().replace("-", "_").lower().split("_")
    for end in range(len(parts), 0, -1):
        yield "_".join(parts[:end])
    alias = _ALIASES.get(parts[0])
    if alias:
        yield alias


def resolve_locale(
    available: Collection[str],
    requested: str | None,
    fallback: str | None = None,
    default: str = SOURCE_LOCALE,
) -> str:
    """The language to send in: ``requested`` (the contact's), else ``fallback`` (the workflow
    default), else ``default`` — the first whose name, or a less specific form of it, is in
    ``available``. Never raises."""
    by_lower = {x.lower(): x for x in available}
    for name in (requested, fallback):
        for candidate in candidates(name):
            if candidate in by_lower:
                return by_lower[candidate]
    return default


@dataclass(frozen=True, slots=True)
class ExtractedMessage:
    """A translatable string found in a template, where it was found."""

    file: str
    line: int
    msgid: str
    plural: str | None


_COMPILE_TIME_COMMENT = re.compile(r"\[#.*?#\]", re.S)


def strip_compile_time_comments(source: str) -> str:
    """``[# … #]`` comments are gone before send-time Jinja sees a file; keep the line count."""
    return _COMPILE_TIME_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), source)


def extract_messages(env: Environment, templates_dir: Path) -> list[ExtractedMessage]:
    """Every ``{% trans %}`` / ``_()`` / ``ngettext()`` msgid in the templates' send-time Jinja.

    ``env`` is a send-time environment with the i18n extension (so the same trimming rules
    apply as when sending). Files with a syntax error are skipped: lint reports those.
    """
    from jinja2 import TemplateSyntaxError

    found: list[ExtractedMessage] = []
    for path in sorted([*templates_dir.rglob("*.mjml"), *templates_dir.rglob("*.txt")]):
        rel = path.relative_to(templates_dir)
        if rel.parts[0] in (LOCALES_DIR, "_samples"):
            continue
        source = strip_compile_time_comments(path.read_text(encoding="utf-8"))
        try:
            extracted = list(env.extract_translations(source))  # type: ignore[attr-defined]
        except TemplateSyntaxError:
            continue
        for line, _function, message in extracted:
            if isinstance(message, str):
                found.append(ExtractedMessage(str(path), line, message, None))
            elif isinstance(message, tuple) and message and isinstance(message[0], str):
                plural = message[1] if len(message) > 1 and isinstance(message[1], str) else None
                found.append(ExtractedMessage(str(path), line, message[0], plural))
    return found


class _FoldTranslations(NodeTransformer):
    """Turns ``gettext("…")`` / ``_("…")`` / ``ngettext("…", "…", n)`` calls with literal
    msgids (what ``{% trans %}`` blocks compile to) into the translated text.

    Same result as Jinja's newstyle gettext — translation marked safe when autoescaping, then
    ``% variables`` so personal data is escaped — without two sandboxed calls per message.
    """

    def __init__(self, translations: Any, plural_filter: str) -> None:
        self.translations = translations
        self.plural_filter = plural_filter

    def visit_Call(self, call: nodes.Call) -> nodes.Node:  # noqa: N802 (Jinja's visitor names)
        node = self.generic_visit(call)
        if not (
            isinstance(node, nodes.Call)
            and isinstance(node.node, nodes.Name)
            and node.dyn_args is None
            and node.dyn_kwargs is None
        ):
            return node
        literals = [a.value for a in node.args[:2] if isinstance(a, nodes.Const)]
        if not literals or not all(isinstance(x, str) for x in literals):
            return node
        name, args = node.node.name, node.args
        variables = [nodes.Pair(nodes.Const(k.key), k.value) for k in node.kwargs]
        if name in ("_", "gettext") and len(args) == 1:
            translated = str(self.translations.gettext(literals[0]))
            if not variables:
                try:
                    constant: nodes.Expr = nodes.Const(translated % {})
                except (KeyError, ValueError, TypeError):
                    return node  # a broken format: let it fail at send time, as Jinja would
                return nodes.MarkSafeIfAutoescape(constant, lineno=node.lineno)
            text: nodes.Expr = nodes.MarkSafeIfAutoescape(nodes.Const(translated))
        elif name == "ngettext" and len(args) == 3 and len(literals) == 2:
            # One filter call evaluates the count once: ``{% trans count=cart['items'] |
            # sum(attribute='quantity') %}`` repeats the expression as ngettext's argument,
            # as ``count`` and as ``num``, and it ran three times per message.
            count = args[2]
            bound = [k.key for k in node.kwargs if k.value == count]
            if not any(k.key == "num" for k in node.kwargs):
                bound.append("num")
            others = [
                nodes.Pair(nodes.Const(k.key), k.value) for k in node.kwargs if k.key not in bound
            ]
            folded_plural = nodes.Filter(
                count,
                self.plural_filter,
                [*args[:2], nodes.Dict(others), nodes.Const(tuple(bound))],
                [],
                None,
                None,
            )
            folded_plural.set_lineno(node.lineno)
            return folded_plural
        else:
            return node
        folded = nodes.Mod(text, nodes.Dict(variables))
        folded.set_lineno(node.lineno)
        return folded


_TRANSLATION_NAMES = frozenset({"_", "gettext", "ngettext"})


def fold_translations(
    template: nodes.Template, environment: Environment, translations: Any, plural_filter: str
) -> nodes.Template:
    """Resolve the literal translations in a parsed template for one language, in place.

    ``plural_filter`` names a filter of ``environment`` taking ``(n, singular, plural,
    variables, names)`` and returning the catalog's form for ``n`` (marked safe when
    autoescaping) ``%`` the variables, with each of ``names`` bound to ``n``. A template that
    assigns ``_``, ``gettext`` or ``ngettext`` itself is left alone.
    """
    for name in template.find_all(nodes.Name):
        if name.ctx != "load" and name.name in _TRANSLATION_NAMES:
            return template
    folded = _FoldTranslations(translations, plural_filter).visit(template)
    assert isinstance(folded, nodes.Template)
    folded.set_environment(environment)
    return folded
