"""``REMARKET_LOG_FORMAT=json`` as an operator runs it: ``remarket api`` with two worker
processes writes only JSON lines, uvicorn's access log and start-up lines included."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port
from tests.e2e.test_cli import REMARKET, run


def test_the_api_and_its_access_log_write_one_json_object_per_line(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REMARKET_")},
        "REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
        "REMARKET_BROKER_URL": "stub://",
        "REMARKET_API_KEYS": "test-key",
        "REMARKET_SECRET_KEY": "test-secret-key-0123456789-0123456789",
        "REMARKET_WORKFLOWS_DIR": str(ROOT / "workflows"),
        "REMARKET_TEMPLATES_DIR": str(ROOT / "templates"),
        "REMARKET_LOG_FORMAT": "json",
    }
    upgrade = subprocess.run(
        [*REMARKET, "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    port = free_port()
    process = subprocess.Popen(
        [*REMARKET, "api", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        refused = httpx.post(f"http://127.0.0.1:{port}/v1/events", json={}, timeout=5)
        assert refused.status_code == 401
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    lines = [json.loads(text) for text in output.splitlines() if text.strip()]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in lines), output
    access = [entry for entry in lines if entry["logger"] == "uvicorn.access"]
    assert {"method": "GET", "path": "/v1/health", "status": 200}.items() <= access[0].items()
    assert any(e["path"] == "/v1/events" and e["status"] == 401 for e in access), access
    # The access lines come from the spawned worker processes, the first of these from the
    # supervisor: both log JSON.
    messages = [e["message"] for e in lines]
    assert any(m.startswith("Started parent process") for m in messages), messages
    assert any(m.startswith("Started server process") for m in messages), messages


def test_a_bad_log_format_stops_the_processes_with_one_line() -> None:
    for command in (["api", "--port", "1"], ["worker"], ["scheduler"]):
        result = run(*command, env={"REMARKET_LOG_FORMAT": "xml"})
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.strip().splitlines() == [
            "error: REMARKET_LOG_FORMAT: Input should be 'text' or 'json'"
        ]
