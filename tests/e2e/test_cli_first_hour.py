"""What a new user trips over in their first hour with ``remarket``: a bad setting or an
unmigrated database is one line and exit code 2 for every command, never a traceback; the
usual CLI conventions (``--version``, ``-h``, ``keys list``, ``db current``/``downgrade``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from remarket_mailer import __version__
from remarket_mailer.cli import app
from remarket_mailer.errors import RemarketError
from tests.conftest import REDIS_URL, ROOT
from tests.e2e.test_cli import run

# Every command that reads the settings, with arguments that would let it go on.
COMMANDS = [
    ["api"],
    ["dev"],
    ["worker"],
    ["scheduler"],
    ["demo", "--database", "sqlite:///{tmp}/demo.db", "--outbox", "{tmp}/outbox"],
    ["simulate", "{tmp}/events.jsonl"],
    ["report"],
    ["lint"],
    ["preview", "--port", "0"],
    ["db", "upgrade"],
    ["db", "current"],
    ["db", "downgrade", "--yes"],
    ["workflows", "validate", str(ROOT / "workflows")],
    ["keys", "list"],
    ["keys", "create", "shop"],
    ["keys", "revoke", "shop"],
    ["contacts", "export", "ann@example.com"],
    ["contacts", "erase", "--yes", "ann@example.com"],
    ["discounts", "stock", "spring"],
    ["discounts", "import", "spring", "{tmp}/codes.csv", "--percent", "10"],
    ["renewals", "scan"],
    ["contacts", "show", "ann@example.com"],
    ["providers", "status"],
]


def _one_error_line(result_stderr: str) -> str:
    lines = [line for line in result_stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result_stderr
    assert "Traceback" not in result_stderr
    return lines[0]


def _invoke(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run one command in this process (a subprocess per command took minutes on a busy
    machine): its exit code and error text, with a RemarketError it raised turned into the
    line and exit code 2 that ``main`` makes of it (the subprocess tests below check that)."""
    result = CliRunner().invoke(app, args, env=env)
    if isinstance(result.exception, RemarketError):
        return 2, f"error: {result.exception}"
    assert not isinstance(result.exception, Exception), (args, repr(result.exception))
    return result.exit_code, result.output.strip()


def test_a_setting_that_is_not_json_is_one_line_and_exit_2_for_every_command(
    tmp_path: Path,
) -> None:
    (tmp_path / "events.jsonl").write_text("{}\n")
    (tmp_path / "codes.csv").write_text("CODE-1\n")
    env = {
        "REMARKET_CONSENT_RULES": '{"marketing": opt_in}',
        "REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
    }
    for command in COMMANDS:
        args = [arg.replace("{tmp}", str(tmp_path)) for arg in command]
        code, said = _invoke(args, env)
        assert (code, said) == (2, "error: REMARKET_CONSENT_RULES: not valid JSON"), command
    for bad in (env, {"REMARKET_WEBHOOK_SECRETS": '[1, "postmark"'}):
        result = run("report", env=bad)
        assert result.returncode == 2, result.stdout + result.stderr
        line = _one_error_line(result.stderr)
        assert line.startswith("error: REMARKET_") and line.endswith(": not valid JSON"), line


