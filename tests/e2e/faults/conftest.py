"""Fixtures of the fault suite: a fresh database, a flushed broker, a sink, the processes.

Needs PostgreSQL and Redis (skipped locally without them, failed under CI=true) and writes
one line per fault to ``faults-report.txt`` in pytest's base temporary directory, also shown
at the end of the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.conftest import service_missing
from tests.e2e.faults.harness import (
    ChaosSink,
    Stack,
    Tally,
    admin_engine,
    fresh_database,
    observer,
    rabbitmqctl,
)

FAULTS_REDIS_URL = os.environ.get("REMARKET_FAULTS_REDIS_URL", "redis://127.0.0.1:6379/6")
"""The broker of the processes under test: flushed before each test, so a Redis database of
its own."""

_REPORT: list[str] = []


@pytest.fixture(scope="session")
def fault_services() -> None:
    import redis

    try:
        with admin_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        service_missing(f"PostgreSQL not reachable: {str(exc)[:120]}")
    try:
        redis.Redis.from_url(FAULTS_REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        service_missing(f"Redis not reachable at {FAULTS_REDIS_URL}: {exc}")


@pytest.fixture
def database_url(fault_services: None) -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = observer(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def flushed_redis(fault_services: None) -> str:
    import redis

    redis.Redis.from_url(FAULTS_REDIS_URL).flushdb()
    return FAULTS_REDIS_URL


@pytest.fixture
def sink() -> Iterator[ChaosSink]:
    server = ChaosSink()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rabbitmq_url(fault_services: None) -> Iterator[str]:
    """An amqp:// URL on a vhost of this test's own (guest may use it), deleted afterwards."""
    if shutil.which("rabbitmqctl") is None:
        service_missing("rabbitmqctl not found: RabbitMQ is not installed")
    try:
        running = rabbitmqctl("status", timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        running = False
    if not running:
        service_missing("RabbitMQ is not running (rabbitmqctl status failed)")
    vhost = f"remarket-faults-{uuid.uuid4().hex[:8]}"
    assert rabbitmqctl("add_vhost", vhost).returncode == 0
    try:
        granted = rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        assert granted.returncode == 0, granted.stderr
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@contextlib.contextmanager
def running_stack(workdir: Path, database_url: str, sink: ChaosSink) -> Iterator[Stack]:
    """The product's environment on a flushed broker, migrated with ``remarket db upgrade``;
    no process runs yet, and every one started is stopped at the end."""
    import redis

    redis.Redis.from_url(FAULTS_REDIS_URL).flushdb()
    processes = Stack(workdir, database_url, FAULTS_REDIS_URL, sink.url)
    migrated = processes.run("db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    try:
        yield processes
    finally:
        processes.stop_all()
        # The processes' queues and Dramatiq's __heartbeats__ set: leave the database empty.
        redis.Redis.from_url(FAULTS_REDIS_URL).flushdb()


@pytest.fixture
def stack(tmp_path: Path, database_url: str, sink: ChaosSink) -> Iterator[Stack]:
    with running_stack(tmp_path, database_url, sink) as processes:
        yield processes


def write_report(tmp_path_factory: pytest.TempPathFactory, tallies: list[Tally]) -> None:
    """Print each tally's line and add it to the suite's report file."""
    path = tmp_path_factory.getbasetemp() / "faults-report.txt"
    with path.open("a") as out:
        for item in tallies:
            line = item.line()
            print(line)  # noqa: T201 - the test's own output, shown with -s or on failure
            out.write(line + "\n")
            _REPORT.append(line)


@pytest.fixture
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Tally]]:
    """Tallies a test appends are printed and written to the suite's report file."""
    tallies: list[Tally] = []
    yield tallies
    write_report(tmp_path_factory, tallies)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORT:
        terminalreporter.section("fault suite: injected / due / arrived / duplicates / lost")
        for line in _REPORT:
            terminalreporter.write_line(line)
