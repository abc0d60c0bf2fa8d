"""Processes for the black-box benchmarks: start them, wait for them, read their CPU time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx

TICK = os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _table() -> tuple[dict[int, int], dict[int, int]]:
    """Every process's parent and CPU ticks so far."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if fields is None:
            continue
        # after the command: state, ppid, ...; utime and stime are fields 14 and 15 (1-based)
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return parents, ticks


def descendants(pids: Sequence[int], parents: dict[int, int] | None = None) -> set[int]:
    """``pids`` and all their live descendants."""
    parents = parents if parents is not None else _table()[0]
    wanted = set(pids)
    while more := {pid for pid, parent in parents.items() if parent in wanted} - wanted:
        wanted |= more
    return wanted


def cpu_seconds(pids: Sequence[int], with_children: bool = True) -> float:
    """User + system CPU of ``pids`` and, with ``with_children``, all their live descendants
    (``remarket worker --workers 2`` is a supervisor and two children)."""
    parents, ticks = _table()
    wanted = descendants(pids, parents) if with_children else set(pids)
    return sum(ticks.get(pid, 0) for pid in wanted) / TICK


def wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {seconds:.0f} s")


class Spawned:
    """A child process whose stderr goes to a file (read for readiness lines and errors)."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        log: Path,
        stdin: int | None = None,
        stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    ) -> None:
        self.log = log
        self._file = log.open("wb")
        self.process = subprocess.Popen(
            list(args),
            env={**os.environ, **env},
            stdin=stdin,
            stdout=stdout,
            stderr=self._file,
        )
        self.pid = self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_lines(self, needle: str, count: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while self.text().count(needle) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.log.name}: no {count} x {needle!r}; last lines:\n"
                    + "\n".join(self.text().splitlines()[-15:])
                )
            time.sleep(0.1)

    def stop(self, seconds: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._file.close()


class Sink:
    """An e2e_sinks.py process and its stats port."""

    def __init__(self, kind: str, directory: Path, *extra: str) -> None:
        from common import free_port

        self.port, self.stats_port = free_port(), free_port()
        script = str(Path(__file__).with_name("e2e_sinks.py"))
        self.spawned = Spawned(
            [sys.executable, script, kind, str(self.port), str(self.stats_port), *extra],
            {},
            directory / f"sink-{kind}.log",
        )
        wait_for_port(self.port)
        wait_for_port(self.stats_port)
        self.pid = self.spawned.pid

    def stats(self) -> dict[str, object]:
        answer: dict[str, object] = httpx.get(f"http://127.0.0.1:{self.stats_port}/").json()
        return answer

    def reset(self) -> None:
        httpx.post(f"http://127.0.0.1:{self.stats_port}/")

    def wait_for(
        self, count: int, seconds: float, alive: Sequence[Spawned] = (), since: float | None = None
    ) -> float:
        """Wait until ``count`` messages arrived; their rate per second from ``since`` (Unix
        time: when the sender was told to go) to the last arrival, or without it from the
        first arrival to the last (the messages of the first arrival not counted)."""
        deadline = time.monotonic() + seconds
        while True:
            stats = self.stats()
            if int(str(stats["messages"])) >= count:
                break
            for process in alive:
                if process.process.poll() is not None:
                    raise RuntimeError(f"{process.log.name} ended:\n{process.text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {stats['messages']} of {count} messages arrived")
            time.sleep(0.05)
        first, last = float(str(stats["first"])), float(str(stats["last"]))
        messages = int(str(stats["messages"]))
        if since is not None:
            return messages / max(last - since, 1e-6)
        return (messages - int(str(stats["first_count"]))) / max(last - first, 1e-6)

    def stop(self) -> None:
        self.spawned.stop()
