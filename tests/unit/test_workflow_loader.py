from pathlib import Path

import pytest

from remarket_mailer.domain.workflow import plan_due_times
from remarket_mailer.errors import WorkflowError
from remarket_mailer.workflows.expressions import evaluate
from remarket_mailer.workflows.loader import check_workflow, load_workflows, parse_workflow

ROOT = Path(__file__).resolve().parents[2]
STOCK = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()


def test_stock_abandoned_cart_loads() -> None:
    workflows = load_workflows(ROOT / "workflows")
    cart = workflows.workflows["abandoned_cart"]
    assert cart.trigger.events == ("cart.updated", "checkout.started")
    assert cart.trigger.key == "cart_id"
    assert [s.id for s in cart.steps] == ["reminder_1", "reminder_2", "last_chance"]
    assert cart.steps[1].discount is not None and cart.steps[1].discount.value == 10
    assert cart.steps[2].discount is not None and cart.steps[2].discount.value == 15
    assert {(e.event, e.match) for e in cart.exits} >= {
        ("order.placed", "key"),
        ("order.placed", "contact"),
    }


def test_waits_add_up_to_1h_24h_72h() -> None:
    from datetime import UTC, datetime, timedelta

    cart = parse_workflow(STOCK)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    planned = [when - start for _step, when in plan_due_times(cart.steps, start)]
    assert planned == [timedelta(hours=1), timedelta(hours=24), timedelta(hours=72)]


def test_version_changes_with_any_edit() -> None:
    assert parse_workflow(STOCK).version != parse_workflow(STOCK + "\n# edited\n").version


def test_problems_carry_file_and_line() -> None:
    broken = STOCK.replace("wait: 23h", "wait: 23 hours").replace("key: cart_id", "key: basket")
    problems = check_workflow(broken, "abandoned_cart.yaml")
    text = "\n".join(str(p) for p in problems)
    assert len(problems) == 2
    wait_line = broken.splitlines().index("    wait: 23 hours") + 1
    assert f"abandoned_cart.yaml:{wait_line}: steps.1.wait: invalid duration" in text
    assert "trigger.key" in text


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("filter: cart.total >= 20", "filter: cart.total >="), "invalid expression"),
        (("id: reminder_2", "id: reminder_1"), "appears twice"),
        (("event: [cart.updated", "event: [cart.exploded"), "trigger.event"),
        (("percent: 10", "percent: 110"), "less than or equal to 100"),
        (("template: abandoned_cart/reminder_1", "template: ../../etc/passwd"), "templates/"),
    ],
)
def test_validation_messages(edit: tuple[str, str], message: str) -> None:
    problems = check_workflow(STOCK.replace(*edit), "w.yaml")
    assert problems, "the broken file was accepted"
    assert message in str(problems[0])


def test_yaml_syntax_error_has_line() -> None:
    problems = check_workflow("id: x\nsteps: [\n", "w.yaml")
    assert problems and str(problems[0]).startswith("w.yaml:")


