"""The ``remarket`` command as a user runs it."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REDIS_URL, ROOT

REMARKET = [sys.executable, "-m", "remarket_mailer.cli"]


def run(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REMARKET, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_demo_prints_the_timeline_and_writes_real_emails(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    result = run(
        "demo",
        "--database",
        f"sqlite:///{tmp_path / 'demo.db'}",
        "--outbox",
        str(outbox),
        "--html",
        str(tmp_path / "report.html"),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "reminder_1" in out and "last_chance" in out
    assert "exited: order.placed" in out  # Ben bought after the first reminder
    assert "suppressed: unsubscribed" in out  # Chloe opted out
    assert "no_consent" in out
    assert "1 duplicate ignored" in out
    for workflow in (
        "browse_abandonment",
        "post_purchase_cross_sell",
        "renewal_reminder",
        "win_back",
        "back_in_stock",  # Dmitri's teapot, sold out when he looked, is back
        "price_drop",  # Nora's kettle got cheaper
    ):
        assert workflow in out
    files = sorted(outbox.glob("*.eml"))
    sample = []
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message.get_content_type() == "multipart/alternative"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Subject"]
        if not str(message["To"]).endswith("@shoppers.example.net>"):
            sample.append(message)
    # The sample's seven people got 12 emails; the generated shoppers got the rest.
    assert len(sample) == 12 and len(files) > 500
    codes = 0
    for message in sample:
        text = message.get_body(("plain",))
        assert text is not None
        codes += "CART-" in text.get_content()
    assert codes == 2  # Ann's second and third reminders carry her personal codes
    # It ends with the marketer's report: figures in the terminal, the page on disk.
    assert "what the emails earned" in out and "95% CI" in out
    page = Path(out.rsplit("HTML report: ", 1)[1].split()[0])
    assert page.is_file() and "<svg" in page.read_text()


def test_bad_setting_is_one_line_and_exit_2() -> None:
    result = run("db", "upgrade", env={"REMARKET_BROKER_URL": "kafka://nope"})
    assert result.returncode == 2
    assert "REMARKET_BROKER_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_workflows_validate(tmp_path: Path) -> None:
    ok = run("workflows", "validate", str(ROOT / "workflows"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = (
        (ROOT / "workflows" / "abandoned_cart.yaml").read_text().replace("wait: 1h", "wait: soon")
    )
    (tmp_path / "bad.yaml").write_text(broken)
    bad = run("workflows", "validate", str(tmp_path))
    assert bad.returncode == 1
    assert "bad.yaml:" in bad.stdout and "invalid duration" in bad.stdout
    missing = run("workflows", "validate", str(tmp_path / "nope"))
    assert missing.returncode == 2


def test_db_upgrade_and_keys(tmp_path: Path) -> None:
    env = {"REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    assert run("db", "upgrade", env=env).returncode == 0
    created = run("keys", "create", "shop", env=env)
    assert created.returncode == 0 and created.stdout.strip().startswith("rk_")
    again = run("keys", "create", "shop", env=env)
    assert again.returncode == 2 and "exists" in again.stderr
    assert run("keys", "revoke", "shop", env=env).returncode == 0
    assert run("keys", "revoke", "shop", env=env).returncode == 2


def test_simulate_json_backtest(tmp_path: Path) -> None:
    import json

    events = ROOT / "src" / "remarket_mailer" / "demo" / "events.jsonl"
    result = run("simulate", str(events), "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"sends", "skipped", "summary"}
    assert data["summary"]["sent"] == 12
    assert data["summary"]["sent_by_workflow"] == {
        "abandoned_cart": 4,
        "back_in_stock": 2,  # Dmitri's teapot, sold out when he looked, is back
        "browse_abandonment": 2,
        "post_purchase_cross_sell": 1,
        "price_drop": 1,  # Nora's kettle, 129.00 when she looked, now 109.00
        "renewal_reminder": 1,
        "win_back": 1,
    }
    # Eva never consented to marketing, but renewal notices are service messages.
    assert {s["workflow"] for s in data["sends"] if s["contact"] == "eva.nguyen@example.vn"} == {
        "renewal_reminder"
    }
    assert all(
        set(s) == {"at", "workflow", "step", "contact", "template", "discount_code"}
        for s in data["sends"]
    )
    assert data["summary"]["skipped_by_reason"]["exited"] == 2
    # --until cuts the replay short: only the first day's emails.
    early = run("simulate", str(events), "--format", "json", "--until", "2026-11-02T23:00:00Z")
    assert json.loads(early.stdout)["summary"]["sent"] == 3
    broken = tmp_path / "bad.jsonl"
    broken.write_text('{"event_id": "x"}\nnot json\n')
    bad = run("simulate", str(broken))
    assert bad.returncode == 2 and "bad.jsonl:2" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_contacts_export_and_erase(tmp_path: Path) -> None:
    env = {"REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    assert run("db", "upgrade", env=env).returncode == 0
    missing = run("contacts", "export", "nobody@example.org", env=env)
    assert missing.returncode == 2 and "no contact" in missing.stderr
    erased = run("contacts", "erase", "nobody@example.org", "--yes", env=env)
    assert erased.returncode == 0, erased.stderr
    assert "No contact has the address nobody@example.org: nothing was erased." in erased.stdout
    assert "is now on the suppression list" in erased.stdout and "{" not in erased.stdout


def test_worker_and_scheduler_refuse_the_in_process_broker() -> None:
    for command in ("worker", "scheduler"):
        result = run(command, env={"REMARKET_BROKER_URL": "stub://"})
        assert result.returncode == 2, result.stderr
        assert "REMARKET_BROKER_URL" in result.stderr and "Traceback" not in result.stderr


def test_report_command(tmp_path: Path) -> None:
    env = {"REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}
    assert run("db", "upgrade", env=env).returncode == 0
    table = run("report", env=env)
    assert table.returncode == 0, table.stderr
    assert "deliveries since" in table.stdout
    bad = run("report", "--since", "soon", env=env)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_api_with_several_workers_serves_with_nagle_off(tmp_path: Path) -> None:
    """``remarket api --workers 2`` used to exit at once (uvicorn wants an import string for
    workers); now both workers serve, on a listening socket that says IPPROTO_TCP, which is
    what makes asyncio turn Nagle's algorithm off for every accepted connection."""
    import socket
    import time

    import httpx

    from remarket_mailer.entrypoints.serve import _Config

    database = f"sqlite:///{tmp_path / 'api.db'}"
    env = {
        "REMARKET_DATABASE_URL": database,
        "REMARKET_API_KEYS": "test-key",
        "REMARKET_BROKER_URL": "stub://",
        "REMARKET_SECRET_KEY": "test-secret-key-0123456789-0123456789",
    }
    assert run("db", "upgrade", env=env).returncode == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [*REMARKET, "api", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.2)
        assert response.status_code == 200, response.text
    finally:
        process.terminate()
        process.wait(30)
    bound = _Config("remarket_mailer.entrypoints.asgi:create_app", port=0).bind_socket()
    try:
        assert bound.proto == socket.IPPROTO_TCP
    finally:
        bound.close()


