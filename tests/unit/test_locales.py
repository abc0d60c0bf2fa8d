"""Languages: catalogs, the contact → workflow → English fallback, and the per-language cache."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime
from decimal import Decimal
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering import layout as layout_module
from remarket_mailer.rendering.errors import TemplateSourceError
from remarket_mailer.rendering.locales import catalog_files, load_catalogs, resolve_locale
from remarket_mailer.rendering.renderer import Renderer, available_languages

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
LANGUAGES = ("en", "it", "nb", "nl", "ru", "vi")


def context(
    locale: str | None = "nl", first_name: str | None = "Ann", **changes: Any
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "shop": {
            "name": "Demo Shop",
            "address": "Main St 1",
            "url": "https://shop.example",
            "placeholder_image": "https://shop.example/p.png",
        },
        "contact": {"first_name": first_name, "locale": locale, "timezone": "Europe/Amsterdam"},
        "cart": {
            "items": [
                {
                    "name": "Mug",
                    "quantity": 2,
                    "unit_price": Decimal("12.50"),
                    "url": "https://shop.example/m",
                    "image_url": None,
                },
                {
                    "name": "Tea",
                    "quantity": 1,
                    "unit_price": Decimal("49.50"),
                    "url": "/products/tea",
                    "image_url": None,
                },
            ],
            "total": Decimal("74.50"),
            "currency": "EUR",
            "checkout_url": "https://shop.example/checkout",
        },
        "discount": {
            "code": "CART-AAAAA-CCCCC",
            "label": "10%",
            "expires_at": datetime(2026, 11, 9, 9, tzinfo=UTC),
        },
        "links": {
            "unsubscribe": "https://mail.example/u/tok",
            "preferences": "https://mail.example/p",
        },
        "workflow": {"id": "abandoned_cart"},
        "step": {"id": "reminder_2"},
    }
    base.update(changes)
    return base


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES, languages=LANGUAGES)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES, copy)
    return copy


# -- choosing the language -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "fallback", "expected"),
    [
        ("nl", None, "nl"),
        ("nl-NL", None, "nl"),
        ("nl_BE", None, "nl"),
        ("NL-nl", None, "nl"),
        ("nb-NO", None, "nb"),
        ("no", None, "nb"),
        ("nn-NO", None, "nb"),
        ("ru-RU", "it", "ru"),
        ("de-DE", "it", "it"),
        ("de-DE", "it-IT", "it"),
        ("de-DE", None, "en"),
        (None, None, "en"),
        ("", "vi", "vi"),
        ("../../etc/passwd", None, "en"),
        ("pt-BR", None, "pt_BR"),
        ("pt-PT", None, "pt"),
    ],
)
def test_language_falls_back_contact_then_workflow_then_english(
    requested: str | None, fallback: str | None, expected: str
) -> None:
    available = (*LANGUAGES, "pt_BR", "pt")
    assert resolve_locale(available, requested, fallback) == expected


def test_stock_catalogs_are_the_five_languages() -> None:
    assert sorted(catalog_files(TEMPLATES)) == ["it", "nb", "nl", "ru", "vi"]
    assert available_languages(TEMPLATES) == LANGUAGES


def test_languages_are_switched_on_explicitly() -> None:
    english_only = Renderer(TEMPLATES)
    email = english_only.render("abandoned_cart/reminder_1", context("nl"))
    assert email.locale == "en"
    assert email.subject == "Ann, you left something in your cart"


# -- translated output -----------------------------------------------------------------------

SUBJECTS = {
    "en": "Ann, you left something in your cart",
    "nl": "Ann, je hebt iets in je winkelwagen laten liggen",
    "it": "Ann, hai dimenticato qualcosa nel carrello",
    "ru": "Ann, вы кое-что оставили в корзине",
    "nb": "Ann, du har glemt noe i handlekurven",
    "vi": "Ann, bạn còn để quên sản phẩm trong giỏ hàng",
}
UNSUBSCRIBE = {
    "en": "Unsubscribe",
    "nl": "Afmelden",
    "it": "Annulla l'iscrizione",
    "ru": "Отписаться",
    "nb": "Meld deg av",
    "vi": "Hủy đăng ký",
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_contact_gets_their_language_everywhere(renderer: Renderer, language: str) -> None:
    email = renderer.render("abandoned_cart/reminder_1", context(f"{language}-XX"))
    assert email.locale == language
    assert email.subject == SUBJECTS[language]
    assert f'lang="{language}"' in email.html
    # HTML goes out in ASCII, its other characters as references (test_renderer.py), the
    # translations folded in when the template compiled included.
    assert email.html.isascii()
    assert f">{UNSUBSCRIBE[language]}</a>" in unescape(email.html)
    assert (
        UNSUBSCRIBE[language].replace("&#39;", "'") + ": https://mail.example/u/tok" in email.text
    )
    assert "{%" not in email.html and "{{" not in email.text


@pytest.mark.parametrize("name", ["reminder_1", "reminder_2", "last_chance"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_stock_template_in_every_language(
    renderer: Renderer, name: str, language: str
) -> None:
    for first_name in ("Ann", None):
        for discount in (context()["discount"], None):
            ctx = context(language, first_name, discount=discount)
            email = renderer.render(f"abandoned_cart/{name}", ctx)
            assert email.subject and email.preheader
            assert ("Ann" in email.subject) == (first_name is not None)
            assert "https://mail.example/u/tok" in email.text


def test_subject_and_preheader_are_translated(renderer: Renderer) -> None:
    email = renderer.render("abandoned_cart/last_chance", context("it"))
    assert email.subject == "Ann, ultima occasione: 10% di sconto prima che scada"
    assert email.preheader == "Il tuo codice personale scade a breve."
    assert "Il tuo codice personale scade a breve." in email.html


def test_money_and_dates_follow_the_contact_locale(renderer: Renderer) -> None:
    dutch = renderer.render("abandoned_cart/reminder_2", context("nl-NL"))
    assert "Totaal: €\xa074,50" in dutch.text
    assert "geldig tot 09-11-2026, 10:00" in dutch.text  # Amsterdam time, Dutch format
    russian = renderer.render("abandoned_cart/reminder_2", context("ru"))
    assert "Итого: 74,50\xa0€" in russian.text
    assert "действует до 09.11.2026, 10:00" in russian.text


@pytest.mark.parametrize(
    ("count", "sentence"),
    [
        (1, "остался 1 товар."),
        (2, "осталось 2 товара."),
        (4, "осталось 4 товара."),
        (5, "осталось 5 товаров."),
        (11, "осталось 11 товаров."),
        (21, "остался 21 товар."),
        (22, "осталось 22 товара."),
        (25, "осталось 25 товаров."),
    ],
)
def test_russian_plural_forms(renderer: Renderer, count: int, sentence: str) -> None:
    ctx = context("ru")
    ctx["cart"]["items"] = [{**ctx["cart"]["items"][0], "quantity": count}]
    email = renderer.render("abandoned_cart/reminder_1", ctx)
    assert f"В вашей корзине {sentence}" in email.text
    assert f"В вашей корзине {sentence}" in unescape(email.html)


@pytest.mark.parametrize(("count", "word"), [(1, "item"), (2, "items")])
def test_english_plural(renderer: Renderer, count: int, word: str) -> None:
    ctx = context("en")
    ctx["cart"]["items"] = [{**ctx["cart"]["items"][0], "quantity": count}]
    email = renderer.render("abandoned_cart/reminder_1", ctx)
    assert f"You left {count} {word} in your cart." in email.text


def test_workflow_default_language(renderer: Renderer) -> None:
    ctx = context("de-DE", workflow={"id": "abandoned_cart", "locale": "vi"})
    assert renderer.render("abandoned_cart/reminder_1", ctx).locale == "vi"
    ctx = context("nl", workflow={"id": "abandoned_cart", "locale": "vi"})
    assert renderer.render("abandoned_cart/reminder_1", ctx).locale == "nl"


def test_explicit_locale_argument_wins(renderer: Renderer) -> None:
    email = renderer.render("abandoned_cart/reminder_1", context("nl"), locale="nb")
    assert email.locale == "nb"
    assert email.subject == SUBJECTS["nb"]


def test_translations_escape_personal_data(renderer: Renderer) -> None:
    email = renderer.render("abandoned_cart/reminder_1", context("nl", "<b>Ann</b>"))
    assert "<b>Ann</b>" not in email.html
    assert "Hoi &lt;b&gt;Ann&lt;/b&gt;," in email.html
    assert email.subject == "<b>Ann</b>, je hebt iets in je winkelwagen laten liggen"


# -- catalogs --------------------------------------------------------------------------------


def test_stock_catalogs_translate_every_message() -> None:
    for locale, loaded in load_catalogs(TEMPLATES).items():
        for message in loaded.catalog:
            if not message.id:
                continue
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(strings), f"{locale}: {message.id!r} untranslated"
            assert not message.fuzzy


def test_a_requested_language_without_catalog_is_an_error() -> None:
    with pytest.raises(TemplateSourceError, match="no catalog for language 'de'"):
        Renderer(TEMPLATES, languages=["de"])


def test_an_invalid_po_file_names_its_line(templates: Path) -> None:
    po = templates / "_locales" / "nl" / "LC_MESSAGES" / "messages.po"
    lines = po.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith('msgid "Unsubscribe"'))
    lines.insert(at, "this is not a keyword")
    po.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(TemplateSourceError) as caught:
        Renderer(templates, languages=["nl"])
    assert caught.value.file == str(po)
    assert caught.value.line == at + 1


# -- compile once, per language, and notice edits --------------------------------------------


def test_compiled_once_per_template_and_language(templates: Path) -> None:
    renderer = Renderer(templates, languages=LANGUAGES)
    dutch = renderer.compiled("abandoned_cart/reminder_1", "nl")
    assert renderer.compiled("abandoned_cart/reminder_1", "nl") is dutch
    assert renderer.compiled("abandoned_cart/reminder_1", "ru") is not dutch
    assert renderer.render("abandoned_cart/reminder_1", context("nl-BE")).locale == "nl"
    assert renderer.compiled("abandoned_cart/reminder_1", "nl") is dutch


def test_mjml_compiles_once_even_from_many_threads(
    templates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = layout_module.mjml.mjml2html

    def counting(source: str, **kwargs: Any) -> str:
        calls.append(source)
        return str(real(source, **kwargs))

    monkeypatch.setattr(layout_module.mjml, "mjml2html", counting)
    renderer = Renderer(templates, languages=LANGUAGES)
    errors: list[BaseException] = []

    def work(locale: str) -> None:
        try:
            for _ in range(20):
                renderer.render("abandoned_cart/reminder_2", context(locale))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(x,)) for x in LANGUAGES * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # One MJML compile in all: not per thread or send, and the languages share the laid-out MJML.
    assert len(calls) == 1
    assert {renderer.compiled("abandoned_cart/reminder_2", x).locale for x in LANGUAGES} == set(
        LANGUAGES
    )


def test_an_edited_template_is_recompiled_after_refresh(templates: Path) -> None:
    renderer = Renderer(templates, languages=LANGUAGES)
    before = renderer.compiled("abandoned_cart/reminder_1", "nl")
    footer = templates / "_partials" / "footer.mjml"
    footer.write_text(footer.read_text().replace("{{ shop.address }}", "{{ shop.address }} (NL)"))
    assert renderer.compiled("abandoned_cart/reminder_1", "nl") is before  # not until refresh
    assert renderer.refresh() == ["abandoned_cart/reminder_1"]
    after = renderer.compiled("abandoned_cart/reminder_1", "nl")
    assert after is not before and after.content_hash != before.content_hash
    assert "Main St 1 (NL)" in renderer.render("abandoned_cart/reminder_1", context("nl")).html


def test_a_touched_but_unchanged_file_keeps_its_compiled_template(templates: Path) -> None:
    renderer = Renderer(templates)
    before = renderer.compiled("abandoned_cart/reminder_1")
    layout = templates / "_layouts" / "base.mjml"
    layout.write_text(layout.read_text() + "")
    import os

    os.utime(layout, ns=(1, 1))
    assert renderer.refresh() == []
    assert renderer.compiled("abandoned_cart/reminder_1").content_hash == before.content_hash


def test_an_edited_catalog_is_reloaded(templates: Path) -> None:
    renderer = Renderer(templates, languages=["nl"], reload_after=0)
    assert renderer.render("abandoned_cart/reminder_1", context("nl")).html.count(">Afmelden<") == 1
    po = templates / "_locales" / "nl" / "LC_MESSAGES" / "messages.po"
    po.write_text(po.read_text(encoding="utf-8").replace('"Afmelden"', '"Uitschrijven"'))
    assert ">Uitschrijven<" in renderer.render("abandoned_cart/reminder_1", context("nl")).html


def test_clear_forgets_everything(templates: Path) -> None:
    renderer = Renderer(templates)
    before = renderer.compiled("abandoned_cart/reminder_1")
    renderer.clear()
    assert renderer.compiled("abandoned_cart/reminder_1") is not before


def test_a_missing_template_is_a_template_error(renderer: Renderer) -> None:
    with pytest.raises(TemplateError, match="template file not found"):
        renderer.render("abandoned_cart/nope", context())


def test_a_fixed_template_error_is_picked_up_after_refresh(templates: Path) -> None:
    renderer = Renderer(templates)
    file = templates / "abandoned_cart" / "reminder_1.txt"
    good = file.read_text()
    file.write_text(good.replace("{{ cart.checkout_url", "{{ cart.checkout_url }"))
    with pytest.raises(TemplateSourceError, match="syntax error"):
        renderer.render("abandoned_cart/reminder_1", context("en"))
    file.write_text(good)
    renderer.refresh()
    assert renderer.render("abandoned_cart/reminder_1", context("en")).subject == SUBJECTS["en"]
