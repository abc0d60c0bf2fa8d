"""Web pages a recipient opens from an email (the unsubscribe and preference page), rendered
from ``<templates>/_pages/*.html.j2`` in the contact's language and with the emails' brand.

Layout: ``_pages/base.html.j2`` is the frame (shop name or logo, colours, footer);
``_pages/unsubscribe.html.j2`` extends it. Translations are a gettext catalog of their own
beside the emails' one, ``_locales/<lang>/LC_MESSAGES/pages.po``: the page's strings change
with the code, the emails' with the marketing copy, and neither file then churns the other.

The brand is the one the emails use: the shop's name, address and URL are the same settings
(``REMARKET_SHOP_*``, what templates see as ``shop``), and the colours and font are read from
the ``<mj-attributes>`` and ``<mj-body>`` of ``_layouts/base.mjml``, so a shop that recolours
its emails recolours this page with the same edit. A value that is not a plain colour or font
list is ignored for the default (it lands in a ``<style>`` block, where HTML escaping does not
protect).

Pages render in a sandbox with autoescaping: personal data and workflow names are escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.lists import format_list
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from remarket_mailer.errors import ConfigError
from remarket_mailer.rendering import filters
from remarket_mailer.rendering.errors import TemplateSourceError
from remarket_mailer.rendering.locales import (
    LOCALES_DIR,
    SOURCE_LOCALE,
    compile_catalog,
    resolve_locale,
)

PAGES_DIR = "_pages"
PAGES_DOMAIN = "pages"
LAYOUT = "_layouts/base.mjml"


@dataclass(frozen=True, slots=True)
class Brand:
    """What the page shows of the shop, from the settings and the email layout."""

    name: str
    address: str
    url: str
    logo_url: str
    accent: str
    """Buttons and links (the emails' ``mj-button`` background)."""
    accent_text: str
    """Text on buttons (the emails' ``mj-button`` color)."""
    text: str
    """Body text (the emails' ``mj-text`` color)."""
    background: str
    """Page background (the emails' ``mj-body`` background)."""
    font: str


_DEFAULT_COLOURS = {
    "accent": "#1f6feb",
    "accent_text": "#ffffff",
    "text": "#1f2933",
    "background": "#f4f5f7",
    "font": "Helvetica, Arial, sans-serif",
}
_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_FONT = re.compile(r"^[A-Za-z0-9 ,'\"-]{1,200}$")
_TAG = re.compile(r"<(mj-[a-z]+)\b([^>]*)>")
_ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')


def layout_colours(mjml: str) -> dict[str, str]:
    """The page colours and font found in an MJML layout's source, defaults for the rest.

    Reads ``mj-button`` (background-color, color) and ``mj-text`` (color) from inside
    ``<mj-attributes>``, ``mj-all`` (font-family) and ``mj-body`` (background-color). Pure;
    never raises.
    """
    found = dict(_DEFAULT_COLOURS)
    wanted = {
        ("mj-button", "background-color"): "accent",
        ("mj-button", "color"): "accent_text",
        ("mj-text", "color"): "text",
        ("mj-body", "background-color"): "background",
        ("mj-all", "font-family"): "font",
    }
    head, _, body = mjml.partition("</mj-attributes>")
    defaults = head.rpartition("<mj-attributes>")[2] if "<mj-attributes>" in head else ""
    for source, tags in ((defaults, ("mj-button", "mj-text", "mj-all")), (body, ("mj-body",))):
        for match in _TAG.finditer(source):
            tag = match.group(1)
            if tag not in tags:
                continue
            for name, value in _ATTRIBUTE.findall(match.group(2)):
                key = wanted.get((tag, name))
                check = _FONT if key == "font" else _COLOUR
                if key is not None and check.match(value.strip()):
                    found[key] = value.strip()
            if tag == "mj-body":
                break
    return found


def load_brand(templates_dir: Path, shop: Mapping[str, str]) -> Brand:
    """The brand of the emails under ``templates_dir`` for ``shop`` (the ``shop`` context)."""
    layout = templates_dir / LAYOUT
    try:
        colours = layout_colours(layout.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        colours = dict(_DEFAULT_COLOURS)
    return Brand(
        name=shop.get("name", ""),
        address=shop.get("address", ""),
        url=shop.get("url", ""),
        logo_url=shop.get("logo_url", ""),
        **colours,
    )


class PageRenderer:
    """Renders the recipient-facing pages of ``templates_dir`` in ``languages``.

    Raises ConfigError when ``templates_dir`` has no ``_pages`` folder, and TemplateSourceError
    for an invalid ``pages.po``. A language without a ``pages.po`` shows the English text.
    """

    def __init__(
        self, templates_dir: Path, languages: Iterable[str], shop: Mapping[str, str]
    ) -> None:
        pages = templates_dir / PAGES_DIR
        if not (pages / "base.html.j2").is_file():
            raise ConfigError(
                f"{pages}/base.html.j2 not found: the unsubscribe page is rendered from "
                f"{pages}/ (copy the folder from this release's templates/ directory, or set "
                "REMARKET_TEMPLATES_DIR)"
            )
        self.templates_dir = templates_dir
        self.brand = load_brand(templates_dir, shop)
        self.languages = tuple(dict.fromkeys([SOURCE_LOCALE, *languages]))
        self._environments = {
            language: self._environment(pages, language) for language in self.languages
        }

    def language(self, requested: str | None) -> str:
        """The language a contact with locale ``requested`` reads the page in (English
        when theirs is not one of the languages)."""
        return resolve_locale(self.languages, requested)

    def render(self, page: str, locale: str | None, **context: Any) -> str:
        """``_pages/<page>.html.j2`` in the language for ``locale``; ``context`` is escaped."""
        language = self.language(locale)
        tag, direction = filters.language_tag(language)
        template = self._environments[language].get_template(f"{page}.html.j2")
        return template.render(brand=self.brand, lang=tag, dir=direction, **context)

    def _environment(self, pages: Path, language: str) -> ImmutableSandboxedEnvironment:
        environment = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(pages),
            autoescape=True,
            undefined=StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        translations = self._translations(language)
        if translations is None:
            environment.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
        else:
            environment.install_gettext_translations(  # type: ignore[attr-defined]
                translations, newstyle=True
            )
        environment.filters["or_list"] = lambda items: format_list(
            list(items), style="or", locale=filters.locale_of(language)
        )
        return environment

    def _translations(self, language: str) -> Translations | None:
        if language == SOURCE_LOCALE:
            return None
        path = pages_catalog_path(self.templates_dir, language)
        if not path.is_file():
            return None
        return compile_catalog(path.read_text(encoding="utf-8"), language, path).translations


def pages_catalog_path(templates_dir: Path, language: str) -> Path:
    """Where the pages' translations into ``language`` live."""
    return templates_dir / LOCALES_DIR / language / "LC_MESSAGES" / f"{PAGES_DOMAIN}.po"


# What the routes give each page, in every shape they give it: lint renders them all.
PAGE_CONTEXTS: dict[str, list[dict[str, Any]]] = {
    "unsubscribe": [
        {
            "view": "choose",
            "topics": [
                {"value": "marketing", "checked": True},
                {"value": "service", "checked": False},
            ],
        },
        {"view": "done", "everything": False, "topics": ["marketing", "service"]},
        {"view": "done", "everything": True, "topics": []},
        {"view": "done", "everything": False, "topics": []},
    ],
    "invalid_link": [{"problem": "this unsubscribe link is not valid"}],
}
_LINT_SHOP = {"name": "Shop", "address": "Street 1", "url": "https://shop.example"}


def page_problems(
    templates_dir: Path, languages: Iterable[str]
) -> list[tuple[str, int | None, str]]:
    """(file, line, message) for each problem of the pages under ``templates_dir``: a page
    that does not render in a language with what the routes give it, a string without a
    translation. None when there is no ``_pages`` folder (the API refuses to start then)."""
    pages = templates_dir / PAGES_DIR
    if not pages.is_dir():
        return []
    try:
        renderer = PageRenderer(templates_dir, languages, _LINT_SHOP)
    except (ConfigError, TemplateSourceError) as exc:
        return [(str(pages), None, str(exc))]
    problems: list[tuple[str, int | None, str]] = []
    for page, contexts in PAGE_CONTEXTS.items():
        path = str(pages / f"{page}.html.j2")
        for language in renderer.languages:
            for context in contexts:
                try:
                    renderer.render(page, language, **context)
                except JinjaTemplateError as exc:
                    line = getattr(exc, "lineno", None)
                    problems.append((path, line, f"{exc} [language {language}]"))
    problems.extend(_untranslated(templates_dir, renderer.languages))
    return problems


def _untranslated(
    templates_dir: Path, languages: Iterable[str]
) -> list[tuple[str, int | None, str]]:
    extractor = Environment(extensions=["jinja2.ext.i18n"])
    used: list[tuple[str, int, str]] = []
    for path in sorted((templates_dir / PAGES_DIR).glob("*.html.j2")):
        try:
            found = extractor.extract_translations(path.read_text(encoding="utf-8"))  # type: ignore[attr-defined]
            for line, _function, message in found:
                msgid = message if isinstance(message, str) else message[0]
                used.append((str(path), line, msgid))
        except JinjaTemplateError:
            continue  # reported when it is rendered
    problems: list[tuple[str, int | None, str]] = []
    for language in languages:
        if language == SOURCE_LOCALE:
            continue
        po = pages_catalog_path(templates_dir, language)
        if not po.is_file():
            problems.append((str(po), None, f"missing: the pages show in English to {language}"))
            continue
        catalog = compile_catalog(po.read_text(encoding="utf-8"), language, po).catalog
        for file, line, msgid in used:
            entry = catalog.get(msgid)
            if entry is None or entry.fuzzy or not entry.string:
                problems.append(
                    (file, line, f"no {language} translation for {msgid!r} (add it to {po})")
                )
    return problems