def test_api_refuses_zero_workers() -> None:
    result = run("api", "--workers", "0")
    assert result.returncode == 2
    assert "--workers must be at least 1" in result.stderr


def test_the_worker_refuses_a_lease_too_short_for_its_provider(tmp_path: Path) -> None:
    """One request to a 60 s SMTP server may take two minutes; a 60 s lease would let the
    sweeper hand its rows to another worker mid-request."""
    database = f"sqlite:///{tmp_path / 'w.db'}"
    assert run("db", "upgrade", env={"REMARKET_DATABASE_URL": database}).returncode == 0
    result = run(
        "worker",
        env={
            "REMARKET_DATABASE_URL": database,
            "REMARKET_BROKER_URL": REDIS_URL,
            "REMARKET_PROVIDER_URL": "smtp://127.0.0.1:2525?timeout=60",
            "REMARKET_LEASE_SECONDS": "60",
            "REMARKET_SECRET_KEY": "k" * 40,
        },
    )
    assert result.returncode == 2, result.stderr
    assert "REMARKET_LEASE_SECONDS=60 is too short" in result.stderr
    assert "Traceback" not in result.stderr


def test_api_worker_and_scheduler_refuse_a_database_that_was_never_migrated(
    tmp_path: Path,
) -> None:
    """They used to start, answer health 200 and fail every POST with a plain-text 500."""
    env = {
        "REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'never-migrated.db'}",
        "REMARKET_BROKER_URL": REDIS_URL,
        "REMARKET_SECRET_KEY": "k" * 40,
    }
    for command in (["api", "--port", "1"], ["worker"], ["scheduler"]):
        result = run(*command, env=env)
        assert result.returncode == 2, (command, result.stderr)
        assert "not migrated" in result.stderr and "remarket db upgrade" in result.stderr
        assert "Traceback" not in result.stderr


def test_workflows_validate_refuses_a_from_email_with_a_line_break(tmp_path: Path) -> None:
    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    broken = stock.replace(
        "name: Abandoned cart",
        'name: Abandoned cart\nfrom_email: "Shop <news@shop.example>\\r\\nBcc: all@victim.example"',
    )
    (tmp_path / "cart.yaml").write_text(broken)
    result = run("workflows", "validate", str(tmp_path))
    assert result.returncode == 1
    line = broken.splitlines().index(next(x for x in broken.splitlines() if "from_email" in x))
    assert f"{tmp_path / 'cart.yaml'}:{line + 1}: from_email: must be one line" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
