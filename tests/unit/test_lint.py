"""``remarket lint``: the stock templates pass; broken copies fail with precise file:line."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from remarket_mailer.domain.workflow import Step, Trigger, Workflow
from remarket_mailer.rendering.lint import LintProblem, lint_templates, run_lint
from remarket_mailer.rendering.samples import load_samples, sample_context
from remarket_mailer.workflows.loader import load_workflows

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(TEMPLATES, target)
    return target


def edit(path: Path, old: str, new: str) -> int:
    """Replace the first ``old`` in ``path`` by ``new``; the 1-based line where it happened."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    at = text.index(old)
    path.write_text(text[:at] + new + text[at + len(old) :], encoding="utf-8")
    return text.count("\n", 0, at) + 1


def lines(directory: Path) -> list[str]:
    return [str(problem) for problem in lint_templates(directory)]


def test_stock_templates_pass() -> None:
    assert lint_templates(TEMPLATES) == []


def test_stock_templates_pass_with_the_stock_workflows() -> None:
    workflows = load_workflows(ROOT / "workflows").workflows.values()
    assert lint_templates(TEMPLATES, workflows) == []


def test_samples_have_a_cart_with_three_products_and_a_discount() -> None:
    default = load_samples(TEMPLATES)["default"]
    assert len(default["cart"]["items"]) == 3
    assert default["discount"]["code"]
    context = sample_context(default, "nb")
    assert context["contact"]["locale"] == "nb"
    assert context["discount"]["label"] == "10\xa0%"
    assert default["contact"]["locale"] == "nl-NL", "sample_context must not change the sample"


Broken = tuple[Path, dict[str, int], list[str]]

