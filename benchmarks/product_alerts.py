"""Back-in-stock alert job benchmark on PostgreSQL: N contacts (default 10,000) viewed a
product while it was sold out; it comes back; ``derive_product_alerts`` turns that into N
``product.back_in_stock`` events (each starting the stock workflow's enrollment and its
deliveries).

Prints the job's cost per alert next to a baseline measured in the same run: ingesting the N
views themselves (ordinary contact events that also start an enrollment each, browse
abandonment's), through the same ``ingest_batch`` in batches of 1,000.

    python benchmarks/product_alerts.py [--contacts 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, scratch_database  # noqa: E402

from remarket_mailer.db.engine import make_engine, make_session_factory  # noqa: E402
from remarket_mailer.domain.clock import VirtualClock  # noqa: E402
from remarket_mailer.schemas import parse_event  # noqa: E402
from remarket_mailer.services.ingest import ingest_batch  # noqa: E402
from remarket_mailer.services.product_alerts import derive_product_alerts  # noqa: E402
from remarket_mailer.services.unit_of_work import UnitOfWork  # noqa: E402
from remarket_mailer.workflows.loader import load_workflows  # noqa: E402

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def product(at: datetime, available: bool) -> dict[str, Any]:
    return {
        "event_id": f"kettle-{available}",
        "type": "product.upserted",
        "occurred_at": at.isoformat(),
        "product_id": "kettle",
        "title": "Gooseneck kettle",
        "price": "129.00",
        "currency": "EUR",
        "available": available,
    }


def views(contacts: int) -> list[dict[str, Any]]:
    at = (NOW - timedelta(hours=1)).isoformat()
    return [
        {
            "event_id": f"view-{n}",
            "type": "product.viewed",
            "occurred_at": at,
            "contact": {"external_id": f"c{n}", "email": f"c{n}@shoppers.example.net"},
            "product_id": "kettle",
        }
        for n in range(contacts)
    ]


def ingest(uow: UnitOfWork, clock: VirtualClock, bodies: list[dict[str, Any]]) -> float:
    workflows = load_workflows(ROOT / "workflows")
    started = time.perf_counter()
    for start in range(0, len(bodies), 1_000):
        chunk = bodies[start : start + 1_000]
        ingest_batch(uow, workflows, clock, [(parse_event(b), b) for b in chunk])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    args = parser.parse_args()
    with scratch_database() as url:
        uow = UnitOfWork(make_session_factory(make_engine(url)))
        clock = VirtualClock(NOW - timedelta(hours=2))
        workflows = load_workflows(ROOT / "workflows")
        ingest(uow, clock, [product(NOW - timedelta(hours=2), available=False)])
        clock.set(NOW - timedelta(hours=1))
        baseline = ingest(uow, clock, views(args.contacts))
        clock.set(NOW)
        ingest(uow, clock, [product(NOW, available=True)])
        started = time.perf_counter()
        report = derive_product_alerts(uow, workflows, clock)
        job = time.perf_counter() - started
        started = time.perf_counter()
        again = derive_product_alerts(uow, workflows, clock)
        idle = time.perf_counter() - started
    assert report.back_in_stock == args.contacts, report
    assert again.back_in_stock == 0
    per_view = baseline / args.contacts * 1000
    per_alert = job / args.contacts * 1000
    print(f"contacts interested: {args.contacts}")
    print(f"baseline, ingest of their views:  {per_view:.3f} ms per event ({baseline:.2f} s)")
    print(f"alert job, restock to alerts:     {per_alert:.3f} ms per alert ({job:.2f} s)")
    print(f"ratio job / baseline:             {per_alert / per_view:.2f}")
    print(f"idle run (nothing noted):         {idle * 1000:.1f} ms")


if __name__ == "__main__":
    main()
