"""Starting the long-running processes as an operator would: refuse to run unsafe settings
with one line and exit code 2; the demo needs no configuration."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, ROOT, free_port
from tests.e2e.test_cli import REMARKET


def start(
    command: list[str], tmp_path: Path, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run a process that would serve forever if it accepted its settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("REMARKET_")}
    base.update(
        {
            # Everything else valid, so the secret is the only reason to refuse.
            "REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
            "REMARKET_BROKER_URL": REDIS_URL,
            "REMARKET_WORKFLOWS_DIR": str(ROOT / "workflows"),
            "REMARKET_TEMPLATES_DIR": str(ROOT / "templates"),
        }
    )
    base.update(env)
    return subprocess.run(
        [*REMARKET, *command],
        cwd=tmp_path,  # no stray .env file
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


API = ["api", "--port", "0"]  # the port is replaced by a free one


def _command(command: list[str]) -> list[str]:
    return [*command[:2], str(free_port())] if command[0] == "api" else command


@pytest.mark.parametrize(
    ("command", "secret"),
    [
        (API, None),
        (["worker"], None),
        (["scheduler"], None),
        (API, ""),
        (["worker"], "change-me-in-production-this-is-not-a-secret"),
        (["scheduler"], "too-short-0123456789"),
    ],
    ids=[
        "api-unset",
        "worker-unset",
        "scheduler-unset",
        "api-empty",
        "worker-old-default",
        "scheduler-short",
    ],
)
def test_service_refuses_to_start_without_a_real_secret_key(
    tmp_path: Path, command: list[str], secret: str | None
) -> None:
    env = {} if secret is None else {"REMARKET_SECRET_KEY": secret}
    result = start(_command(command), tmp_path, env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "REMARKET_SECRET_KEY" in lines[0]
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("command", "name", "value"),
    [
        (API, "PROVIDERS", "bulk=smtp://x"),  # not JSON: pydantic-settings' own error
        (["worker"], "BATCH_SIZE", "lots"),
        (["scheduler"], "CONSENT_RULES", '{"a": 1}'),
    ],
    ids=["api", "worker", "scheduler"],
)
def test_every_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, command: list[str], name: str, value: str
) -> None:
    env = {"REMARKET_SECRET_KEY": "s" * 40, f"REMARKET_{name}": value}
    result = start(_command(command), tmp_path, env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"REMARKET_{name}" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_demo_needs_no_secret_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REMARKET_SECRET_KEY"}
    result = subprocess.run(
        [
            *REMARKET,
            "demo",
            "--database",
            f"sqlite:///{tmp_path / 'demo.db'}",
            "--outbox",
            str(tmp_path / "outbox"),
        ],
        cwd=ROOT,
        env={**env, "REMARKET_SECRET_KEY": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "emails written" in result.stdout


def test_metrics_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"REMARKET_SECRET_KEY": "s" * 40, "REMARKET_METRICS_PORT": str(port)}
        assert start(["db", "upgrade"], tmp_path, env).returncode == 0  # a valid database
        result = start(_command(API), tmp_path, env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: REMARKET_METRICS_PORT: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