@pytest.mark.parametrize(
    ("command", "query", "said"),
    [
        ("worker", "starttls=yes", "starttls must be true or false, got 'yes'"),
        ("api", "tls=true", "smtp:// does not take tls"),
    ],
)
def test_an_smtp_option_the_code_does_not_know_is_refused_at_start(
    tmp_path: Path, command: str, query: str, said: str
) -> None:
    database = f"sqlite:///{tmp_path / 'x.db'}"
    assert run("db", "upgrade", env={"REMARKET_DATABASE_URL": database}).returncode == 0
    env = {
        "REMARKET_DATABASE_URL": database,
        "REMARKET_BROKER_URL": REDIS_URL,
        "REMARKET_SECRET_KEY": "test-secret-key-0123456789-0123456789",
        "REMARKET_PROVIDER_URL": f"smtp://127.0.0.1:2525?{query}",
    }
    result = run(command, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    line = _one_error_line(result.stderr)
    assert line.startswith("error: REMARKET_PROVIDER_URL: ") and said in line, line


DATABASE_COMMANDS = [
    ["report"],
    ["keys", "list"],
    ["keys", "create", "shop"],
    ["keys", "revoke", "shop"],
    ["contacts", "export", "ann@example.com"],
    ["contacts", "erase", "--yes", "ann@example.com"],
    ["discounts", "stock", "spring"],
    ["renewals", "scan"],
    ["contacts", "show", "ann@example.com"],
    ["providers", "status"],
]


def test_every_database_command_on_an_unmigrated_database_says_to_migrate(
    tmp_path: Path,
) -> None:
    env = {"REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    for command in DATABASE_COMMANDS:
        code, said = _invoke(command, env)
        assert code == 2 and "\n" not in said, (command, said)
        assert "not migrated" in said and "run `remarket db upgrade`" in said, (command, said)
    result = run("report", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not migrated" in _one_error_line(result.stderr)
    # One revision behind is the same story.
    assert run("db", "upgrade", "0007", env=env).returncode == 0
    behind = run("report", env=env)
    assert behind.returncode == 2
    assert "at revision 0007" in _one_error_line(behind.stderr)


def test_a_database_that_does_not_answer_is_one_line() -> None:
    env = {"REMARKET_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"}
    for command in (["keys", "list"], ["discounts", "stock", "spring"]):
        code, said = _invoke(command, env)
        assert code == 2 and "\n" not in said, (command, said)
        assert "the database does not answer" in said, (command, said)
    for command in (["report"], ["db", "current"]):
        result = run(*command, env=env)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "the database does not answer" in _one_error_line(result.stderr)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"remarket {__version__}"


def _command_paths(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths += _command_paths(sub, (*path, name))
    return paths


def test_every_command_takes_h_and_its_help_has_no_type_hints() -> None:
    paths = _command_paths(get_command(app))
    assert ("keys", "list") in paths and ("db", "downgrade") in paths and len(paths) > 20
    runner = CliRunner()
    for path in paths:
        short = runner.invoke(app, [*path, "-h"], env={"COLUMNS": "120"})
        assert short.exit_code == 0, (path, short.output)
        long = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        assert short.output == long.output
        assert "Usage:" in short.output
        hints = re.findall(r"<(?:bool|str|int|float|path|text)>", short.output)
        assert not hints, (path, hints, short.output)
    help_text = runner.invoke(app, ["preview", "-h"], env={"COLUMNS": "120"}).output
    assert re.search(r"--port\s+PORT", help_text), help_text
    # The list of commands reads each summary as one sentence, not the docstring's lines.
    listing = runner.invoke(app, ["-h"], env={"COLUMNS": "200"}).output
    assert "a worker together (not for production)." in listing, listing


def test_keys_list_shows_names_and_dates_never_the_keys(tmp_path: Path) -> None:
    env = {"REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}"}
    assert run("db", "upgrade", env=env).returncode == 0
    empty = run("keys", "list", env=env)
    assert empty.returncode == 0 and "no stored keys" in empty.stdout
    shop = run("keys", "create", "shop", env=env).stdout.strip()
    backup = run("keys", "create", "backup", env=env).stdout.strip()
    assert shop.startswith("rk_") and backup.startswith("rk_")
    assert run("keys", "revoke", "backup", env=env).returncode == 0
    listed = run("keys", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "shop" in line or "backup" in line]
    assert len(rows) == 2
    assert "shop" in rows[0] and "active" in rows[0]
    assert "backup" in rows[1] and "revoked" in rows[1]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows[0])
    assert shop not in listed.stdout and backup not in listed.stdout
    assert shop[3:12] not in listed.stdout


def test_db_current_and_downgrade(tmp_path: Path) -> None:
    from remarket_mailer.db.migrate import head_revision

    env = {"REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'db.db'}"}
    fresh = run("db", "current", env=env)
    assert fresh.returncode == 0 and "not migrated" in fresh.stdout
    assert run("db", "upgrade", env=env).returncode == 0
    head = head_revision()
    current = run("db", "current", env=env)
    assert f"at revision {head} (head: up to date)" in current.stdout
    # Without --yes it asks; "no" changes nothing.
    refused = subprocess_input("db", "downgrade", env=env, answer="n\n")
    assert refused.returncode == 1
    assert f"at revision {head} " in run("db", "current", env=env).stdout
    down = run("db", "downgrade", "--yes", env=env)
    assert down.returncode == 0, down.stderr
    previous = f"{int(head) - 1:04d}"
    assert f"database at revision {previous}" in down.stdout
    behind = run("db", "current", env=env).stdout
    assert f"at revision {previous}" in behind and "run `remarket db upgrade`" in behind
    unknown = run("db", "downgrade", "--yes", "nope", env=env)
    assert unknown.returncode == 2 and "'nope'" in _one_error_line(unknown.stderr)
    assert run("db", "upgrade", env=env).returncode == 0
    assert f"at revision {head} (head" in run("db", "current", env=env).stdout


def subprocess_input(*args: str, env: dict[str, str], answer: str) -> object:
    import os
    import subprocess

    from tests.e2e.test_cli import REMARKET

    return subprocess.run(
        [*REMARKET, *args],
        cwd=ROOT,
        input=answer,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_workflows_validate_refuses_a_step_whose_template_does_not_exist(
    tmp_path: Path,
) -> None:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    text = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    assert "template: abandoned_cart/reminder_2" in text
    (workflows / "cart.yaml").write_text(
        text.replace("template: abandoned_cart/reminder_2", "template: abandoned_cart/remindr_2")
    )
    result = run("workflows", "validate", str(workflows), "--templates", str(ROOT / "templates"))
    assert result.returncode == 1, result.stdout
    line = next(x for x in result.stdout.splitlines() if "remindr_2" in x)
    number = text.splitlines().index("    template: abandoned_cart/reminder_2") + 1
    assert line.startswith(f"{workflows / 'cart.yaml'}:{number}: step 'reminder_2' uses ")
    assert "template 'abandoned_cart/remindr_2'" in line
    templates = str(ROOT / "templates")
    ok = run("workflows", "validate", str(ROOT / "workflows"), "--templates", templates)
    assert ok.returncode == 0, ok.stdout
    elsewhere = run("workflows", "validate", str(ROOT / "workflows"), "--templates", str(tmp_path))
    assert elsewhere.returncode == 1 and "which has no" in elsewhere.stdout


def test_preview_port_is_not_one_docker_compose_publishes() -> None:
    """It was 8025, Mailpit's web UI in docker-compose.yml: a writer runs both."""
    import yaml

    preview = get_command(app).commands["preview"]  # type: ignore[attr-defined]
    port = next(p.default for p in preview.params if p.name == "port")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    published = {
        int(str(mapping).split(":")[-2])
        for service in compose["services"].values()
        for mapping in service.get("ports", [])
    }
    assert 8025 in published and port not in published
    assert f"http://127.0.0.1:{port}/preview/" in (ROOT / "README.md").read_text()


DEMO_EVENTS = ROOT / "src" / "remarket_mailer" / "demo" / "events.jsonl"


def test_simulate_table_and_summary_read_as_tables() -> None:
    """The summary used to be a Python dict repr, rows still pending said "scheduled: None"
    and the step column repeated the workflow's name."""
    result = run("simulate", str(DEMO_EVENTS), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "None" not in out and "{'" not in out and "sent_by_workflow" not in out
    rows = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in out.splitlines()
        if line.startswith("│ 2026-")
    ]
    assert rows and all(len(row) == 5 for row in rows), out
    workflows = {row[1] for row in rows}
    assert "abandoned_cart" in workflows
    assert all(row[2] and row[1] not in row[2] for row in rows), out
    assert {"reminder_1", "reminder_2", "last_chance"} <= {row[2] for row in rows}
    outcomes = {row[4] for row in rows}
    assert any(o.startswith("sent (code CART-") for o in outcomes), outcomes
    assert "skipped: no_consent" in outcomes
    summary = {
        cells[0]: int(cells[1])
        for line in out.split("summary", 1)[1].splitlines()
        if line.startswith("│") and (cells := [c.strip() for c in line.strip("│").split("│")])
    }
    assert summary["events replayed"] == 29 and summary["emails sent"] == 12
    assert summary["sent: abandoned_cart"] == 4
    assert summary["skipped: exited"] == 2


def test_simulate_reports_progress_as_the_events_go_in(tmp_path: Path) -> None:
    import json

    from remarket_mailer.config import load_settings
    from remarket_mailer.delivery.providers.memory import MemoryProvider
    from remarket_mailer.entrypoints.demo import run_demo

    events = [json.loads(line) for line in DEMO_EVENTS.read_text().splitlines() if line]
    calls: list[tuple[int, int]] = []
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'sim.db'}",
        broker_url="stub://",
        provider_url="memory://",
        secret_key="test-secret-key-0123456789-0123456789",
        workflows_dir=ROOT / "workflows",
        templates_dir=ROOT / "templates",
    )
    result = run_demo(
        settings,
        events=events,
        provider=MemoryProvider(),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert sum(1 for r in result.rows if r.status == "sent") == 12
    assert len(calls) > 10 and {total for _, total in calls} == {len(events)}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] < len(events) and calls[-1] == (29, 29)


def test_renewal_scan_by_hand(tmp_path: Path) -> None:
    env = {"REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'scan.db'}"}
    assert run("db", "upgrade", env=env).returncode == 0
    result = run("renewals", "scan", env=env)
    assert result.returncode == 0, result.stderr
    assert "0 subscription(s) renewing within 31 days" in result.stdout
