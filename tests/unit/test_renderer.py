import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup, escape

from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering.renderer import Renderer, html_escape

ROOT = Path(__file__).resolve().parents[2]


def context(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "shop": {
            "name": "Demo Shop",
            "address": "Main St 1",
            "placeholder_image": "https://s/p.png",
        },
        "contact": {"first_name": "Ann", "locale": "nl", "timezone": "Europe/Amsterdam"},
        "cart": {
            "items": [
                {
                    "name": "Mug",
                    "quantity": 2,
                    "unit_price": "12.50",
                    "url": "https://s/m",
                    "image_url": None,
                }
            ],
            "total": Decimal("25.00"),
            "currency": "EUR",
            "checkout_url": "https://s/checkout",
        },
        "discount": {
            "code": "CART-AAAAA-CCCCC",
            "label": "10%",
            "expires_at": datetime(2026, 11, 9, 9, tzinfo=UTC),
        },
        "links": {"unsubscribe": "https://mail/u/tok", "preferences": "https://mail/u/tok?p=1"},
        "workflow": {"id": "abandoned_cart"},
        "step": {"id": "reminder_2"},
    }
    base.update(changes)
    return base


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(ROOT / "templates")


@pytest.mark.parametrize("name", ["reminder_1", "reminder_2", "last_chance"])
def test_stock_templates_render(renderer: Renderer, name: str) -> None:
    email = renderer.render(f"abandoned_cart/{name}", context())
    assert "Ann" in email.subject
    assert "https://mail/u/tok" in email.html and "https://mail/u/tok" in email.text
    assert "Mug" in email.html and "Mug" in email.text
    assert "€\xa012,50" in email.text  # Babel, Dutch locale (no-break space)
    assert "{{" not in email.html and "[%" not in email.html
    assert len(email.html.encode()) < 102 * 1024


def test_discount_code_in_both_parts(renderer: Renderer) -> None:
    email = renderer.render("abandoned_cart/reminder_2", context())
    assert "CART-AAAAA-CCCCC" in email.html
    assert "CART-AAAAA-CCCCC" in email.text
    assert "10%" in email.subject


def test_html_is_escaped_text_is_not(renderer: Renderer) -> None:
    ctx = context(contact={"first_name": "<script>x</script>", "locale": "en", "timezone": None})
    email = renderer.render("abandoned_cart/reminder_1", ctx)
    assert "<script>x</script>" not in email.html
    assert "&lt;script&gt;" in email.html


def test_missing_variable_is_an_error(renderer: Renderer) -> None:
    ctx = context()
    del ctx["links"]
    with pytest.raises(TemplateError, match="links"):
        renderer.render("abandoned_cart/reminder_1", ctx)


def test_preheader_and_no_google_fonts(renderer: Renderer) -> None:
    email = renderer.render("abandoned_cart/reminder_1", context())
    assert email.preheader.startswith("Your cart is saved")
    assert "Your cart is saved" in email.html
    assert "fonts.googleapis.com" not in email.html


def test_compiled_once(renderer: Renderer) -> None:
    first = renderer.compiled("abandoned_cart/reminder_1")
    assert renderer.compiled("abandoned_cart/reminder_1") is first


def test_sandbox_blocks_python_internals(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "evil.mjml").write_text(
        "---\nsubject: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"\n---\n"
        "<mjml><mj-body><mj-section><mj-column><mj-text>x</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    (tmp_path / "t" / "evil.txt").write_text("x")
    with pytest.raises(TemplateError, match="SecurityError|unsafe"):
        Renderer(tmp_path).render("t/evil", {})


def test_missing_text_part_is_reported(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.mjml").write_text(
        "---\nsubject: hi\n---\n<mjml><mj-body></mj-body></mjml>"
    )
    with pytest.raises(TemplateError, match="missing text part"):
        Renderer(tmp_path).render("t/a", {})


# -- the sandbox: a template must not read files, the environment or Python internals ---------

MJML_BODY = (
    "<mjml><mj-body><mj-section><mj-column><mj-text>{body}</mj-text></mj-column>"
    "</mj-section></mj-body></mjml>\n"
)
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__dict__ }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ request.environ }}",
    "{{ environ }}",
    "{{ os.environ }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ '%s' | format(cycler.__init__) }}",
    "{{ shop | attr('__class__') }}",
    "{{ shop.update({'name': 'hijacked'}) }}",
    "{{ shop.clear() }}",
    "{% include '/etc/passwd' %}",
    "{% include '../../../../etc/passwd' %}",
    "{% import '/etc/passwd' as p %}",
    "{% extends '/etc/passwd' %}",
    "{{ range(10 ** 9) | list }}",
    "{{ 'x' * 1000000000 }}",
    "{{ 9 ** 99999999 }}",
]