def test_directory_with_a_broken_file_raises_all(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(STOCK)
    (tmp_path / "b.yaml").write_text(STOCK.replace("id: abandoned_cart", "id: Bad Id"))
    with pytest.raises(WorkflowError, match="b.yaml"):
        load_workflows(tmp_path)


def test_duplicate_workflow_ids_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(STOCK)
    (tmp_path / "b.yaml").write_text(STOCK + "\n")
    with pytest.raises(WorkflowError, match="also used by"):
        load_workflows(tmp_path)


def test_expressions_are_sandboxed() -> None:
    assert evaluate(
        'cart.total >= 20 and contact.locale == "nl"',
        {"cart": {"total": 25}, "contact": {"locale": "nl"}},
    )
    from remarket_mailer.errors import ValidationError

    with pytest.raises(ValidationError):
        evaluate("cart.__class__.__mro__", {"cart": {}})
    with pytest.raises(ValidationError):
        evaluate("missing.total > 1", {})


def test_published_json_schema_is_current() -> None:
    from remarket_mailer.workflows.schema import json_schema_text

    published = (ROOT / "docs" / "workflow.schema.json").read_text()
    assert published == json_schema_text(), (
        "run: remarket workflows schema > docs/workflow.schema.json"
    )


def test_stock_workflows_validate_against_the_json_schema() -> None:
    import json

    import jsonschema
    import yaml

    schema = json.loads((ROOT / "docs" / "workflow.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    paths = sorted((ROOT / "workflows").glob("*.yaml"))
    assert paths
    for path in paths:
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert errors == [], (path, [e.message for e in errors])
    broken = yaml.safe_load(STOCK)
    broken["steps"][0]["wiat"] = "1h"
    assert list(validator.iter_errors(broken)), "the schema accepted an unknown key"


def test_ab_variants_are_deterministic_and_weighted() -> None:
    edited = STOCK.replace(
        "    template: abandoned_cart/reminder_1\n",
        "    template: abandoned_cart/reminder_1\n"
        "    variants:\n"
        "      - {id: a, template: abandoned_cart/reminder_1, weight: 3}\n"
        "      - {id: b, template: abandoned_cart/reminder_2, weight: 1}\n",
    )
    step = parse_workflow(edited).steps[0]
    picks = [step.pick(f"c{n}", "abandoned_cart") for n in range(8000)]
    share_a = sum(1 for variant, _ in picks if variant == "a") / len(picks)
    assert 0.72 < share_a < 0.78
    assert picks == [step.pick(f"c{n}", "abandoned_cart") for n in range(8000)]
    assert dict(picks)["b"] == "abandoned_cart/reminder_2"
    duplicate = edited.replace("{id: b,", "{id: a,")
    assert "variant ids must differ" in str(check_workflow(duplicate, "w.yaml")[0])


def test_a_filter_that_always_fails_is_refused_at_validate_time() -> None:
    broken = STOCK.replace(
        "filter: cart.total >= 20", "filter: \"cart.total >= 20 and 'x' * 300000000 != ''\""
    )
    problems = check_workflow(broken, "abandoned_cart.yaml")
    line = next(i for i, x in enumerate(broken.splitlines(), 1) if "filter:" in x)
    assert len(problems) == 1
    text = str(problems[0])
    assert text.startswith(f"abandoned_cart.yaml:{line}: trigger.filter: expression")
    assert "always fails" in text and "the sandbox allows 1,000,000" in text


@pytest.mark.parametrize("field", ["from_email", "reply_to", "name"])
@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("Shop\\r\\nBcc: all@victim.example <news@shop.example>", "a carriage return (CR)"),
        ("Shop <news@shop.example>\\nBcc: all@victim.example", "a line break (LF)"),
    ],
)
def test_header_settings_with_line_breaks_are_refused(field: str, value: str, found: str) -> None:
    """A from_email with CR/LF was accepted, and the line break silently became a space."""
    setting = f'{field}: "{value}"'
    if field == "name":
        source = STOCK.replace("name: Abandoned cart", setting)
    else:
        source = STOCK.replace("name: Abandoned cart", f"name: Abandoned cart\n{setting}")
    problems = check_workflow(source, "workflows/abandoned_cart.yaml")
    line = source.splitlines().index(setting) + 1
    assert [str(p) for p in problems] == [
        f"workflows/abandoned_cart.yaml:{line}: {field}: must be one line without control "
        f"characters; it contains {found}"
    ]


def test_a_from_email_must_be_an_address() -> None:
    source = STOCK.replace("name: Abandoned cart", "name: Abandoned cart\nfrom_email: Shop")
    (problem,) = check_workflow(source, "w.yaml")
    assert "from_email: 'Shop' is not an email address" in str(problem)
    fine = STOCK.replace(
        "name: Abandoned cart", "name: Abandoned cart\nfrom_email: Shöp <news@shop.example>"
    )
    assert check_workflow(fine, "w.yaml") == []


def test_the_stock_price_drop_reads_its_minimum_and_others_may_not_set_one() -> None:
    workflows = load_workflows(ROOT / "workflows")
    assert workflows.workflows["price_drop"].trigger.drop_percent() == 10
    assert workflows.workflows["back_in_stock"].trigger.events == ("product.back_in_stock",)
    misplaced = STOCK.replace("key: cart_id", "key: cart_id\n  min_drop_percent: 5")
    (problem,) = check_workflow(misplaced, "w.yaml")
    assert "'min_drop_percent' needs the trigger event product.price_dropped" in str(problem)
    price_drop = (ROOT / "workflows" / "price_drop.yaml").read_text()
    (problem,) = check_workflow(price_drop.replace("min_drop_percent: 10", "min_drop_percent: 0"))
    assert "min_drop_percent" in str(problem) and "greater than 0" in str(problem)
