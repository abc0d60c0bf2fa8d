"""The fault suite's harness: real ``remarket`` processes, a chaos SMTP sink, a shop client.

Every fault test runs the product as an operator would: ``remarket api``, ``remarket
scheduler`` and ``remarket worker`` as subprocesses on a fresh PostgreSQL database and a
flushed Redis broker, sending through SMTP to a sink in the test process that records every
DATA transaction by Message-ID. The test posts carts the way a shop would (batches, retried on
503 after Retry-After), injects its fault, waits until the database says every delivery is
final (or a bounded deadline), then counts: by Message-ID at the sink, by status in the DB.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from remarket_mailer.delivery.providers.smtp import SmtpProvider, SmtpSettings
from remarket_mailer.services import sending
from tests.conftest import PG_ADMIN_URL, ROOT, free_port

REMARKET = [sys.executable, "-m", "remarket_mailer.cli"]
API_KEY = "fault-suite-key"
SECRET_KEY = "fault-suite-secret-0123456789abcdefghijk"  # 40 characters
assert len(SECRET_KEY) == 40
OBSERVER = "remarket-fault-observer"
"""application_name of the test's own connections: the backend killer spares them."""

WORKER_THREADS = 4
SMTP_REQUEST = 10
"""Messages per SMTP request (SmtpProvider.max_batch): what one thread has on the wire."""
SMTP_TIMEOUT = 5
LEASE_SECONDS = math.ceil(
    sending.PREPARE_SECONDS
    + SmtpProvider(SmtpSettings("127.0.0.1", 25, timeout=SMTP_TIMEOUT)).request_seconds()
    + sending.RECORD_SECONDS
    + sum(sending.RECORD_RETRY_PAUSES)
)
"""The shortest lease the worker accepts for an SMTP timeout of 5 s (``check_lease``): the
kill and flush tests wait it out, so it is kept as short as the worker allows."""

STEPS = ("first", "second")
WORKFLOW = """\
# The fault suite's workflow: two emails per cart, due at once and a second later; exempt
# from caps so each contact's two emails both go out at once.
id: fault_cart
name: Fault suite cart
category: marketing
caps_exempt: true
trigger:
  event: cart.updated
  key: cart_id
steps:
  - id: first
    wait: 0s
    template: abandoned_cart/reminder_1
  - id: second
    wait: 1s
    template: abandoned_cart/reminder_1
"""

FINAL = ("sent", "failed", "skipped")
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)


# --- the SMTP sink --------------------------------------------------------------------------


@dataclass
class Chaos:
    """Per DATA transaction: the share answered 451, answered 550, or dropped (the connection
    aborted before any reply); the rest is accepted."""

    transient: float = 0.0
    permanent: float = 0.0
    drop: float = 0.0
    seed: int = 15


@dataclass
class Attempt:
    message_id: str
    outcome: str
    """accepted, 451, 550 or dropped"""


class ChaosSink:
    """An aiosmtpd server in a thread that records every DATA transaction by Message-ID."""

    def __init__(self, chaos: Chaos | None = None) -> None:
        self.chaos = chaos or Chaos()
        self.attempts: list[Attempt] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self._random = random.Random(self.chaos.seed)
        self._controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout={SMTP_TIMEOUT}"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        found = _MESSAGE_ID.search(bytes(envelope.content)[:8192])
        message_id = found.group(1).decode() if found else "?"
        roll = self._random.random()
        chaos = self.chaos
        if roll < chaos.drop:
            outcome = "dropped"
        elif roll < chaos.drop + chaos.transient:
            outcome = "451"
        elif roll < chaos.drop + chaos.transient + chaos.permanent:
            outcome = "550"
        else:
            outcome = "accepted"
        with self.lock:
            self.attempts.append(Attempt(message_id, outcome))
        if outcome == "dropped":
            # The message was transferred but never acknowledged: the client cannot know.
            server.transport.abort()
            await asyncio.sleep(0)
            return "421 4.4.2 connection dropped"
        if outcome == "451":
            return "451 4.3.0 fault suite: try again later"
        if outcome == "550":
            return "550 5.7.1 fault suite: message refused"
        return "250 2.0.0 OK"

    def accepted(self) -> Counter[str]:
        with self.lock:
            return Counter(a.message_id for a in self.attempts if a.outcome == "accepted")

    def arrived(self) -> int:
        """Distinct Message-IDs accepted so far."""
        return len(self.accepted())

    def snapshot(self) -> list[Attempt]:
        with self.lock:
            return list(self.attempts)


