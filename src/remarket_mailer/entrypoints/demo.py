"""``remarket demo``: replay the bundled sample events through the real engine on a virtual
clock (SQLite, StubBroker with in-process worker threads, file provider) and report."""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from dramatiq.brokers.stub import StubBroker
from rich import box
from rich.table import Table
from rich.text import Text

from remarket_mailer.bootstrap import SEND_QUEUE, App, build_app
from remarket_mailer.config import Settings
from remarket_mailer.delivery.base import Provider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.domain.reasons import plain_reason, reason_detail
from remarket_mailer.domain.report_model import Report
from remarket_mailer.entrypoints import demo_shop
from remarket_mailer.entrypoints.scheduler import sweep
from remarket_mailer.entrypoints.worker import start_worker
from remarket_mailer.errors import ValidationError
from remarket_mailer.schemas import IncomingEvent, parse_event
from remarket_mailer.services.delivery_outcomes import DeliveryRow, delivery_outcomes, next_due
from remarket_mailer.services.experiments import decide_winners
from remarket_mailer.services.ingest import ingest_event
from remarket_mailer.services.marketing_report import build_marketing_report
from remarket_mailer.services.migrations import upgrade
from remarket_mailer.services.product_alerts import derive_product_alerts
from remarket_mailer.workflows.loader import WorkflowSet, load_workflows


@dataclass
class DemoResult:
    rows: list[DeliveryRow]
    """The deliveries of the bundled sample's shoppers (the generated ones are counted in
    ``shoppers``)."""
    events: int = 0
    duplicates: int = 0
    enrollments: int = 0
    outbox: Path | None = None
    eml_files: list[Path] = field(default_factory=list)
    shoppers: demo_shop.ShopperCounts | None = None
    report: Report | None = None


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
    shoppers: int | None = None,
) -> DemoResult:
    """Replay ``events`` (the bundled sample by default) through the real engine on a virtual
    clock with ``settings`` (its SQLite file is recreated) and return the report.

    With the bundled sample, ``shoppers`` generated shoppers (``demo_shop``, default
    ``demo_shop.SHOPPERS``) join it, react to their emails, and the demo's abandoned-cart
    workflow has a holdout and an A/B first reminder; the result carries the marketer's
    report of it all.

    Raises pydantic.ValidationError for an invalid event. Runs until ``until``, or
    ``horizon`` after the last event. ``progress(done, total)`` is called as the events go in
    (``total`` is their number) and once more, with ``done == total``, when the rest of the
    clock has run.
    """
    if shoppers is None:
        shoppers = demo_shop.SHOPPERS if events is None else 0
    events = events if events is not None else sample_events()
    generated = demo_shop.shopper_events(shoppers) if shoppers else []
    parsed = sorted(
        ((parse_event(raw), raw) for raw in [*events, *generated]),
        key=lambda pair: pair[0].occurred_at,
    )
    if not parsed:
        raise ValidationError("no events to replay")
    outbox = _fresh_start(settings)
    clock = VirtualClock(parsed[0][0].occurred_at)
    broker = StubBroker()
    workflows = load_workflows(settings.workflows_dir)
    if shoppers:
        workflows = demo_shop.demo_workflows(workflows)
    app = build_app(settings, clock=clock, broker=broker, provider=provider, workflows=workflows)
    worker = start_worker(app, threads=2)
    result = DemoResult(rows=[], outbox=outbox)
    end = until or parsed[-1][0].occurred_at + horizon

    reactions = _shopper_reactions(app, parsed, generated) if shoppers else None
    try:
        _replay(app, clock, broker, parsed, end, result, progress, reactions)
        _collect(app, clock, workflows, result, reactions, shoppers)
    finally:
        worker.stop()
        app.close()
    if progress is not None:
        progress(len(parsed), len(parsed))
    if outbox is not None:
        result.eml_files = sorted(outbox.glob("*.eml"))
    return result


def _shopper_reactions(
    app: App, parsed: list[tuple[IncomingEvent, dict[str, Any]]], generated: list[dict[str, Any]]
) -> demo_shop.ShopperReactions:
    """The generated shoppers' reactions; an order they place joins the events to replay."""

    def place_order(raw: dict[str, Any]) -> None:
        bisect.insort(parsed, (parse_event(raw), raw), key=lambda pair: pair[0].occurred_at)

    return demo_shop.ShopperReactions(app.uow, place_order, demo_shop.cart_totals(generated))


def _collect(
    app: App,
    clock: VirtualClock,
    workflows: WorkflowSet,
    result: DemoResult,
    reactions: demo_shop.ShopperReactions | None,
    shoppers: int,
) -> None:
    """Fill ``result`` with what happened to the sample's contacts and, with generated
    shoppers, their counts and the marketer's report of everyone."""
    outcomes = delivery_outcomes(app.uow)
    result.rows = [r for r in outcomes if not demo_shop.is_shopper(r.contact_email)]
    if reactions is not None:
        reactions.counts.shoppers = shoppers
        result.shoppers = reactions.counts
        # The scheduler's hourly A/B job, once the clock has stopped: a clear winner goes
        # into the workflow's history, which the report shows.
        decide_winners(app.uow, list(workflows.workflows.values()), clock)
        names = {w.id: w.name for w in workflows.workflows.values()}
        result.report = build_marketing_report(
            app.uow, clock, names=names, workflows=workflows.workflows
        )


