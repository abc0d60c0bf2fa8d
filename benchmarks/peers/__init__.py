"""Peers for benchmarks/e2e.py: what a shop would run instead, sending the same email to the
same sink. Each script prepares (rows, queued tasks), says ``ready`` on stderr, starts on a
line on stdin and is measured at the sink like ours. Installed by
``pip install -e '.[bench-peers]'``; e2e.py skips a peer that is not installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e2e_stack import Stack

HERE = Path(__file__).resolve().parent

# peer -> the configurations measured (the argument its script takes)
PEERS: dict[str, tuple[str, ...]] = {
    "django-post-office send_queued_mail": ("processes=1", "processes=2"),
    "Celery task (Jinja render + smtplib)": ("concurrency=2", "concurrency=8"),
}
_MODULES = {
    "django-post-office send_queued_mail": ("post_office", "django"),
    "Celery task (Jinja render + smtplib)": ("celery",),
}
_SCRIPTS = {
    "django-post-office send_queued_mail": "post_office_bench.py",
    "Celery task (Jinja render + smtplib)": "celery_bench.py",
}


def peer_missing(name: str) -> bool:
    return any(importlib.util.find_spec(module) is None for module in _MODULES[name])


def run_peer(stack: Stack, name: str, configuration: str, n: int) -> float:
    """One measurement of a peer: emails/s at the SMTP sink, first arrival to last."""
    from procs import Spawned

    option, _, value = configuration.partition("=")
    script = HERE / _SCRIPTS[name]
    slug = _SCRIPTS[name].removesuffix(".py")
    peer = Spawned(
        [sys.executable, str(script), "--smtp", str(stack.smtp.port), "--message",
         str(stack.message_file), "--emails", str(n), f"--{option}", value,
         "--postgres", stack.admin_url, "--redis", stack.redis_url],
        {}, stack.directory / f"{slug}-{value}.log", stdin=subprocess.PIPE,
    )  # fmt: skip
    try:
        peer.wait_for_lines("ready", 1, seconds=max(120.0, n / 20))
        stack.smtp.reset()
        since = time.time()
        assert peer.process.stdin is not None
        peer.process.stdin.write(b"go\n")
        peer.process.stdin.flush()
        # Celery's worker process starts on the signal: it is timed from its first email.
        started = None if name.startswith("Celery") else since
        return stack.smtp.wait_for(n, max(120.0, n / 10), alive=[peer], since=started)
    finally:
        peer.stop()