def delivery_id_of(message_id: str) -> int:
    """Our Message-IDs start with the delivery id (delivery/message.py make_message_id)."""
    return int(message_id.partition(".")[0])


# --- PostgreSQL -----------------------------------------------------------------------------


def admin_engine() -> Engine:
    return create_engine(
        PG_ADMIN_URL,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"application_name": OBSERVER, "connect_timeout": 3},
    )


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new empty PostgreSQL database (not migrated), dropped afterwards; yields its URL."""
    name = f"remarket_faults_{uuid.uuid4().hex[:10]}"
    admin = admin_engine()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def observer(url: str) -> Engine:
    """The test's own connection to the product's database (spared by the backend killer)."""
    return create_engine(url, poolclass=NullPool, connect_args={"application_name": OBSERVER})


class BackendKiller:
    """Terminates every backend of one database (but the test's own) every 0.05-0.2 s: often
    enough that the worker's short recording transactions are hit too, not only ingest's."""

    def __init__(self, database: str, seed: int = 15) -> None:
        self.database = database
        self.killed = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._random = random.Random(seed)
        self._thread = threading.Thread(target=self._run, name="backend-killer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        admin = admin_engine()
        connection = None
        try:
            while not self._stop.wait(self._random.uniform(0.05, 0.2)):
                try:
                    # One connection kept open: connecting each round took longer than the
                    # pause itself on a loaded machine.
                    connection = connection or admin.connect()
                    killed = connection.execute(
                        text(
                            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                            "FROM pg_stat_activity WHERE datname = :db "
                            "AND pid <> pg_backend_pid() AND application_name <> :me"
                        ),
                        {"db": self.database, "me": OBSERVER},
                    ).scalar_one()
                except Exception:
                    if connection is not None:
                        connection.close()
                    connection = None
                    continue
                self.killed += int(killed)
                self.rounds += 1
        finally:
            if connection is not None:
                connection.close()
            admin.dispose()


# --- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Stack:
    """The product's processes for one test, sharing one environment."""

    workdir: Path
    database_url: str
    broker_url: str
    smtp_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    _names: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        workflows = self.workdir / "workflows"
        workflows.mkdir(parents=True, exist_ok=True)
        (workflows / "fault_cart.yaml").write_text(WORKFLOW)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self, **overrides: str) -> dict[str, str]:
        values = {
            "REMARKET_DATABASE_URL": self.database_url,
            "REMARKET_BROKER_URL": self.broker_url,
            "REMARKET_PROVIDER_URL": self.smtp_url,
            "REMARKET_WORKFLOWS_DIR": str(self.workdir / "workflows"),
            "REMARKET_TEMPLATES_DIR": str(ROOT / "templates"),
            "REMARKET_SECRET_KEY": SECRET_KEY,
            "REMARKET_PUBLIC_URL": "https://mail.shop.example",
            "REMARKET_API_KEYS": API_KEY,
            "REMARKET_FROM_EMAIL": "Shop <news@shop.example>",
            "REMARKET_LANGUAGES": "en",
            "REMARKET_PROVIDER_RATE": "0",
            "REMARKET_SWEEP_INTERVAL_SECONDS": "0.5",
            "REMARKET_LEASE_SECONDS": str(LEASE_SECONDS),
            "REMARKET_WORKER_THREADS": str(WORKER_THREADS),
            "REMARKET_RETRY_BASE_SECONDS": "1",
        }
        values.update(self.extra_env)
        values.update(overrides)
        # The product's settings come from here only: none from the runner's environment.
        base = {k: v for k, v in os.environ.items() if not k.startswith("REMARKET_")}
        return {**base, **values}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*REMARKET, *args],
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self, role: str, *args: str, **env: str) -> Proc:
        name = f"{role}{next(self._names)}"
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [*REMARKET, role, *args],
                cwd=self.workdir,
                env=self.env(**env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs[name] = proc
        return proc

    def start_api(self) -> Proc:
        proc = self.start("api", "--port", str(self.api_port))
        self.wait_for(proc, lambda: _healthy(self.api_url), "answer /v1/health")
        return proc

    def start_worker(self, **env: str) -> Proc:
        proc = self.start("worker", **env)
        self.wait_for(proc, lambda: "worker started" in proc.output(), "log 'worker started'")
        return proc

    def start_scheduler(self, **env: str) -> Proc:
        proc = self.start("scheduler", **env)
        self.wait_for(proc, lambda: "scheduler started" in proc.output(), "log 'scheduler started'")
        return proc

    def wait_for(self, proc: Proc, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            if proc.popen.poll() is not None:
                code = proc.popen.returncode
                raise AssertionError(f"{proc.name} exited {code}:\n{proc.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{proc.name} did not {what} in 60 s:\n{proc.output()}")
            time.sleep(0.1)

    def kill9(self, proc: Proc) -> None:
        os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)

    def stop(self, proc: Proc) -> None:
        self.stop_many([proc])

    def stop_many(self, procs: list[Proc], grace: float = 10) -> None:
        """SIGTERM to all at once, SIGKILL to whoever is still running after ``grace``."""
        running = [p for p in procs if p.popen.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in running:
            try:
                proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=10)

    def stop_all(self) -> None:
        self.stop_many(list(self.procs.values()))

    def logs(self, lines: int = 30) -> str:
        parts = []
        for proc in self.procs.values():
            tail = proc.output().splitlines()[-lines:]
            parts.append(f"--- {proc.name} (exit {proc.popen.poll()})\n" + "\n".join(tail))
        return "\n".join(parts)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# --- the shop -------------------------------------------------------------------------------


@dataclass
class IngestStats:
    posts: int = 0
    unavailable: int = 0
    """Posts answered 503 (each retried after its Retry-After)."""
    transport_errors: int = 0
    """Posts that got no answer at all (retried)."""
    duplicates: int = 0
    """Events a retried post found already stored."""
    other: list[str] = field(default_factory=list)
    """Anything else: a bug."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def shop_events(people: int, run: str) -> list[list[dict[str, Any]]]:
    """Per person: consent to marketing, then a cart (one enrollment, two emails)."""
    now = datetime.now(UTC)
    per_person = []
    for n in range(people):
        email = f"p{n}.{run}@example.org"
        per_person.append(
            [
                {
                    "event_id": f"{run}-consent-{n}",
                    "type": "consent.changed",
                    "occurred_at": (now - timedelta(seconds=2)).isoformat(),
                    "contact": {"email": email},
                    "topic": "marketing",
                    "status": "granted",
                    "source": "fault-suite",
                },
                {
                    "event_id": f"{run}-cart-{n}",
                    "type": "cart.updated",
                    "occurred_at": (now - timedelta(seconds=1)).isoformat(),
                    "contact": {"email": email},
                    "cart_id": f"{run}-cart-{n}",
                    "currency": "EUR",
                    "total": "74.50",
                    "checkout_url": f"https://shop.example/checkout/{n}",
                    "items": [{"sku": "MUG", "name": "Mug", "quantity": 2, "unit_price": "12.50"}],
                },
            ]
        )
    return per_person


def post_events(
    api_url: str,
    people: int,
    *,
    per_post: int = 50,
    concurrency: int = 2,
    deadline_seconds: float = 150,
) -> IngestStats:
    """Post ``people`` consents and carts through /v1/events/batch as a shop would: a 503 is
    retried after its Retry-After, no answer after a second; every event must end accepted
    (or duplicate, on a retry of a post that was applied after all)."""
    run = uuid.uuid4().hex[:6]
    everyone = shop_events(people, run)
    bodies = [
        [e for person in everyone[i : i + per_post] for e in person]
        for i in range(0, people, per_post)
    ]
    stats = IngestStats()
    deadline = time.monotonic() + deadline_seconds
    queue = list(reversed(bodies))
    queue_lock = threading.Lock()

    def post_one(client: httpx.Client, events: list[dict[str, Any]]) -> None:
        while True:
            if time.monotonic() > deadline:
                with stats.lock:
                    stats.other.append("ingest deadline passed")
                return
            with stats.lock:
                stats.posts += 1
            try:
                response = client.post(
                    "/v1/events/batch",
                    json={"events": events},
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
            except httpx.TransportError:
                with stats.lock:
                    stats.transport_errors += 1
                time.sleep(1)
                continue
            if response.status_code == 503:
                with stats.lock:
                    stats.unavailable += 1
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            body = response.json() if response.status_code == 200 else None
            if body is None or body.get("rejected"):
                with stats.lock:
                    stats.other.append(f"{response.status_code}: {response.text[:300]}")
                return
            with stats.lock:
                stats.duplicates += int(body["duplicate"])
            return

    def poster() -> None:
        with httpx.Client(base_url=api_url, timeout=30) as client:
            while True:
                with queue_lock:
                    if not queue:
                        return
                    events = queue.pop()
                post_one(client, events)

    threads = [threading.Thread(target=poster) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stats


# --- the database's view --------------------------------------------------------------------


def statuses(engine: Engine) -> Counter[str]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT status, count(*) FROM deliveries GROUP BY status"))
        return Counter({status: int(count) for status, count in rows})


def wait_until_final(
    engine: Engine,
    expected: int,
    timeout: float,
    *,
    settled: Callable[[Counter[str]], bool] | None = None,
) -> Counter[str]:
    """Poll until ``expected`` deliveries exist and every one is final (or ``settled`` says
    the rest may stay as they are), or ``timeout`` seconds pass; returns the last count."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            counts = statuses(engine)
        except Exception:  # the database may be under attack: ask again
            counts = Counter()
        total = sum(counts.values())
        done = sum(counts[s] for s in FINAL)
        if total >= expected and (done == total or (settled is not None and settled(counts))):
            return counts
        if time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def wait_for_arrivals(sink: ChaosSink, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (arrived := sink.arrived()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return arrived


@dataclass
class Tally:
    """What one fault did, by Message-ID at the sink and by status in the database."""

    fault: str
    injected: str
    due: int
    arrived: int
    duplicates: int
    lost: int
    statuses: dict[str, int]
    seconds: float
    notes: str = ""

    def line(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in sorted(self.statuses.items()))
        note = f" | {self.notes}" if self.notes else ""
        return (
            f"fault={self.fault} injected={self.injected!r} due={self.due} "
            f"arrived={self.arrived} duplicates={self.duplicates} lost={self.lost} "
            f"db[{counts}] seconds={self.seconds:.0f}{note}"
        )


def tally(
    fault: str,
    injected: str,
    engine: Engine,
    sink: ChaosSink,
    began: float,
    notes: str = "",
) -> Tally:
    """Count what arrived against what the database says was due and sent.

    lost: deliveries the database holds that neither arrived nor ended failed or skipped
    (a delivery still ``retrying`` counts as lost here; the SMTP chaos test allows it)."""
    with engine.connect() as connection:
        rows = list(connection.execute(text("SELECT id, status FROM deliveries")))
    accepted = sink.accepted()
    arrived_ids = {delivery_id_of(m) for m in accepted}
    lost = sum(1 for id_, status in rows if id_ not in arrived_ids and status not in FINAL[1:])
    return Tally(
        fault=fault,
        injected=injected,
        due=len(rows),
        arrived=len(accepted),
        duplicates=sum(accepted.values()) - len(accepted),
        lost=lost,
        statuses=dict(Counter(status for _, status in rows)),
        seconds=time.monotonic() - began,
        notes=notes,
    )


def half_written(engine: Engine, people: int) -> list[str]:
    """What ingest must have written for ``people`` consents and carts, and did not."""
    problems = []
    with engine.connect() as connection:
        counts = {
            table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("events", "contacts", "consents", "carts", "enrollments", "deliveries")
        }
        partial = connection.execute(
            text(
                "SELECT count(*) FROM enrollments e WHERE "
                "(SELECT count(*) FROM deliveries d WHERE d.enrollment_id = e.id) <> :steps"
            ),
            {"steps": len(STEPS)},
        ).scalar_one()
    expected = {
        "events": 2 * people,
        "contacts": people,
        "consents": people,
        "carts": people,
        "enrollments": people,
        "deliveries": people * len(STEPS),
    }
    for table, want in expected.items():
        if counts[table] != want:
            problems.append(f"{table}: {counts[table]} rows, expected {want}")
    if partial:
        problems.append(f"{partial} enrollments without all {len(STEPS)} deliveries")
    return problems


# --- RabbitMQ -------------------------------------------------------------------------------


def rabbitmqctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=timeout
    )


def restart_rabbitmq() -> float:
    """stop_app, a second's pause, start_app; RabbitMQ is started again whatever happens.
    Returns the seconds it was away."""
    began = time.monotonic()
    try:
        rabbitmqctl("stop_app", timeout=120)
        time.sleep(1)
    finally:
        started = rabbitmqctl("start_app", timeout=180)
        rabbitmqctl("await_startup", timeout=180)
    assert started.returncode == 0, started.stderr
    return time.monotonic() - began