# One copy holds many broken variants of reminder_1, each in its own template, so a single
# lint run (about a second) serves the tests below; problems in one do not hide another's.
VARIANTS: dict[str, tuple[str, str, str]] = {
    # name: (file suffix, text to replace, replacement)
    "undefined": (".mjml", '{{ _("Return to your cart") }}', "{{ contact.nickname }}"),
    "undefined_text": (".txt", "{{ cart.checkout_url", "{{ cart.checkout_link"),
    "undefined_subject": (".mjml", "{% trans %}You left something", "{{ coupon }}{% trans %}You"),
    "syntax_html": (".mjml", '{{ _("Return to your cart") }}', '{{ _("Return to your cart" }}'),
    "syntax_text": (".txt", "{{ cart.checkout_url", "{{ cart.checkout_url }"),
    "syntax_layout": (
        ".mjml",
        '[% include "_partials/cart_items.mjml" %]',
        '[% include "_partials/cart_items.mjml" ]',
    ),
    "unclosed": (".mjml", "      </mj-column>\n", ""),
    "less_than": (
        ".mjml",
        "<mj-text>{% trans count",
        "<mj-text>{% if 1 < 2 %}!{% endif %}{% trans count",
    ),
    "size": (".mjml", "<mj-column>", '<mj-column width="{{ 50 }}%">'),
    "http": (
        ".mjml",
        'href="{{ cart.checkout_url',
        'href="http://shop.example.com/c?u={{ cart.checkout_url',
    ),
    "new_message": (".mjml", '{{ _("Return to your cart") }}', '{{ _("Back to the cart") }}'),
    "huge": (
        ".mjml",
        "        <mj-text>[% include",
        "<mj-text>"
        + "Lorem ipsum dolor sit amet. " * 4200
        + "</mj-text>\n        <mj-text>[% include",
    ),
    "no_text": (".mjml", "", ""),
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Broken:
    """(templates copy, line of each variant's edit, lint output)."""
    root = tmp_path_factory.mktemp("broken") / "templates"
    shutil.copytree(TEMPLATES, root)
    (root / "broken").mkdir()
    edited: dict[str, int] = {}
    for name, (suffix, old, new) in VARIANTS.items():
        for part in (".mjml", ".txt"):
            shutil.copy(
                root / "abandoned_cart" / f"reminder_1{part}", root / "broken" / f"{name}{part}"
            )
        if old:
            edited[name] = edit(root / "broken" / f"{name}{suffix}", old, new)
    (root / "broken" / "no_text.txt").unlink()
    return root, edited, lines(root)


def test_undefined_variable_in_the_html(broken: Broken) -> None:
    root, at, found = broken
    assert (
        f"{root}/broken/undefined.mjml:{at['undefined']}: UndefinedError: 'dict object' has no "
        "attribute 'nickname' (in {{ contact.nickname }})"
    ) in found


def test_undefined_variable_in_the_text(broken: Broken) -> None:
    root, at, found = broken
    assert (
        f"{root}/broken/undefined_text.txt:{at['undefined_text']}: UndefinedError: 'dict object' "
        "has no attribute 'checkout_link' (in {{ cart.checkout_link | utm(workflow.id, step.id) }})"
    ) in found


def test_undefined_variable_in_the_subject(broken: Broken) -> None:
    root, at, found = broken
    line = at["undefined_subject"]
    assert (
        f"{root}/broken/undefined_subject.mjml:{line}: subject: UndefinedError: 'coupon' is "
        "undefined [sample minimal]"
    ) in found


def test_jinja_syntax_errors_with_their_line(
    broken: Broken,
) -> None:
    root, at, found = broken
    assert (
        f"{root}/broken/syntax_html.mjml:{at['syntax_html']}: syntax error: unexpected '}}', "
        "expected ')'"
    ) in found
    assert (
        f"{root}/broken/syntax_text.txt:{at['syntax_text']}: syntax error: unexpected '}}'" in found
    )
    assert (
        f"{root}/broken/syntax_layout.mjml:{at['syntax_layout']}: syntax error: unexpected ']'"
    ) in found


def test_bad_mjml_names_the_unclosed_element(
    broken: Broken,
) -> None:
    root, _, found = broken
    text = (root / "broken" / "unclosed.mjml").read_text()
    opening = text.count("\n", 0, text.index("<mj-column>")) + 1
    assert (
        f"{root}/broken/unclosed.mjml:{opening}: MJML error: <mj-column> is not closed before "
        "</mj-section>"
    ) in found


def test_less_than_inside_jinja_breaks_mjml(broken: Broken) -> None:
    root, at, found = broken
    prefix = f"{root}/broken/less_than.mjml:{at['less_than']}: "
    assert (
        prefix
        + (
            "MJML error: '<' inside a Jinja tag reads as the start of an element "
            "(compare the other way round, or use a filter)"
        )
        in found
    )
    assert any(p.startswith(prefix + "'<' inside a Jinja tag: MJML reads it") for p in found)


def test_jinja_in_an_mjml_size_attribute(broken: Broken) -> None:
    root, at, found = broken
    assert (
        f"{root}/broken/size.mjml:{at['size']}: Jinja in the size attribute 'width': MJML drops "
        "it; use a fixed value or compile-time [[ ]]"
    ) in found


def test_http_link_written_in_a_template(broken: Broken) -> None:
    root, at, found = broken
    assert (
        f"{root}/broken/http.mjml:{at['http']}: link is not https: http://shop.example.com/c?u="
    ) in found


def test_a_new_message_without_translations(broken: Broken) -> None:
    root, at, found = broken
    for locale in ("it", "nb", "nl", "ru", "vi"):
        po = root / "_locales" / locale / "LC_MESSAGES" / "messages.po"
        assert (
            f"{root}/broken/new_message.mjml:{at['new_message']}: no {locale} translation for "
            f"'Back to the cart' (add it to {po})"
        ) in found


def test_html_over_gmails_clipping_limit(broken: Broken) -> None:
    root, _, found = broken
    clipped = [p for p in found if p.startswith(f"{root}/broken/huge.mjml:1: the HTML is ")]
    assert clipped and all("KB; Gmail clips emails over 102 KB" in p for p in clipped)
    assert not any("reminder_1.mjml:1: the HTML is" in p for p in found)


def test_missing_text_part(broken: Broken) -> None:
    root, _, found = broken
    assert f"{root}/broken/no_text.mjml:1: missing text part broken/no_text.txt" in found


def test_each_problem_once_and_the_stock_copies_clean(
    broken: Broken,
) -> None:
    root, _, found = broken
    assert len(found) == len(set(found))
    assert not [p for p in found if "/abandoned_cart/" in p or "/_partials/" in p]


def test_missing_unsubscribe_link_in_html(copy: Path) -> None:
    edit(
        copy / "_partials" / "footer.mjml",
        '<a href="{{ links.unsubscribe }}"',
        '<a href="{{ links.preferences }}"',
    )
    found = lines(copy)
    for name in ("abandoned_cart/reminder_1", "abandoned_cart/last_chance", "win_back/miss_you"):
        assert (
            f"{copy / name}.mjml:1: the HTML part has no link to {{{{ links.unsubscribe }}}}"
            in found
        )


def test_missing_unsubscribe_link_in_text(copy: Path) -> None:
    edit(copy / "_layouts" / "base.txt", "{{ links.unsubscribe }}", "{{ links.preferences }}")
    found = lines(copy)
    assert (
        f"{copy}/abandoned_cart/reminder_2.txt:1: "
        "the text part has no {{ links.unsubscribe }} link" in found
    )


def test_http_link_from_data_is_reported_at_the_template(copy: Path) -> None:
    samples = {"plain": sample_context(load_samples(copy)["default"])}
    samples["plain"]["cart"]["checkout_url"] = "http://shop.example.com/checkout/1"
    problems = lint_templates(copy, sample_contexts=samples)
    file = str(copy / "abandoned_cart" / "reminder_1.mjml")
    assert (
        LintProblem(
            file,
            1,
            "renders a link that is not https: http://shop.example.com/checkout/1?utm_source=remarket"
            "&utm_medium=email&utm_campaign=abandoned_cart&utm_content=reminder_2",
        )
        in problems
    )


def test_missing_translation_in_a_catalog(copy: Path) -> None:
    po = copy / "_locales" / "nl" / "LC_MESSAGES" / "messages.po"
    line = edit(po, 'msgid "Unsubscribe"\nmsgstr "Afmelden"', 'msgid "Unsubscribe"\nmsgstr ""')
    assert f"{po}:{line}: missing translation for 'Unsubscribe'" in lines(copy)


def test_fuzzy_and_wrong_placeholder_translations(copy: Path) -> None:
    po = copy / "_locales" / "it" / "LC_MESSAGES" / "messages.po"
    line = edit(po, 'msgid "Total: %(total)s"', 'msgid "Total: %(total)s"')
    edit(po, 'msgstr "Totale: %(total)s"', 'msgstr "Totale: %(totale)s"')
    fuzzy = edit(po, 'msgid "Use my code now"', '#, fuzzy\nmsgid "Use my code now"') + 1
    found = lines(copy)
    assert (
        f"{po}:{line}: unknown named placeholder 'totale' in the translation of 'Total: %(total)s'"
        in found
    )
    assert f"{po}:{fuzzy}: fuzzy translation (not used) for 'Use my code now'" in found


def test_a_workflow_step_with_a_missing_template(tmp_path: Path) -> None:
    source = tmp_path / "spring.yaml"
    source.write_text("id: spring\nsteps:\n  - id: first\n    template: spring/first\n")
    workflow = Workflow(
        id="spring",
        name="Spring",
        version="1",
        trigger=Trigger(events=("cart.updated",), key="cart_id"),
        steps=(Step(id="first", wait=timedelta(hours=1), template="spring/first"),),
        source=str(source),
    )
    problems = lint_templates(TEMPLATES, [workflow])
    assert [str(p) for p in problems] == [
        f"{source}:4: step 'first' uses template 'spring/first', "
        f"which has no {TEMPLATES}/spring/first.mjml"
    ]


def test_run_lint_exit_codes_and_output(copy: Path) -> None:
    out: list[str] = []
    assert run_lint(TEMPLATES, out.append) == 0
    assert out[-1].endswith(": OK") and "6 language(s)" in out[-1]
    (copy / "abandoned_cart" / "reminder_2.txt").unlink()
    out.clear()
    assert run_lint(copy, out.append) == 1
    assert out[0].endswith("missing text part abandoned_cart/reminder_2.txt")
    assert out[-1].startswith("1 problem(s) in ")
    assert run_lint(copy / "nope", out.append) == 2


INTERNALS = "{{ '' | attr('__class__') | attr('__mro__') }}"


@pytest.mark.parametrize(
    ("file", "anchor"),
    [
        ("reminder_1.mjml", "<mj-text>"),  # the HTML part
        ("reminder_1.txt", "[% include"),  # the text part
        ("reminder_1.mjml", "{% trans %}Your cart is saved"),  # front matter (preheader)
    ],
)
def test_python_internals_through_attr_are_a_template_problem(
    copy: Path, file: str, anchor: str
) -> None:
    """``''|attr('__class__')|attr('__mro__')`` crashed lint (and a worker's warm-up) with a
    traceback: Jinja folds it at compile time into an Undefined that nothing expected."""
    path = copy / "abandoned_cart" / file
    if anchor.startswith("<"):
        line = edit(path, anchor, anchor + INTERNALS)
    else:
        line = edit(path, anchor, INTERNALS + anchor)
    out: list[str] = []
    assert run_lint(copy, out.append) == 1
    found = [x for x in out if x.startswith(f"{path}:{line}: ")]
    assert found, out
    assert "access to attribute '__class__' of 'str' object is unsafe" in found[0]
    assert out[-1].startswith("1 problem(s) in ")


def test_python_internals_at_compile_time_are_a_template_problem(copy: Path) -> None:
    partial = copy / "_partials" / "greeting.txt"
    line = edit(partial, "{%", "[[ '' | attr('__class__') | attr('__mro__') ]]{%")
    out: list[str] = []
    assert run_lint(copy, out.append) == 1
    assert any(x.startswith(f"{partial}:{line}") and "unsafe" in x for x in out), out


def test_a_misspelt_mjml_tag_is_a_problem_at_its_line(copy: Path) -> None:
    """mjml-python compiles ``<mj-colum>`` without a word and the layout changes."""
    template = copy / "abandoned_cart" / "reminder_1.mjml"
    line = edit(template, "<mj-column>", "<mj-colum>")
    edit(template, "</mj-column>", "</mj-colum>")
    found = lines(copy)
    assert (
        f"{template}:{line}: <mj-colum> is not an MJML tag (did you mean <mj-column>?): "
        "MJML ignores it and the layout changes without an error" in found
    )


def test_every_documented_mjml_tag_passes(copy: Path) -> None:
    from remarket_mailer.rendering.lint_static import MJML_TAGS

    tags = "".join(f"<{tag} />" for tag in sorted(MJML_TAGS - {"mjml"}))
    edit(copy / "_partials" / "footer.mjml", "<mj-", f"<mj-raw><!-- {tags} --></mj-raw><mj-")
    assert not [p for p in lines(copy) if "is not an MJML tag" in p]
