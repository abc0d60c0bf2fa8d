"""The recipient-facing pages (templates/_pages): translated in every language the emails
are, branded from the email layout, escaped, and clear about bad links."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from jinja2 import Environment

from remarket_mailer.entrypoints.link_pages import browser_language
from remarket_mailer.errors import ConfigError
from remarket_mailer.rendering.lint import lint_templates
from remarket_mailer.rendering.locales import catalog_files
from remarket_mailer.rendering.pages import (
    PAGES_DIR,
    PageRenderer,
    layout_colours,
    pages_catalog_path,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
LANGUAGES = sorted(catalog_files(TEMPLATES))
SHOP = {"name": "Demo Shop", "address": "Street 1", "url": "https://shop.example"}


def _page_msgids() -> set[str]:
    env = Environment(extensions=["jinja2.ext.i18n"])
    found: set[str] = set()
    for path in (TEMPLATES / PAGES_DIR).glob("*.html.j2"):
        for _line, _function, message in env.extract_translations(path.read_text("utf-8")):  # type: ignore[attr-defined]
            found.add(message if isinstance(message, str) else message[0])
    return found


def test_the_pages_ship_in_the_six_languages_of_the_emails() -> None:
    assert ["en", *LANGUAGES] == ["en", "it", "nb", "nl", "ru", "vi"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_page_string_is_translated(language: str) -> None:
    msgids = _page_msgids()
    assert {"Email preferences", "Unsubscribe from all email", "Link not valid"} <= msgids
    path = pages_catalog_path(TEMPLATES, language)
    catalog = read_po(path.open(encoding="utf-8"), locale=language)
    translated = {m.id: m.string for m in catalog if m.id and not m.fuzzy and m.string}
    assert msgids - set(translated) == set(), f"untranslated in {path}"
    assert set(translated) - msgids == set(), f"unused entries in {path}"
    assert [(m.id, errors) for m, errors in catalog.check()] == []
    for msgid, text in translated.items():
        assert re.findall(r"%\((\w+)\)s", msgid) == re.findall(r"%\((\w+)\)s", text), msgid


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_english_is_left_on_a_translated_page(language: str) -> None:
    pages = PageRenderer(TEMPLATES, LANGUAGES, SHOP)
    topics = [{"value": "marketing", "checked": True}, {"value": "service", "checked": False}]
    shown = [
        pages.render("unsubscribe", language, view="choose", topics=topics),
        pages.render("unsubscribe", language, view="done", everything=False, topics=["service"]),
        pages.render("unsubscribe", language, view="done", everything=True, topics=[]),
        pages.render("unsubscribe", language, view="done", everything=False, topics=[]),
        pages.render("invalid_link", language, problem="this unsubscribe link has expired"),
    ]
    # Every literal piece of the English strings (around their placeholders), long enough
    # not to be a word the languages share ("Email: …" is Italian and Vietnamese too).
    pieces = {p.strip() for m in _page_msgids() for p in re.split(r"%\(\w+\)s", m)}
    english = {p for p in pieces if len(p) >= 8} | {"Unsubscribe", "email again"}
    for html in shown:
        assert f'<html lang="{language}"' in html
        main = html[html.index("<main>") : html.index("</main>")]
        visible = re.sub(r"<[^>]*>", " ", main)  # form values stay category names
        for text in english:
            assert text not in visible, (language, text)


def test_a_known_link_problem_is_translated_and_an_unknown_one_escaped() -> None:
    pages = PageRenderer(TEMPLATES, LANGUAGES, SHOP)
    expired = pages.render("invalid_link", "nl", problem="this unsubscribe link has expired")
    assert "Deze afmeldlink is verlopen." in expired and "<h1>Link niet geldig</h1>" in expired
    odd = pages.render("invalid_link", None, problem="<script>alert(1)</script>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in odd and "<script>" not in odd


def test_a_topic_outside_the_stock_ones_is_shown_escaped_as_written() -> None:
    pages = PageRenderer(TEMPLATES, LANGUAGES, SHOP)
    html = pages.render(
        "unsubscribe", "ru", view="choose", topics=[{"value": "news<&>", "checked": False}]
    )
    assert 'value="news&lt;&amp;&gt;"' in html and "Письма: news&lt;&amp;&gt;" in html


def test_the_colours_come_from_the_email_layout() -> None:
    stock = layout_colours((TEMPLATES / "_layouts" / "base.mjml").read_text("utf-8"))
    assert stock == {
        "accent": "#1f6feb",
        "accent_text": "#ffffff",
        "text": "#1f2933",
        "background": "#f4f5f7",
        "font": "Helvetica, Arial, sans-serif",
    }
    recoloured = layout_colours(
        "<mj-attributes><mj-all font-family=\"'Fira Sans', sans-serif\" />"
        '<mj-text color="#000" /><mj-button background-color="#c0ffee" color="#111111" />'
        '</mj-attributes></mj-head><mj-body background-color="#abcdef">'
        '<mj-button background-color="#ff0000">x</mj-button>'
    )
    assert recoloured == {
        "accent": "#c0ffee",  # the default in mj-attributes, not one button's own colour
        "accent_text": "#111111",
        "text": "#000",
        "background": "#abcdef",
        "font": "'Fira Sans', sans-serif",
    }


def test_a_colour_that_is_not_a_plain_value_is_ignored() -> None:
    hostile = layout_colours(
        '<mj-attributes><mj-button background-color="red;}</style><script>x()</script>" />'
        '<mj-all font-family="a;} body{display:none" /></mj-attributes>'
    )
    assert hostile["accent"] == "#1f6feb" and hostile["font"] == "Helvetica, Arial, sans-serif"


def test_templates_without_pages_are_refused_with_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"_pages/base.html.j2 not found"):
        PageRenderer(tmp_path, ["en"], SHOP)


def test_the_browser_language_is_picked_by_weight_among_the_page_languages() -> None:
    pages = PageRenderer(TEMPLATES, LANGUAGES, SHOP)
    assert browser_language(pages, "fr-FR, ru;q=0.8, nl;q=0.9") == "nl"
    assert browser_language(pages, "en-GB,nl;q=0.5") == "en"
    assert browser_language(pages, "de, fr;q=0.5") is None
    assert browser_language(pages, "nl;q=oops, *;q=0.1") is None
    assert browser_language(pages, "") is None


def test_lint_reports_a_page_that_breaks_and_a_string_left_untranslated(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    page = templates / PAGES_DIR / "unsubscribe.html.j2"
    page.write_text(
        page.read_text("utf-8").replace(
            "{% if everything %}",
            "{{ _('Done and dusted') }}{{ contact.first_name }}\n{% if everything %}",
        ),
        "utf-8",
    )
    messages = [str(p) for p in lint_templates(templates)]
    assert any(f"{page}" in m and "'contact' is undefined" in m for m in messages), messages
    for language in ("it", "nb", "nl", "ru", "vi"):
        assert any(f"no {language} translation for 'Done and dusted'" in m for m in messages), (
            language
        )
    assert lint_templates(TEMPLATES) == []
