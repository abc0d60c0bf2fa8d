"""The processes of benchmarks/e2e.py: ours (api, scheduler, worker), the sinks, the baselines."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from e2e_baselines import NOOP_NAMESPACE, NOOP_QUEUE
from procs import Sink, Spawned, cpu_seconds, descendants, wait_for_port
from sqlalchemy import create_engine, text

BASELINES = str(Path(__file__).with_name("e2e_baselines.py"))


def remarket(*args: str) -> list[str]:
    """The ``remarket`` command as users run it, with this interpreter."""
    return [sys.executable, "-c", "from remarket_mailer.cli import main; main()", *args]


class Stack:
    """What lives for the whole run: the database, the API, both sinks. ``ours`` runs one
    measurement; ``cpu`` and ``connections`` collect what each measurement saw."""

    def __init__(
        self,
        directory: Path,
        env: dict[str, str],
        database_url: str,
        cert: Path,
        key: Path,
        port: int,
        post: Callable[[str, int, str], None],
        admin_url: str,
    ) -> None:
        self.directory, self.env, self.port = directory, env, port
        self.database_url = database_url
        self.redis_url = env["REMARKET_BROKER_URL"]
        self.certificate = (cert, key)
        self.post = post
        self.admin_url = admin_url  # where the peers make their own scratch databases
        self.api = f"http://127.0.0.1:{port}"
        self.cpu: dict[str, dict[str, list[float]]] = {}
        self.connections: dict[str, list[int]] = {}
        self.message_file = directory / "message.eml"
        self.spy_options: list[str] = []
        self.profile: Path | None = None
        """A directory: record the worker processes with py-spy there (``--profile``)."""
        self._engine = create_engine(database_url)

    def __enter__(self) -> Stack:
        self.smtp = Sink("smtp", self.directory)
        self.esp = Sink("esp", self.directory, *(str(p) for p in self.certificate))
        self.api_process = Spawned(
            remarket("api", "--port", str(self.port)), self.env, self.directory / "api.log"
        )
        wait_for_port(self.port, 60)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.api_process.stop()
        self.smtp.stop()
        self.esp.stop()
        self._engine.dispose()

    def provider_url(self, kind: str) -> str:
        if kind == "smtp":
            return f"smtp://127.0.0.1:{self.smtp.port}"
        return f"postmark://token@127.0.0.1:{self.esp.port}?stream=broadcast"

    def flush_broker(self) -> None:
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()

    def backends(self) -> dict[int, float]:
        """PostgreSQL backends serving this run's database, and their CPU seconds so far."""
        with self._engine.connect() as connection:
            pids = connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalars()
            return {pid: cpu_seconds([pid], with_children=False) for pid in pids}

    def ours(self, kind: str, workers: int, n: int, tag: str) -> float:
        """One measurement of ours: ``n`` due emails to the ``kind`` sink; emails/s."""
        sink = self.smtp if kind == "smtp" else self.esp
        env = {**self.env, "REMARKET_PROVIDER_URL": self.provider_url(kind)}
        self.flush_broker()
        log = self.directory / f"{tag}"
        worker = Spawned(remarket("worker", "--workers", str(workers)), env, log.with_suffix(".w"))
        scheduler = Spawned(remarket("scheduler"), env, log.with_suffix(".s"))
        try:
            worker.wait_for_lines("worker started", workers)
            scheduler.wait_for_lines("scheduler started", 1)
            scheduler.process.send_signal(signal.SIGSTOP)
            self.post(self.api, n, tag)
            sink.reset()
            processes = {"worker": worker.pid, "scheduler": scheduler.pid,
                         "api": self.api_process.pid, "sink": sink.pid}  # fmt: skip
            before = {role: cpu_seconds([pid]) for role, pid in processes.items()}
            backends = self.backends()
            spy = self._py_spy(worker.pid, tag)
            since = time.time()
            scheduler.process.send_signal(signal.SIGCONT)
            rate = sink.wait_for(n, max(60.0, n / 20), alive=[worker, scheduler], since=since)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            after = {role: cpu_seconds([pid]) for role, pid in processes.items()}
            now = self.backends()
            cpu = self.cpu.setdefault(f"{kind}, {workers} worker process(es)", {})
            for role in processes:
                cpu.setdefault(role, []).append(after[role] - before[role])
            cpu.setdefault("postgres", []).append(
                sum(seconds - backends.get(pid, 0.0) for pid, seconds in now.items())
            )
            self.connections.setdefault(f"{workers} process(es)", []).append(
                self.worker_connections(worker.pid, scheduler.pid)
            )
            if kind == "smtp":
                self.message_file.write_text(str(sink.stats()["sample"]))
            return rate
        finally:
            scheduler.process.send_signal(signal.SIGCONT)
            scheduler.stop()
            worker.stop()

    def _py_spy(self, pid: int, tag: str) -> subprocess.Popen[bytes] | None:
        if self.profile is None:
            return None
        self.profile.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or "py-spy"
        output = self.profile / f"{tag}.txt"
        process = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "200", *self.spy_options,
             "--format", "raw", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # py-spy attaches before the first batch arrives
        return process

    def worker_connections(self, worker: int, scheduler: int) -> int:
        """Connections to this run's database opened by the worker processes: all of them
        less the API's and the scheduler's (told apart by the client port each holds)."""
        with self._engine.connect() as connection:
            ports = set(
                connection.execute(
                    text(
                        "SELECT client_port FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalars()
            )
        return len(ports & _local_ports([worker], True))


def _local_ports(pids: list[int], with_children: bool) -> set[int]:
    """Local TCP ports of the sockets the processes (and their children) hold open."""
    inodes: set[str] = set()
    for pid in descendants(pids) if with_children else pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = fd.readlink().as_posix() if fd.is_symlink() else ""
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def raw_smtplib(stack: Stack, processes: int, n: int) -> float:
    """Raw smtplib from ``processes`` processes, one reused connection each; emails/s."""
    share = [n // processes + (1 if i < n % processes else 0) for i in range(processes)]
    senders = [
        Spawned(
            [
                sys.executable,
                BASELINES,
                "smtp",
                str(stack.smtp.port),
                str(stack.message_file),
                str(count),
            ],
            {},
            stack.directory / f"raw-{i}.log",
            stdin=subprocess.PIPE,
        )  # fmt: skip
        for i, count in enumerate(share)
    ]
    try:
        for sender in senders:
            sender.wait_for_lines("ready", 1)
        stack.smtp.reset()
        since = time.time()
        for sender in senders:
            assert sender.process.stdin is not None
            sender.process.stdin.write(b"go\n")
            sender.process.stdin.flush()
        return stack.smtp.wait_for(n, max(60.0, n / 20), alive=[], since=since)
    finally:
        for sender in senders:
            sender.stop()


def noop_drain(stack: Stack, processes: int, threads: int, n: int) -> float:
    """A Dramatiq no-op actor's ``n`` messages drained by ``processes`` × ``threads``;
    messages/s from the first run to the last, as ours is counted."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    stack.flush_broker()
    broker = RedisBroker(url=stack.redis_url, namespace=NOOP_NAMESPACE)
    actor = dramatiq.actor(broker=broker, queue_name=NOOP_QUEUE, actor_name="noop")(_noop)
    drains = [
        Spawned(
            [sys.executable, BASELINES, "noop", stack.redis_url, str(threads)],
            {},
            stack.directory / f"noop-{i}.log",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        for i in range(processes)
    ]
    try:
        for number in range(n):
            actor.send(number)
        for drain in drains:
            drain.wait_for_lines("ready", 1)
        since = time.time()
        for drain in drains:
            assert drain.process.stdin is not None
            drain.process.stdin.write(b"go\n")
            drain.process.stdin.flush()
        broker.join(NOOP_QUEUE, timeout=int(max(60.0, n / 20) * 1000))
        seen = []
        for drain in drains:
            drain.process.send_signal(signal.SIGTERM)
            out, _ = drain.process.communicate(timeout=30)
            seen.append(json.loads(out))
    finally:
        for drain in drains:
            drain.stop()
        broker.close()
    last = max(s["last"] for s in seen if s["count"])
    return sum(s["count"] for s in seen) / max(last - since, 1e-6)


def _noop(_n: int) -> None:
    pass
