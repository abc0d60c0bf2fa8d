"""Prometheus metrics as an operator scrapes them: ``remarket worker --workers 2`` serves the
sum of its two processes on one port, ``remarket scheduler`` the backlog of due rows.

Real processes (api, scheduler, a worker supervisor with two worker processes) on a fresh
PostgreSQL database, Redis and an SMTP sink, as in the fault suite's harness; nothing here
restarts a shared service."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REDIS_URL, free_port
from tests.e2e.faults.harness import (
    ChaosSink,
    Stack,
    fresh_database,
    observer,
    post_events,
    wait_until_final,
)

pytestmark = pytest.mark.integration

PEOPLE = 15  # two emails each


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample at ``http://127.0.0.1:port/metrics``: (name, sorted labels) → value."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def per_process_sent(directory: Path) -> dict[int, float]:
    """remarket_sent_total of each worker process, read from its own files only."""
    result: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        alone = directory.parent / f"alone-{pid}"
        alone.mkdir(exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        result[pid] = registry.get_sample_value("remarket_sent_total") or 0.0
        shutil.rmtree(alone)
    return result


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    sink = ChaosSink()
    sink.start()
    redis.Redis.from_url(REDIS_URL).flushdb()
    with fresh_database() as url:
        processes = Stack(
            tmp_path,
            url,
            REDIS_URL,
            sink.url,
            # One thread and one delivery per message: both processes share the work.
            extra_env={"REMARKET_WORKER_THREADS": "1", "REMARKET_BATCH_SIZE": "1"},
        )
        assert processes.run("db", "upgrade").returncode == 0
        try:
            yield processes
        finally:
            processes.stop_all()
            sink.stop()
            redis.Redis.from_url(REDIS_URL).flushdb()


def test_two_worker_processes_are_scraped_as_one_sum(stack: Stack, tmp_path: Path) -> None:
    worker_port, scheduler_port = free_port(), free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    stack.start_api()
    scheduler = stack.start_scheduler(REMARKET_METRICS_PORT=str(scheduler_port))
    # TMPDIR: where the supervisor makes its PROMETHEUS_MULTIPROC_DIR, so the test can read
    # each process's own files.
    worker = stack.start(
        "worker", "--workers", "2", REMARKET_METRICS_PORT=str(worker_port), TMPDIR=str(temp)
    )
    stack.wait_for(
        worker, lambda: worker.output().count("worker started") == 2, "start two processes"
    )
    stats = post_events(stack.api_url, PEOPLE)
    assert not stats.other, stats.other
    engine = observer(stack.database_url)
    try:
        counts = wait_until_final(engine, 2 * PEOPLE, timeout=120)
    finally:
        engine.dispose()
    assert counts["sent"] == 2 * PEOPLE, (counts, stack.logs())

    scraped = scrape(worker_port)
    assert value(scraped, "remarket_sent_total") == 2 * PEOPLE
    assert value(scraped, "remarket_due_to_sent_seconds_count") == 2 * PEOPLE
    assert value(scraped, "remarket_planned_to_sent_seconds_count") == 2 * PEOPLE
    assert value(scraped, "remarket_provider_request_seconds_count", provider="smtp") >= 1
    assert value(scraped, "remarket_deliveries_total", workflow="fault_cart", outcome="sent") == (
        2 * PEOPLE
    )
    # The sum is of two processes that each sent some: read their files one by one.
    (directory,) = temp.glob("remarket-metrics-*")
    alone = per_process_sent(directory)
    assert len(alone) == 2, alone
    assert all(sent > 0 for sent in alone.values()), alone
    assert sum(alone.values()) == 2 * PEOPLE

    # A worker process killed outright is replaced; what it counted stays in the sum.
    victim = next(iter(alone))
    os.kill(victim, signal.SIGKILL)
    stack.wait_for(
        worker, lambda: worker.output().count("worker started") == 3, "replace the killed one"
    )
    assert "exited with -9: starting another" in worker.output()
    assert value(scrape(worker_port), "remarket_sent_total") == 2 * PEOPLE

    # The scheduler's gauge: nothing due is left once every email went out.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        backlog = scrape(scheduler_port)
        if ("remarket_backlog_deliveries", (("status", "scheduled"),)) in backlog:
            break
        time.sleep(0.5)
    assert value(backlog, "remarket_backlog_deliveries", status="scheduled") == 0
    assert value(backlog, "remarket_backlog_deliveries", status="queued") == 0
    assert scheduler.popen.poll() is None

    # SIGTERM stops the supervisor and its children, and the per-process files go with it.
    stack.stop(worker)
    assert worker.popen.returncode == 0, worker.output()
    assert not directory.exists()


def test_workers_refuse_bad_settings_once_with_exit_2(tmp_path: Path) -> None:
    """Checked by the supervisor before it starts any process: one line, not one per child."""
    from tests.e2e.test_startup import start

    short = start(["worker", "--workers", "3"], tmp_path, {"REMARKET_SECRET_KEY": "short"})
    assert short.returncode == 2, short.stderr
    assert len(short.stderr.strip().splitlines()) == 1
    assert "REMARKET_SECRET_KEY" in short.stderr
    none = start(["worker", "--workers", "0"], tmp_path, {"REMARKET_SECRET_KEY": "s" * 40})
    assert none.returncode == 2
    assert none.stderr.strip().splitlines() == ["error: --workers must be at least 1"]
