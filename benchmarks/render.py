"""Render benchmark: the stock abandoned-cart email (subject, preheader, HTML and text, with a
discount and three products) for thousands of contacts in six languages.

Prints µs per email next to a raw Jinja render of the same compiled HTML in the same run (a
plain, unsandboxed ``jinja2.Environment`` with the same filters and translations), and the
ratio. Targets (issue 6): <= 100 µs per email and <= 3x raw Jinja.

    python benchmarks/render.py [--contacts 5000] [--rounds 5] [--profile] [--uncached]

``--uncached`` swaps the filters' caches for plain Babel calls (the code before it was
optimised), to show what they save. ``--profile`` prints where the time goes (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import gettext
import pstats
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency

from remarket_mailer.rendering import dates, filters, utm
from remarket_mailer.rendering.filters import discount_label
from remarket_mailer.rendering.locales import fold_translations
from remarket_mailer.rendering.renderer import Renderer, available_languages

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "abandoned_cart/reminder_2"
NAMES = ["Ann", "Ben", "Chloé", "Дмитрий", "Eva", "Giulia", "Hanne", "Nguyễn", None, "Zoë"]
LOCALES = ["nl-NL", "en-US", "it-IT", "ru-RU", "nb-NO", "vi-VN", "de-DE", "en-GB", "nl-BE", None]
ZONES = ["Europe/Amsterdam", "America/New_York", "Europe/Rome", "Europe/Moscow", "Asia/Ho_Chi_Minh"]
PRODUCTS = [
    ("Stoneware mug", Decimal("12.50")),
    ("Earl Grey, 250 g", Decimal("49.50")),
    ("Cast-iron teapot", Decimal("49.85")),
    ("Tea cup set", Decimal("24.00")),
    ("Gooseneck kettle", Decimal("129.00")),
]


def contexts(count: int) -> list[dict[str, Any]]:
    """``count`` contexts as the sender builds them, with varied names, languages and carts."""
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    made = []
    for i in range(count):
        locale = LOCALES[i % len(LOCALES)]
        currency = ("EUR", "USD", "NOK")[i % 3]
        items = []
        for j in range(3):
            name, price = PRODUCTS[(i + j) % len(PRODUCTS)]
            items.append(
                {
                    "sku": f"SKU-{j}",
                    "name": name,
                    "quantity": 1 + (i + j) % 3,
                    "unit_price": price,
                    "url": f"https://shop.example.com/products/{(i + j) % len(PRODUCTS)}",
                    "image_url": f"https://shop.example.com/images/{(i + j) % len(PRODUCTS)}.jpg",
                }
            )
        total = sum((x["unit_price"] * x["quantity"] for x in items), Decimal(0))
        made.append(
            {
                "shop": {
                    "name": "Demo Shop",
                    "address": "Keizersgracht 100, 1015 AA Amsterdam, NL",
                    "url": "https://shop.example.com",
                    "placeholder_image": "https://shop.example.com/placeholder.png",
                },
                "contact": {
                    "email": f"contact{i}@example.org",
                    "first_name": NAMES[i % len(NAMES)],
                    "last_name": "Example",
                    "locale": locale,
                    "timezone": ZONES[i % len(ZONES)],
                    "attributes": {},
                },
                "cart": {
                    "id": f"cart-{i}",
                    "items": items,
                    "currency": currency,
                    "total": total,
                    "checkout_url": f"https://shop.example.com/checkout/cart-{i}",
                },
                "event": {},
                "discount": {
                    "code": f"CART-{i:05d}-XW4PD",
                    "kind": "percent",
                    "value": Decimal(10),
                    "currency": None,
                    "label": discount_label("percent", Decimal(10), None, locale),
                    "expires_at": start + timedelta(days=7, seconds=37 * i),
                    "minimum_order": None,
                },
                "links": {
                    "unsubscribe": f"https://mail.shop.example.com/u/token-{i}",
                    "preferences": f"https://mail.shop.example.com/p/token-{i}",
                },
                "workflow": {"id": "abandoned_cart", "name": "Abandoned cart", "category": "m"},
                "step": {"id": "reminder_2"},
            }
        )
    return made


def raw_jinja(renderer: Renderer, fold: bool) -> dict[str, jinja2.Template]:
    """The same compiled HTML per language in a plain Environment: same filters, same
    translations, no sandbox, no subject/preheader/text part, no language resolution.

    ``fold``: translations resolved when compiling, as the renderer does (the strict floor);
    otherwise Jinja's own newstyle gettext at render time (what the naive setup pays).
    """
    templates = {}
    for language in renderer.languages:
        compiled = renderer.compiled(TEMPLATE, language)
        sandboxed = compiled.html.environment
        env = jinja2.Environment(
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.i18n"],
        )
        env.policies["ext.i18n.trimmed"] = True
        env.filters.update(sandboxed.filters)
        catalog = renderer.catalog(language)
        translations = catalog.translations if catalog else gettext.NullTranslations()
        env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        if fold:
            parsed = fold_translations(
                env.parse(compiled.html_source), env, translations, "_translated_plural"
            )
            code = env.compile(parsed)
            templates[language] = env.template_class.from_code(env, code, env.globals)
        else:
            templates[language] = env.from_string(compiled.html_source)
    return templates


def timed(work: Callable[[], None], rounds: int, count: int) -> tuple[float, float]:
    """(median, best) µs per email over ``rounds`` runs of ``work`` (``count`` emails each).

    The machines are shared: the best round is the code's cost, the median what a busy
    neighbour leaves of it.
    """
    samples = []
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(samples), min(samples)


def uncached() -> None:
    """Plain Babel and URL parsing per call, as the filters were before they were optimised."""
    from babel import Locale

    def parse(name: str | None) -> Locale:
        try:
            return Locale.parse((name or "en").replace("-", "_"))
        except (ValueError, TypeError):
            return Locale.parse("en")

    def money(value: Decimal, currency: str, locale: str | None) -> str:
        return str(format_currency(value, currency, locale=parse(locale)))

    def fmt_datetime(moment: datetime, locale: str | None, zone: str | None, fmt: str) -> str:
        local = moment.astimezone(dates.zone(zone))
        return str(format_datetime(local, fmt, tzinfo=local.tzinfo, locale=parse(locale)))

    def fmt_date(moment: datetime, locale: str | None, zone: str | None, fmt: str) -> str:
        local = moment.astimezone(dates.zone(zone))
        return str(format_date(local, fmt, locale=parse(locale)))

    def utm_uncached(
        url: str,
        campaign: str,
        content: str = "",
        source: str = "remarket",
        base: str | None = None,
    ) -> str:
        return str(utm._with_utm_parsed.__wrapped__(url, campaign, content, source, base))

    filters.locale_of = parse  # type: ignore[assignment]
    filters._money = money  # type: ignore[assignment]
    dates._format_datetime = fmt_datetime  # type: ignore[assignment]
    dates._format_date = fmt_date  # type: ignore[assignment]
    utm.with_utm = utm_uncached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--uncached", action="store_true")
    args = parser.parse_args()
    if args.uncached:
        uncached()

    templates_dir = ROOT / "templates"
    renderer = Renderer(templates_dir, languages=available_languages(templates_dir))
    people = contexts(args.contacts)
    started = time.perf_counter()
    for person in people[: len(LOCALES)]:
        renderer.render(TEMPLATE, person)  # compiles every language once
    compile_ms = (time.perf_counter() - started) * 1000
    raw = raw_jinja(renderer, fold=True)
    naive = raw_jinja(renderer, fold=False)
    languages = [renderer.language_for(p) for p in people]
    triples = [(p, x, "-".join(x.split("_"))) for p, x in zip(people, languages, strict=True)]

    def ours() -> None:
        for person in people:
            renderer.render(TEMPLATE, person)

    def baseline() -> None:
        for person, language, tag in triples:
            raw[language].render(person, preheader="", lang=tag, dir="ltr")

    def naive_baseline() -> None:
        for person, language, tag in triples:
            naive[language].render(person, preheader="", lang=tag, dir="ltr")

    ours_us = timed(ours, args.rounds, len(people))
    raw_us = timed(baseline, args.rounds, len(people))
    naive_us = timed(naive_baseline, args.rounds, len(people))
    spread = {x: languages.count(x) for x in sorted(set(languages))}
    email = renderer.render(TEMPLATE, people[0])
    print(f"template        {TEMPLATE} (discount + 3 products), {len(people)} contacts")
    print(f"languages       {spread}")
    size = len(email.html.encode()) / 1024
    print(f"email           {size:.1f} KB HTML, {len(email.text)} characters of text")
    print(f"first compile   {compile_ms:.0f} ms for {len(renderer.languages)} languages")
    print(f"filters         {'plain Babel per call (--uncached)' if args.uncached else 'cached'}")
    ratio = (ours_us[0] / raw_us[0], ours_us[1] / raw_us[1])
    per_core = (1e6 / ours_us[0], 1e6 / ours_us[1])
    print("                 median    best")
    print(
        f"renderer        {ours_us[0]:7.1f} {ours_us[1]:7.1f}  µs/email: subject+preheader+HTML+txt"
    )
    print(
        f"raw Jinja       {raw_us[0]:7.1f} {raw_us[1]:7.1f}  µs/email: the same HTML, unsandboxed"
    )
    print(
        f"naive Jinja     {naive_us[0]:7.1f} {naive_us[1]:7.1f}  µs/email: raw + gettext per call"
    )
    print(f"ratio           {ratio[0]:7.2f} {ratio[1]:7.2f}  x raw Jinja (target <= 3)")
    print(f"per core        {per_core[0]:7.0f} {per_core[1]:7.0f}  emails/s (target >= 10,000)")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        ours()
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
