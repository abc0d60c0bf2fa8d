"""Exactly once under faults: each test injects one fault into running processes and counts
every email by Message-ID at the SMTP sink and by status in the database.

The promise (docs/security.md, "Faults"): nothing is lost, and a crash sends twice at most
what was on the wire at that instant.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from remarket_mailer.bootstrap import SEND_QUEUE
from tests.e2e.faults.conftest import running_stack, write_report
from tests.e2e.faults.harness import (
    SMTP_REQUEST,
    STEPS,
    WORKER_THREADS,
    Attempt,
    BackendKiller,
    Chaos,
    ChaosSink,
    Stack,
    Tally,
    delivery_id_of,
    fresh_database,
    half_written,
    observer,
    post_events,
    rabbitmqctl,
    restart_rabbitmq,
    tally,
    wait_for_arrivals,
    wait_until_final,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.mark.timeout(240)
def test_kill_9_of_a_worker_mid_batch_loses_nothing_and_resends_only_what_was_on_the_wire(
    stack: Stack, sink: ChaosSink, db: Engine, report: list[Tally]
) -> None:
    people = 500
    due = people * len(STEPS)
    began = time.monotonic()
    stack.start_api()
    stack.start_scheduler()
    ingest = post_events(stack.api_url, people)
    assert not ingest.other, ingest.other
    assert half_written(db, people) == []
    # Everything is due and queued before the worker starts, so it is killed mid-batch.
    wait_until_final(db, due, 30, settled=lambda c: c["scheduled"] == 0)
    worker = stack.start_worker()
    at_kill = wait_for_arrivals(sink, int(due * 0.35), 60)
    stack.kill9(worker)
    stack.start_worker()
    counts = wait_until_final(db, due, 150)
    result = tally("worker kill -9", f"SIGKILL at {at_kill}/{due} arrived", db, sink, began)
    report.append(result)
    assert sum(counts.values()) == due
    assert result.lost == 0, stack.logs()
    assert counts["sent"] == due, counts
    assert result.arrived == due
    assert result.duplicates <= WORKER_THREADS * SMTP_REQUEST, result.line()


@pytest.mark.timeout(300)
def test_terminated_postgres_backends_during_ingest_and_sending_lose_and_double_nothing(
    stack: Stack, sink: ChaosSink, db: Engine, database_url: str, report: list[Tally]
) -> None:
    people = 400
    due = people * len(STEPS)
    began = time.monotonic()
    # Batches of two SMTP requests: many recording transactions for the killer to hit.
    stack.extra_env["REMARKET_BATCH_SIZE"] = "20"
    stack.start_api()
    stack.start_scheduler()
    stack.start_worker()
    killer = BackendKiller(make_url(database_url).database or "")
    killer.start()
    try:
        ingest = post_events(stack.api_url, people, per_post=25, concurrency=4)
        ingested = time.monotonic() - began
        # Sending goes on under attack until everything is final or the deadline.
        wait_until_final(db, due, 120)
    finally:
        killer.stop()
    counts = wait_until_final(db, due, 90)
    injected = (
        f"{killer.killed} backends terminated in {killer.rounds} rounds; "
        f"{ingest.unavailable} posts answered 503, {ingest.transport_errors} unanswered"
    )
    worker_log = "".join(p.output() for p in stack.procs.values() if p.name.startswith("worker"))
    recordings_retried = worker_log.count("database connection lost, retrying")
    batches_failed = worker_log.count("Failed to process message")
    # A batch whose transaction was cut is given back to the broker to wait for the database
    # (the actor's outage path) rather than failed: that is a hit on the worker too.
    batches_waited = worker_log.count("database unreachable; batches wait")
    notes = (
        f"ingest done at {ingested:.0f}s; worker: {recordings_retried} recordings retried, "
        f"{batches_failed} batches failed to start and retried, {batches_waited} waited"
    )
    result = tally("postgres backends terminated", injected, db, sink, began, notes)
    report.append(result)
    assert not ingest.other, ingest.other
    assert ingest.unavailable > 0, "the killer never hit an ingest transaction"
    assert recordings_retried + batches_failed + batches_waited > 0, (
        "the killer never hit the worker"
    )
    assert half_written(db, people) == []
    assert result.lost == 0, stack.logs()
    assert counts["sent"] == due, counts
    assert result.duplicates == 0, result.line()
    for proc in stack.procs.values():
        assert proc.popen.poll() is None, f"{proc.name} died:\n{proc.output()[-3000:]}"


@pytest.mark.timeout(240)
def test_a_flushed_redis_broker_with_queued_and_in_flight_work_loses_and_doubles_nothing(
    stack: Stack, sink: ChaosSink, db: Engine, flushed_redis: str, report: list[Tally]
) -> None:
    import redis

    people = 400
    due = people * len(STEPS)
    began = time.monotonic()
    # Small batches, so that Redis holds more messages than the worker prefetches (2 per
    # thread): the flush must take queued work as well as what the worker has in hand.
    stack.extra_env["REMARKET_BATCH_SIZE"] = "20"
    stack.start_api()
    stack.start_scheduler()
    ingest = post_events(stack.api_url, people)
    assert not ingest.other, ingest.other
    wait_until_final(db, due, 30, settled=lambda c: c["scheduled"] == 0)
    broker = redis.Redis.from_url(flushed_redis)
    stack.start_worker()
    at_flush = wait_for_arrivals(sink, int(due * 0.35), 60)
    queued = broker.llen(f"dramatiq:{SEND_QUEUE}")
    broker.flushdb()
    counts = wait_until_final(db, due, 150)
    injected = f"FLUSHDB at {at_flush}/{due} arrived, {queued} send_batch messages queued"
    result = tally("redis broker flushed", injected, db, sink, began)
    report.append(result)
    assert queued > 0, "nothing was queued in Redis when it was flushed"
    assert result.lost == 0, stack.logs()
    assert counts["sent"] == due, counts
    assert result.duplicates == 0, result.line()


@pytest.mark.timeout(180)
def test_two_schedulers_and_two_workers_at_once_send_each_email_once(
    stack: Stack, sink: ChaosSink, db: Engine, report: list[Tally]
) -> None:
    people = 400
    due = people * len(STEPS)
    began = time.monotonic()
    stack.start_api()
    for _ in range(2):
        stack.start_scheduler()
        stack.start_worker()
    ingest = post_events(stack.api_url, people)
    assert not ingest.other, ingest.other
    counts = wait_until_final(db, due, 90)
    result = tally("two schedulers, two workers", "2 x scheduler, 2 x worker", db, sink, began)
    report.append(result)
    assert result.lost == 0, stack.logs()
    assert counts["sent"] == due, counts
    assert result.duplicates == 0, result.line()
    assert half_written(db, people) == []


@pytest.mark.timeout(300)
def test_a_rabbitmq_restart_loses_and_doubles_nothing(
    stack: Stack, sink: ChaosSink, db: Engine, rabbitmq_url: str, report: list[Tally]
) -> None:
    people = 500
    due = people * len(STEPS)
    began = time.monotonic()
    stack.broker_url = rabbitmq_url
    # Batches of one SMTP request: many messages wait in RabbitMQ, more than the worker has
    # in hand (rabbitmqctl takes seconds to count them, so the restart comes early).
    stack.extra_env["REMARKET_BATCH_SIZE"] = "10"
    stack.start_api()
    stack.start_scheduler()
    ingest = post_events(stack.api_url, people)
    assert not ingest.other, ingest.other
    wait_until_final(db, due, 30, settled=lambda c: c["scheduled"] == 0)
    stack.start_worker()
    at_restart = wait_for_arrivals(sink, int(due * 0.2), 60)
    vhost = rabbitmq_url.rpartition("/")[2]
    listed = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "messages")
    queued = sum(int(line.split()[1]) for line in listed.stdout.splitlines() if line.strip())
    away = restart_rabbitmq()
    counts = wait_until_final(db, due, 150)
    injected = (
        f"stop_app/start_app at {at_restart}/{due} arrived, {queued} messages queued, "
        f"away {away:.0f}s"
    )
    result = tally("rabbitmq restarted", injected, db, sink, began)
    report.append(result)
    assert queued > 0, "nothing was queued in RabbitMQ when it went away"
    assert result.lost == 0, stack.logs()
    assert counts["sent"] == due, counts
    assert result.duplicates == 0, result.line()
    for proc in stack.procs.values():
        assert proc.popen.poll() is None, f"{proc.name} died:\n{proc.output()[-3000:]}"


@dataclass
class ChaosRun:
    """One run against an SMTP server answering at random, shared by the tests below."""

    tally: Tally
    rows: dict[int, Any]
    attempts: list[Attempt]
    accepted: Counter[str]


@pytest.fixture(scope="module")
def smtp_chaos(
    tmp_path_factory: pytest.TempPathFactory, fault_services: None
) -> Iterator[ChaosRun]:
    people = 300
    due = people * len(STEPS)
    sink = ChaosSink(Chaos(transient=0.15, permanent=0.05, drop=0.05))
    sink.start()
    with (
        fresh_database() as url,
        running_stack(tmp_path_factory.mktemp("smtp_chaos"), url, sink) as stack,
    ):
        db = observer(url)
        began = time.monotonic()
        stack.start_api()
        stack.start_scheduler()
        stack.start_worker()
        ingest = post_events(stack.api_url, people)
        assert not ingest.other, ingest.other
        # Retries back off 1, 2, 4, 8... s: what still retries at the deadline may stay so.
        wait_until_final(db, due, 30)
        attempts = sink.snapshot()
        with db.connect() as connection:
            rows = {
                row.id: row
                for row in connection.execute(
                    text("SELECT id, status, reason, detail, attempts, planned_at FROM deliveries")
                )
            }
        outcomes = Counter(a.outcome for a in attempts)
        injected = " ".join(f"{k}={v}" for k, v in sorted(outcomes.items()))
        retrying = sum(1 for row in rows.values() if row.status == "scheduled")
        counted = sum(row.attempts for row in rows.values())
        notes = f"still retrying={retrying}; attempts counted={counted} made={len(attempts)}"
        result = tally("smtp 451/550/drop", injected, db, sink, began, notes)
        result.lost -= retrying  # allowed here, checked below
        write_report(tmp_path_factory, [result])
        db.dispose()
    sink.stop()
    yield ChaosRun(result, rows, attempts, sink.accepted())


@pytest.mark.timeout(240)
def test_an_smtp_server_answering_451_550_or_dropping_at_random_adds_up(
    smtp_chaos: ChaosRun,
) -> None:
    rows, attempts = smtp_chaos.rows, smtp_chaos.attempts
    last = {delivery_id_of(a.message_id): a.outcome for a in attempts}
    sent = {i for i, row in rows.items() if row.status == "sent"}
    failed = {i for i, row in rows.items() if row.status == "failed"}
    retrying = {
        i
        for i, row in rows.items()
        if row.status == "scheduled"
        and row.reason == "retry"
        and datetime.now(UTC) - row.planned_at < timedelta(hours=48)
    }
    assert len(rows) == 300 * len(STEPS)
    assert sent | failed | retrying == set(rows), "a delivery is neither sent, failed nor retrying"
    assert len(sent) + len(failed) + len(retrying) == len(rows)
    assert sent == {delivery_id_of(m) for m in smtp_chaos.accepted}, "DB sent = sink accepted"
    assert smtp_chaos.tally.duplicates == 0, smtp_chaos.tally.line()
    # Failed exactly those the server refused with 550 at their last attempt, with the reason.
    assert failed == {i for i, outcome in last.items() if outcome == "550"}
    assert all(rows[i].reason == "permanent" and "550" in rows[i].detail for i in failed)
    assert all(last[i] in ("451", "dropped") for i in retrying)


@pytest.mark.timeout(240)
def test_under_smtp_chaos_the_attempts_counted_are_the_attempts_made(
    smtp_chaos: ChaosRun,
) -> None:
    made = Counter(delivery_id_of(a.message_id) for a in smtp_chaos.attempts)
    wrong = {i: (row.attempts, made[i]) for i, row in smtp_chaos.rows.items()}
    wrong = {i: pair for i, pair in wrong.items() if pair[0] != pair[1]}
    assert not wrong, f"{len(wrong)} deliveries (counted, made): {list(wrong.items())[:10]}"
