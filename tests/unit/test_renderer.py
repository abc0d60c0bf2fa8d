from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering.renderer import Renderer

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