def _evil_template(root: Path, *, subject: str = "x", body: str = "x", text: str = "x") -> None:
    (root / "t").mkdir(parents=True, exist_ok=True)
    (root / "t" / "evil.mjml").write_text(
        f"---\nsubject: {subject!r}\n---\n" + MJML_BODY.format(body=body), encoding="utf-8"
    )
    (root / "t" / "evil.txt").write_text(text, encoding="utf-8")


@pytest.mark.parametrize("attack", ESCAPES)
@pytest.mark.parametrize("part", ["subject", "body", "text"])
def test_sandbox_escapes_fail_as_template_errors(tmp_path: Path, attack: str, part: str) -> None:
    _evil_template(tmp_path, **{part: attack})
    shop = {"name": "Demo Shop"}
    with pytest.raises(TemplateError) as caught:
        Renderer(tmp_path).render("t/evil", {"shop": shop, "contact": {"locale": "en"}})
    message = str(caught.value)
    assert "root:" not in message and "PATH" not in message and "<class" not in message
    assert shop == {"name": "Demo Shop"}, "a template changed data shared by every email"


@pytest.mark.parametrize(
    "include",
    ["/etc/passwd", "../../../../../etc/passwd", "link/passwd", "/proc/self/environ"],
)
def test_compile_time_includes_stay_inside_the_templates_directory(
    tmp_path: Path, include: str
) -> None:
    (tmp_path / "link").symlink_to("/etc")
    _evil_template(tmp_path, body=f'[% include "{include}" %]')
    with pytest.raises(TemplateError, match="not found"):
        Renderer(tmp_path).render("t/evil", {})


def test_compile_time_jinja_is_sandboxed_too(tmp_path: Path) -> None:
    _evil_template(tmp_path, body="[[ ''.__class__.__mro__[1].__subclasses__() ]]")
    with pytest.raises(TemplateError, match="SecurityError|unsafe"):
        Renderer(tmp_path).render("t/evil", {})


def test_ordinary_template_logic_still_works_in_the_sandbox(tmp_path: Path) -> None:
    _evil_template(
        tmp_path,
        subject="{{ items | map(attribute='name') | join(', ') }}",
        body="{% set ns = namespace(n=0) %}{% for i in items %}{% set ns.n = ns.n + i.q %}"
        "{% endfor %}{{ ns.n }} {{ 'ab' * 3 }} {{ 2 ** 10 }} {{ items | length }}",
        text="{{ (items | first).name | upper }} {{ range(3) | list }}",
    )
    email = Renderer(tmp_path).render(
        "t/evil", {"items": [{"name": "mug", "q": 2}, {"name": "tea", "q": 3}]}
    )
    assert email.subject == "mug, tea"
    assert "5 ababab 1024 2" in email.html
    assert email.text == "MUG [0, 1, 2]"


# -- HTML goes out in ASCII -------------------------------------------------------------------


def test_html_is_ascii_and_reads_the_same(renderer: Renderer) -> None:
    """Every character outside ASCII (Babel's no-break space and €, the template's ×, a
    contact's name) is a numeric reference in the HTML: the same text to a reader, and an
    ASCII string is its own UTF-8 (no transcoding per payload). The text part keeps them."""
    email = renderer.render(
        "abandoned_cart/reminder_1",
        context(contact={"first_name": "Zoë & <b>", "locale": "nl", "timezone": None}),
    )
    assert email.html.isascii()
    assert "&#8364;&#160;12,50" in email.html  # € and the no-break space, once each
    assert "Zo&#235; &amp; &lt;b&gt;" in email.html  # escaped, then written in ASCII
    assert "2 × €\xa012,50" in unescape(email.html)
    assert "Zoë" in email.text and "×" in email.text and "€\xa012,50" in email.text


