"""Exactly once under faults: each test injects one fault into running processes and counts
every email by Message-ID at the SMTP sink and by status in the database.

The promise (docs/architecture.md, "Faults"): nothing is lost, and a crash sends twice at most
what was on the wire at that instant.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine

from tests.e2e.faults.harness import (
    SMTP_REQUEST,
    STEPS,
    WORKER_THREADS,
    ChaosSink,
    Stack,
    Tally,
    half_written,
    post_events,
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
