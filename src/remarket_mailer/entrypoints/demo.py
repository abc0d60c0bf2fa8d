"""``remarket demo``: replay the bundled sample events through the real engine on a virtual
clock (SQLite, StubBroker with in-process worker threads, file provider) and report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from dramatiq.brokers.stub import StubBroker

from remarket_mailer.bootstrap import SEND_QUEUE, App, build_app
from remarket_mailer.config import Settings
from remarket_mailer.delivery.base import Provider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.scheduler import sweep
from remarket_mailer.entrypoints.worker import start_worker
from remarket_mailer.errors import ValidationError
from remarket_mailer.schemas import parse_event
from remarket_mailer.services.delivery_outcomes import DeliveryRow, delivery_outcomes, next_due
from remarket_mailer.services.ingest import ingest_event
from remarket_mailer.services.migrations import upgrade


@dataclass
class DemoResult:
    rows: list[DeliveryRow]
    events: int = 0
    duplicates: int = 0
    enrollments: int = 0
    outbox: Path | None = None
    eml_files: list[Path] = field(default_factory=list)


def sample_events() -> list[dict[str, Any]]:
    text = resources.files("remarket_mailer.demo").joinpath("events.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_demo(
    settings: Settings,
    *,
    events: list[dict[str, Any]] | None = None,
    horizon: timedelta = timedelta(days=4),
    until: datetime | None = None,
    provider: Provider | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Replay ``events`` (the bundled sample by default) through the real engine on a virtual
    clock with ``settings`` (its SQLite file is recreated) and return the report.

    Raises pydantic.ValidationError for an invalid event. Runs until ``until``, or
    ``horizon`` after the last event. ``progress(done, total)`` is called as the events go in
    (``total`` is their number) and once more, with ``done == total``, when the rest of the
    clock has run.
    """
    events = events if events is not None else sample_events()
    parsed = sorted(
        ((parse_event(raw), raw) for raw in events), key=lambda pair: pair[0].occurred_at
    )
    if not parsed:
        raise ValidationError("no events to replay")
    _reset_sqlite(settings.database_url)
    outbox = _outbox_dir(settings.provider_url)
    if outbox is not None and outbox.is_dir():
        for old in outbox.glob("*.eml"):
            old.unlink()
    upgrade(settings.database_url)
    clock = VirtualClock(parsed[0][0].occurred_at)
    broker = StubBroker()
    app = build_app(settings, clock=clock, broker=broker, provider=provider)
    worker = start_worker(app, threads=2)
    result = DemoResult(rows=[], outbox=outbox)
    try:
        end = until or parsed[-1][0].occurred_at + horizon
        index = 0
        while True:
            next_event = parsed[index][0].occurred_at if index < len(parsed) else None
            next_due_at = next_due(app.uow)
            candidates = [t for t in (next_event, next_due_at) if t is not None]
            if not candidates or min(candidates) > end:
                break
            clock.set(max(min(candidates), clock.now()))
            ingested = 0
            while index < len(parsed) and parsed[index][0].occurred_at <= clock.now():
                event, raw = parsed[index]
                outcome = ingest_event(app.uow, app.workflows, app.clock, event, raw)
                result.events += 1
                result.duplicates += int(outcome.duplicate)
                result.enrollments += len(outcome.started)
                index += 1
                ingested += 1
            if ingested:
                if progress is not None:
                    progress(index, len(parsed))
                # Most moments of a long log only bring events: a sweep and a wait for the
                # workers there cost a third of the run and sent nothing.
                next_due_at = next_due(app.uow)
                if next_due_at is None or next_due_at > clock.now():
                    continue
            _drain(app, broker)
        result.rows = delivery_outcomes(app.uow)
    finally:
        worker.stop()
        app.close()
    if progress is not None:
        progress(len(parsed), len(parsed))
    if outbox is not None:
        result.eml_files = sorted(outbox.glob("*.eml"))
    return result


def _drain(app: App, broker: StubBroker) -> None:
    """Sweep and let the worker finish everything due at the virtual now."""
    for _ in range(10):
        report = sweep(app)
        broker.join(SEND_QUEUE, fail_fast=True)
        if report.claimed == 0 and report.reclaimed == 0:
            return


def _reset_sqlite(url: str) -> None:
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm", "-journal"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            candidate.unlink()


def _outbox_dir(provider_url: str) -> Path | None:
    if not provider_url.startswith("file://"):
        return None
    return Path(provider_url.removeprefix("file://") or "./outbox")


def local_time(moment: datetime) -> str:
    return moment.strftime("%a %d %b %H:%M UTC")
