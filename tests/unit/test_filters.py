"""Filters: Babel money/dates per locale and zone, plurals, and utm links made absolute."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.numbers import format_currency
from hypothesis import given, settings
from hypothesis import strategies as st

from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering import dates, filters, utm
from remarket_mailer.rendering.renderer import Renderer

LOCALES = ["en", "en_US", "en_GB", "nl", "nl_BE", "it", "ru", "nb", "vi", "de_CH", "fr", "hi_IN"]
CURRENCIES = ["EUR", "USD", "JPY", "RUB", "NOK", "VND", "GBP", "CHF", "INR", "BHD"]


@settings(max_examples=400, deadline=None)
@given(
    amount=st.decimals(min_value=-(10**9), max_value=10**12, places=4, allow_nan=False),
    locale=st.sampled_from(LOCALES),
    currency=st.sampled_from(CURRENCIES),
)
def test_money_matches_babel_exactly(amount: Decimal, locale: str, currency: str) -> None:
    assert filters.money(amount, currency, locale) == format_currency(
        amount, currency, locale=locale
    )


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        ("42.5", "EUR", "nl", "€\xa042,50"),
        (42.5, "EUR", "nl-NL", "€\xa042,50"),
        (Decimal("1234.5"), "EUR", "ru", "1\xa0234,50\xa0€"),
        ("1234.5", "USD", "en-US", "$1,234.50"),
        ("1234", "JPY", "en", "¥1,234"),
        ("99", "NOK", "nb", "99,00\xa0kr"),
        ("250000", "VND", "vi", "250.000\xa0₫"),
        ("12.5", "EUR", None, "€12.50"),
        ("12.5", "EUR", "xx-nonsense", "€12.50"),
        ("not a number", "EUR", "nl", "not a number"),
    ],
)
def test_money(amount: object, currency: str, locale: str | None, expected: str) -> None:
    assert filters.money(amount, currency, locale) == expected


def test_dates_in_the_contacts_zone_and_language() -> None:
    moment = datetime(2026, 11, 9, 23, 30, tzinfo=UTC)
    assert dates.date(moment, "nl", "Europe/Amsterdam", "long") == "10 november 2026"
    assert dates.date(moment, "en", "America/New_York", "long") == "November 9, 2026"
    assert dates.datetime_(moment, "ru", "Europe/Moscow", "short") == "10.11.2026, 02:30"
    assert dates.datetime_("2026-11-09T23:30:00+00:00", "it", "Nowhere/Else", "short") == (
        "09/11/26, 23:30"
    )


@pytest.mark.parametrize(
    ("count", "expected"),
    [(1, "товар"), (3, "товара"), (5, "товаров"), (21, "товар"), (12, "товаров")],
)
def test_plural_uses_the_cldr_rule_of_the_locale(count: int, expected: str) -> None:
    word = filters.plural(count, "товар", "товара", few="товара", many="товаров", locale="ru")
    assert word == expected


def test_plural_falls_back_to_other() -> None:
    assert filters.plural(1, "item", "items", locale="en") == "item"
    assert filters.plural(0, "item", "items", locale="en") == "items"
    assert filters.plural(5, "item", "items", locale="ru") == "items"


def test_utm_adds_parameters_once() -> None:
    url = utm.with_utm("https://s.example/c?x=1&utm_source=shop", "abandoned_cart", "reminder_1")
    assert url == (
        "https://s.example/c?x=1&utm_source=shop&utm_medium=email"
        "&utm_campaign=abandoned_cart&utm_content=reminder_1"
    )


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("/products/mug", "https://shop.example/products/mug"),
        ("products/mug", "https://shop.example/shop/products/mug"),
        ("//cdn.example/x", "https://cdn.example/x"),
        ("https://other.example/y", "https://other.example/y"),
    ],
)
def test_utm_makes_relative_links_absolute(link: str, expected: str) -> None:
    url = utm.with_utm(link, "wf", "step", base="https://shop.example/shop/")
    assert url.startswith(expected + "?utm_source=remarket")


def test_utm_refuses_a_relative_link_without_a_shop_url() -> None:
    with pytest.raises(ValueError, match="needs shop.url"):
        utm.with_utm("/products/mug", "wf")


def _template(root: Path, body: str, text: str) -> None:
    (root / "t").mkdir()
    (root / "t" / "a.mjml").write_text(
        "---\nsubject: s\n---\n<mjml><mj-body><mj-section><mj-column>"
        f'<mj-button href="{body}">Go</mj-button></mj-column></mj-section></mj-body></mjml>'
    )
    (root / "t" / "a.txt").write_text(text)


def test_utm_filter_uses_workflow_step_and_shop_url_from_the_context(tmp_path: Path) -> None:
    _template(tmp_path, "{{ '/p/mug' | utm }}", "{{ '/p/mug' | utm('spring') }}")
    context = {
        "shop": {"url": "https://shop.example"},
        "workflow": {"id": "win_back"},
        "step": {"id": "miss_you"},
    }
    email = Renderer(tmp_path).render("t/a", context)
    assert (
        'href="https://shop.example/p/mug?utm_source=remarket&amp;utm_medium=email'
        '&amp;utm_campaign=win_back&amp;utm_content=miss_you"'
    ) in email.html
    assert email.text == (
        "https://shop.example/p/mug?utm_source=remarket&utm_medium=email"
        "&utm_campaign=spring&utm_content=miss_you"
    )
    with pytest.raises(TemplateError, match="needs shop.url"):
        Renderer(tmp_path).render("t/a", {**context, "shop": {}})


def test_filters_default_to_the_language_of_the_email(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.mjml").write_text(
        "---\nsubject: \"{{ 5 | plural('товар', 'товара', few='товара', many='товаров') }}\"\n"
        "---\n<mjml><mj-body></mj-body></mjml>"
    )
    (tmp_path / "t" / "a.txt").write_text(
        "{{ 1234.5 | money('EUR') }} {{ 1234.5 | number }} "
        "{{ when | date(format='long', timezone='Europe/Moscow') }}"
    )
    locales = tmp_path / "_locales" / "ru" / "LC_MESSAGES"
    locales.mkdir(parents=True)
    (locales / "messages.po").write_text('msgid ""\nmsgstr ""\n"Language: ru\\n"\n')
    context = {"contact": {"locale": "ru"}, "when": datetime(2026, 11, 9, 22, tzinfo=UTC)}
    email = Renderer(tmp_path, languages=["ru"]).render("t/a", context)
    assert email.subject == "товаров"
    assert email.text == "1\xa0234,50\xa0€ 1\xa0234,5 10 ноября 2026\u202fг."


def test_discount_label_per_locale() -> None:
    assert filters.discount_label("percent", Decimal(10), None, "en") == "10%"
    assert filters.discount_label("percent", Decimal(15), None, "nb") == "15\xa0%"
    assert filters.discount_label("fixed", Decimal(5), "EUR", "nl") == "€\xa05,00"


@settings(max_examples=500, deadline=None)
@given(
    url=st.one_of(
        st.from_regex(
            r"https?://[a-z0-9.-]{1,20}(:[0-9]{2,5})?(/[A-Za-z0-9._~%!$&'()*+,;=:@ -]*)*",
            fullmatch=True,
        ),
        st.from_regex(r"https://s\.example/[a-z]*(\?[a-z=&]*)?(#[a-z]*)?", fullmatch=True),
        st.text(max_size=40),
    ),
    content=st.sampled_from(["", "reminder_1"]),
)
def test_utm_fast_path_matches_parsing(url: str, content: str) -> None:
    base = "https://shop.example/"
    try:
        expected = utm._with_utm_parsed(url, "wf", content, "remarket", base)
    except ValueError:
        with pytest.raises(ValueError):
            utm.with_utm(url, "wf", content, base=base)
        return
    assert utm.with_utm(url, "wf", content, base=base) == expected


@settings(max_examples=400, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    locale=st.sampled_from([*LOCALES, "ja", "ar", "fr_CA", "de", "zh_Hant_TW"]),
    zone_name=st.sampled_from(["Europe/Amsterdam", "America/New_York", "Asia/Kolkata", None]),
    fmt=st.sampled_from(["short", "medium", "long", "full", "EEEE d MMMM", "d MMM y, HH:mm 'h'"]),
)
def test_dates_match_babel_exactly(
    moment: datetime, locale: str, zone_name: str | None, fmt: str
) -> None:
    from babel.dates import format_date, format_datetime

    local = moment.astimezone(dates.zone(zone_name))
    expected_datetime = format_datetime(local, fmt, tzinfo=local.tzinfo, locale=locale)
    assert dates.datetime_(moment, locale, zone_name, fmt) == expected_datetime
    if "HH" not in fmt:  # Babel's format_date cannot write hours
        expected_date = format_date(local, fmt, locale=locale)
        assert dates.date(moment, locale, zone_name, fmt) == expected_date