def _fresh_start(settings: Settings) -> Path | None:
    """Recreate the demo's SQLite file, empty its outbox, migrate; returns the outbox."""
    _reset_sqlite(settings.database_url)
    outbox = _outbox_dir(settings.provider_url)
    if outbox is not None and outbox.is_dir():
        for old in outbox.glob("*.eml"):
            old.unlink()
    upgrade(settings.database_url)
    return outbox


def _replay(
    app: App,
    clock: VirtualClock,
    broker: StubBroker,
    parsed: list[tuple[IncomingEvent, dict[str, Any]]],
    end: datetime,
    result: DemoResult,
    progress: Callable[[int, int], None] | None,
    reactions: demo_shop.ShopperReactions | None = None,
) -> None:
    """Move the clock from moment to moment (the next event, the next due delivery or the
    shoppers' next reaction) up to ``end``, ingesting the events and sending what is due at
    each."""
    index = 0
    while True:
        next_event = parsed[index][0].occurred_at if index < len(parsed) else None
        next_due_at = next_due(app.uow)
        next_reaction = reactions.next_at() if reactions is not None else None
        candidates = [t for t in (next_event, next_due_at, next_reaction) if t is not None]
        if not candidates or min(candidates) > end:
            return
        clock.set(max(min(candidates), clock.now()))
        if reactions is not None:
            reactions.run_due(clock)
        ingested = _ingest_until_now(app, parsed, index, result)
        index += ingested
        if ingested:
            result.enrollments += _product_alerts(app)
        if ingested:
            if progress is not None:
                progress(index, len(parsed))
            # Most moments of a long log only bring events: a sweep and a wait for the
            # workers there cost a third of the run and sent nothing.
            next_due_at = next_due(app.uow)
            if next_due_at is None or next_due_at > clock.now():
                continue
        moment = clock.now()
        _drain(app, broker)
        if reactions is not None:
            reactions.after_sends(moment)


def _ingest_until_now(
    app: App, parsed: list[tuple[IncomingEvent, dict[str, Any]]], start: int, result: DemoResult
) -> int:
    """Ingest the events from ``start`` on that happened by the clock's now; how many."""
    index = start
    while index < len(parsed) and parsed[index][0].occurred_at <= app.clock.now():
        event, raw = parsed[index]
        outcome = ingest_event(app.uow, app.workflows, app.clock, event, raw)
        result.events += 1
        result.duplicates += int(outcome.duplicate)
        result.enrollments += len(outcome.started)
        index += 1
    return index - start


def _product_alerts(app: App) -> int:
    """The scheduler's alert job at this moment of the clock: restocks and price drops the
    events brought become alerts; returns the enrollments they started."""
    return derive_product_alerts(app.uow, app.workflows, app.clock).enrollments


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
    """``2026-12-03 14:05``: the moment in UTC (the table's header says so), with the year."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


_ISO_MOMENT = re.compile(
    r"\b(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?"
)
_STYLES = {"sent": "green", "skipped": "yellow", "failed": "red"}


def demo_table(rows: Iterable[DeliveryRow]) -> Table:
    """What happened to every delivery, in time order, fitting an 80-column terminal: the
    date, who and which step on lines of their own (never wrapped), then the outcome in plain
    words with the stored reason code (what ``remarket report`` counts) after it."""
    table = Table(
        title="remarket demo: the stock workflows on a virtual clock",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        leading=1,
    )
    table.add_column("when (UTC) / who", no_wrap=True, max_width=16)
    table.add_column("workflow / step", no_wrap=True)
    table.add_column("what happened", ratio=1, overflow="fold")
    for row in sorted(rows, key=lambda r: (r.sent_at or r.due_at, r.id)):
        who = row.contact_name or (row.contact_email or "").partition("@")[0] or "?"
        table.add_row(
            Text(local_time(row.sent_at or row.due_at)) + Text("\n" + who, style="bold"),
            Text(f"{row.workflow_id}\n") + Text(row.step_id, style="bold"),
            outcome(row),
        )
    return table


def outcome(row: DeliveryRow) -> Text:
    """A delivery's status (coloured) and what to know about it, as rich Text (no markup:
    a subject may contain brackets)."""
    text = Text(row.status, style=f"bold {_STYLES.get(row.status, 'white')}")
    if row.status == "sent":
        text.append(f" “{row.subject}”")
        if row.discount_code:
            text.append(f"\ncode {row.discount_code}")
        if row.reason == "deferred" and row.detail:
            text.append("\n" + _deferral(row.detail), style="dim")
    elif row.status in ("scheduled", "queued"):
        text.append(": still to come when the demo's clock stops")
    else:
        text.append(f": {plain_reason(row.reason)}")
        detail = reason_detail(row.reason, row.detail)
        code = f"{row.reason}: {_short_moments(detail)}" if detail else str(row.reason)
        text.append(f"\n({code})", style="dim")
    return text


def _deferral(detail: str) -> str:
    """``quiet_hours until 2026-11-02T08:00:00+00:00`` → ``deferred first (outside the
    contact's send window) until 2026-11-02 08:00``."""
    why, _, rest = detail.partition(" ")
    return f"deferred first ({plain_reason(why)}) {_short_moments(rest)}".rstrip()


def _short_moments(text: str) -> str:
    return _ISO_MOMENT.sub(r"\1 \2", text)