def test_style_and_script_keep_their_characters(tmp_path: Path) -> None:
    """References are not decoded inside <style> (a raw-text element): its characters stay."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.mjml").write_text(
        '---\nsubject: hi\n---\n<mjml><mj-head><mj-style>.x:before { content: "→"; }'
        "</mj-style></mj-head><mj-body><mj-section><mj-column><mj-text>Grüße {{ name }} →"
        "</mj-text></mj-column></mj-section></mj-body></mjml>",
        encoding="utf-8",
    )
    (tmp_path / "t" / "a.txt").write_text("Grüße {{ name }}", encoding="utf-8")
    email = Renderer(tmp_path).render("t/a", {"name": "Jürgen"})
    assert 'content: "→"' in email.html
    assert "Gr&#252;&#223;e J&#252;rgen &#8594;" in email.html
    outside_style = email.html.replace('content: "→"', "")
    assert outside_style.isascii()
    assert email.text == "Grüße Jürgen"


def test_markup_values_are_written_in_ascii_without_double_escaping(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.mjml").write_text(
        "---\nsubject: hi\n---\n<mjml><mj-body><mj-section><mj-column><mj-text>"
        "{{ safe | safe }}|{{ 'é' }}|{{ n }}</mj-text></mj-column></mj-section></mj-body></mjml>",
        encoding="utf-8",
    )
    (tmp_path / "t" / "a.txt").write_text("x", encoding="utf-8")
    email = Renderer(tmp_path).render("t/a", {"safe": "<i>café</i>", "n": 3})
    assert "<i>caf&#233;</i>|&#233;|3" in email.html


# C1 controls are excluded: HTML maps references to them onto Windows-1252 (&#128; reads as €),
# and they have no place in an email's text anyway.
_TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="".join(chr(c) for c in range(0x80, 0xA0)),
    )
)


@given(_TEXT)
def test_html_escape_reads_as_markupsafe_escape_in_ascii(value: str) -> None:
    out = html_escape(value)
    assert isinstance(out, Markup) and out.isascii()
    assert unescape(out) == unescape(str(escape(value))) == value


@given(_TEXT)
def test_html_escape_keeps_markup_unescaped_and_writes_it_in_ascii(value: str) -> None:
    safe = Markup(value)
    out = html_escape(safe)
    assert out.isascii() and unescape(out) == unescape(value)
    assert html_escape(3) == "3" and html_escape(Decimal("1.50")) == "1.50"
    assert html_escape(None) == "None"  # as markupsafe's escape (StrictUndefined raises first)


def test_plural_translation_with_more_variables_escapes_them_once(tmp_path: Path) -> None:
    """The folded {% pluralize %} evaluates its count once and keeps the other variables."""
    (tmp_path / "t").mkdir()
    trans = (
        "{% trans count=items | sum(attribute='n'), name=who %}{{ name }} has {{ count }} "
        "thing{% pluralize %}{{ name }} has {{ count }} things{% endtrans %}"
    )
    (tmp_path / "t" / "a.mjml").write_text(
        f"---\nsubject: hi\n---\n<mjml><mj-body><mj-section><mj-column><mj-text>{trans}"
        "</mj-text></mj-column></mj-section></mj-body></mjml>",
        encoding="utf-8",
    )
    (tmp_path / "t" / "a.txt").write_text(trans, encoding="utf-8")
    renderer = Renderer(tmp_path)
    one = renderer.render("t/a", {"items": [{"n": 1}], "who": "<Zoë>"})
    assert "&lt;Zo&#235;&gt; has 1 thing<" in one.html
    assert one.text == "<Zoë> has 1 thing"
    many = renderer.render("t/a", {"items": [{"n": 2}, {"n": 3}], "who": "Al"})
    assert "Al has 5 things" in many.html and many.text == "Al has 5 things"


GROWTH = [
    "{{ 'a'|center(300000000) }}",
    "{{ '%300000000s'|format('a') }}",
    "{{ '%.300000000f'|format(1.5) }}",
    "{{ 'a'.ljust(300000000) }}",
    "{{ 'a'.rjust(300000000) }}",
    "{{ 'a'.center(300000000) }}",
    "{{ 'a'.zfill(300000000) }}",
    "{{ 'a'['ljust'](300000000) }}",
    "{{ ('a' | attr('ljust'))(300000000) }}",
    "{{ '{:>300000000}'.format('a') }}",
    "{{ '%*s' % (300000000, 'a') }}",
    "{{ 'x' * 300000000 }}",
    "{{ 300000000 * 'x' }}",
    "{{ ['x'] * 300000000 }}",
    "{{ range(10**9) | join }}",
    "{{ 'a' | indent(10**9) }}",
    "{{ ('a\\n' * 1000) | indent(100000) }}",
    "{{ ('a ' * 50000) | wordwrap(1, wrapstring='x' * 1000) }}",
    "{{ 'abc' | truncate(10**18, end='x' * 300000000) }}",
    "{{ ('a' * 1000) | replace('a', 'b' * 100000) }}",
    "{{ ('a' * 1000).replace('a', 'b' * 100000) }}",
    "{{ ('a' * 1000).translate({97: 'b' * 100000}) }}",
    "{{ ('a' * 100000).join(['b'] * 100000) }}",
    "{{ (['a' * 100000] * 100000) | join }}",
    "{{ ('\\t' * 1000).expandtabs(1000000) }}",
    "{{ ((10**64)**64)**64 }}",
    "{{ lipsum(300000000) }}",
    "{{ [1] | batch(300000000, 'x') | list }}",
    "{{ [1] | slice(300000000) | list }}",
    "{{ [1] | tojson(300000000) }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}{{ ns.s }}",
    "{% for i in range(100000) %}{{ 'a' * 1000 }}{% endfor %}",
]


@pytest.mark.parametrize("growth", GROWTH)
def test_string_growth_fails_as_a_template_error_without_the_memory(
    tmp_path: Path, growth: str
) -> None:
    """Each of these allocated hundreds of MB (or gigabytes) in one call: now the sandbox
    works out the size first and refuses, so a render stays within a few MB."""
    _evil_template(tmp_path, body=growth)
    renderer = Renderer(tmp_path)
    renderer.compiled("t/evil")  # compiling folds constants: that must stay bounded too
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match="sandbox allows|Range too big") as caught:
            renderer.render("t/evil", {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40_000_000, f"{peak / 1e6:.0f} MB for {growth}"
    assert str(tmp_path / "t" / "evil.mjml") in str(caught.value)


def test_bounded_filters_and_methods_work_as_before(tmp_path: Path) -> None:
    _evil_template(
        tmp_path,
        body="[{{ x | center(6) }}|{{ [x, y] | join(y) }}|{{ x | replace('a', y) }}|{{ x ~ y }}]",
        text="[{{ 'ok' | center(6) }}|{{ 'a'.ljust(3) }}|{{ '%3s' | format(x) }}|{{ 2 ** 10 }}"
        "|{{ [x, y] | join('&') }}|{{ x | replace('a', y) }}|{{ x ~ y }}"
        "|{{ '{}!'.format(x) }}|{{ x | indent(2, true) }}|{{ 'a b c' | wordwrap(1) }}]",
    )
    email = Renderer(tmp_path).render("t/evil", {"x": "ab", "y": "<"})
    assert "[  ab  |ab&lt;&lt;|&lt;b|ab&lt;]" in email.html
    assert email.text == "[  ok  |a  | ab|1024|ab&<|<b|ab<|ab!|  ab|a\nb\nc]"


INTERNALS = "{{ '' | attr('__class__') | attr('__mro__') }}"


@pytest.mark.parametrize("part", ["subject", "body", "text"])
def test_python_internals_through_attr_compile_and_fail_as_template_errors(
    tmp_path: Path, part: str
) -> None:
    """Compiling this raised a bare UndefinedError, out of a worker's warm-up."""
    _evil_template(tmp_path, **{part: INTERNALS})
    renderer = Renderer(tmp_path)
    assert renderer.warm(["t/evil"]) == {}
    with pytest.raises(TemplateError, match="attribute '__class__' of 'str' object is unsafe"):
        renderer.render("t/evil", {})


def test_the_header_shows_the_shop_logo_when_one_is_set(renderer: Renderer) -> None:
    plain = renderer.render("abandoned_cart/reminder_1", context())
    assert ';">Demo Shop</div>' in plain.html and "logo" not in plain.html
    shop = {**context()["shop"], "url": "https://s", "logo_url": "https://s/logo.png"}
    email = renderer.render("abandoned_cart/reminder_1", context(shop=shop))
    logo = email.html.index('src="https://s/logo.png"')
    assert 'alt="Demo Shop"' in email.html[logo - 400 : logo + 400]
    assert "utm_campaign=abandoned_cart" in email.html[logo - 600 : logo]
    assert ';">Demo Shop</div>' not in email.html  # the logo stands in for the name
