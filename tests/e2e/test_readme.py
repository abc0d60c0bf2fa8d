"""The README's "Try it" block, run the way a new user runs it: bash, the installed
``remarket`` command, curl, in a fresh copy of the workflows and templates.

Three changes only, each for the machine rather than the user: the ``pip install -e .`` line is
left out (the package is installed already; running it would repoint this environment at the
copy), port 8000 becomes a free port, and when it is night in Amsterdam the contact's
timezone becomes one where it is day (at night the README says the reminder is deferred,
which ``test_readme_night_defers_and_says_why`` checks instead).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ROOT

_MARK = "<!-- tests/e2e/test_readme.py runs this block as it is"


def readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split(_MARK, 1)[1]
    match = re.search(r"```sh\n(.*?)```", after, re.S)
    assert match, "the README's Try-it block is missing"
    return match.group(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _zone_at_hour(hour: int) -> str:
    """A fixed-offset zone where the local time now is ``hour`` o'clock."""
    now = datetime.now(UTC)
    offset = (hour - now.hour + 12) % 24 - 12  # -12..11
    # Etc/GMT signs are inverted (POSIX): Etc/GMT-2 is UTC+2.
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def _run(block: str, tmp_path: Path, timezone: str | None) -> subprocess.CompletedProcess[str]:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the README's example as written")
    for folder in ("workflows", "templates"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    port = _free_port()
    lines = [line for line in block.splitlines() if line.strip() != "pip install -e ."]
    script = "\n".join(lines).replace("localhost:8000", f"localhost:{port}")
    script = script.replace("remarket dev &", f"remarket dev --port {port} &")
    if timezone is not None:
        script = script.replace('"Europe/Amsterdam"', f'"{timezone}"')
    (tmp_path / "try.sh").write_text(script + "\n", encoding="utf-8")
    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMARKET_")}
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["COLUMNS"] = "200"  # a wide terminal: the test reads table cells unwrapped
    return subprocess.run(
        ["bash", "try.sh"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env
    )


def test_readme_example_sends_the_email(tmp_path: Path) -> None:
    amsterdam = datetime.now(ZoneInfo("Europe/Amsterdam")) - timedelta(minutes=61)
    daytime = 8 <= amsterdam.hour < 20 and 8 <= datetime.now(ZoneInfo("Europe/Amsterdam")).hour < 20
    result = _run(readme_block(), tmp_path, None if daytime else _zone_at_hour(12))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Traceback" not in out, out
    emails = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(emails) == 1, out
    body = emails[0].read_text(encoding="utf-8")
    assert "To: Ann <ann@example.org>" in body
    # contacts show: Ann's timeline names the workflow, the sent reminder and the next ones.
    assert "started abandoned_cart" in out
    assert "sent abandoned_cart/reminder_1" in out
    assert "due abandoned_cart/reminder_2" in out
    assert '"accepted":3' in out


def test_readme_night_defers_and_says_why(tmp_path: Path) -> None:
    # The README's promise for a contact at night: deferred to the morning, not dropped, and
    # contacts show says so.
    result = _run(readme_block(), tmp_path, _zone_at_hour(2))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert not list((tmp_path / "outbox").glob("*.eml")), out
    assert "deferred abandoned_cart/reminder_1" in out
    assert "quiet_hours" in out


def test_readme_without_consent_skips_and_says_why(tmp_path: Path) -> None:
    # The first-hour trap: no consent.changed, so the default opt-in rule skips the reminder.
    # The worker's log and contacts show both say so.
    block = readme_block()
    consent = re.search(r'  \{"event_id": "try-2".*?"source": [^\n]*\n', block, re.S)
    assert consent, "the README's example has no consent event to leave out"
    result = _run(block.replace(consent.group(0), ""), tmp_path, _zone_at_hour(12))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert not list((tmp_path / "outbox").glob("*.eml")), out
    assert "not_sent: no_consent=1" in out
    assert "skipped abandoned_cart/reminder_1" in out
    assert "no consent for this kind of email" in out
