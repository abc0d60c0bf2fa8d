"""Renewal scan benchmark: N subscriptions (default 1,000,000) on PostgreSQL, all renewing
within the 31-day horizon, scanned and enrolled by the real service.

Prints seconds, subscriptions/s, rows written and peak memory, next to a baseline measured
in the same run: a bare keyset read of the same subscriptions (what any scan must pay).
Target (issue 5): 1,000,000 subscriptions in <= 60 s with flat memory.

    python benchmarks/renewal_scan.py [--subscriptions 1000000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, scratch_database  # noqa: E402
from sqlalchemy import text  # noqa: E402

from remarket_mailer.db.engine import make_engine, make_session_factory  # noqa: E402
from remarket_mailer.domain.clock import VirtualClock  # noqa: E402
from remarket_mailer.services.renewal_scan import scan_renewals  # noqa: E402
from remarket_mailer.services.unit_of_work import UnitOfWork  # noqa: E402
from remarket_mailer.workflows.loader import load_workflows  # noqa: E402

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ZONES = ["Europe/Amsterdam", "America/New_York", "Asia/Ho_Chi_Minh", "Europe/Oslo", None]


def populate(url: str, count: int) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            with cursor.copy(
                "COPY contacts (id, email, timezone, attributes, created_at, updated_at) FROM STDIN"
            ) as copy:
                for n in range(1, count + 1):
                    copy.write_row((n, f"s{n}@example.org", ZONES[n % 5], "{}", NOW, NOW))
            with cursor.copy(
                "COPY subscriptions (subscription_id, contact_id, plan, status, renews_at, "
                "price, currency, updated_at) FROM STDIN"
            ) as copy:
                for n in range(1, count + 1):
                    renews = NOW + timedelta(days=1 + (n % 30), hours=n % 24)
                    copy.write_row(
                        (f"sub-{n:08d}", n, "Tea club", "active", renews, "9.00", "EUR", NOW)
                    )
        connection.execute(text("SELECT setval('contacts_id_seq', :n)"), {"n": count})
        connection.execute(text("ANALYZE"))
    engine.dispose()


def baseline_read(url: str, page: int) -> float:
    engine = make_engine(url)
    begin = time.perf_counter()
    after = ""
    with engine.connect() as connection:
        while True:
            rows = connection.execute(
                text(
                    "SELECT s.subscription_id, s.contact_id, s.renews_at, c.timezone "
                    "FROM subscriptions s JOIN contacts c ON c.id = s.contact_id "
                    "WHERE s.subscription_id > :after ORDER BY s.subscription_id LIMIT :page"
                ),
                {"after": after, "page": page},
            ).all()
            if not rows:
                break
            after = rows[-1][0]
    engine.dispose()
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=1_000_000)
    parser.add_argument("--page", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=None, help="default: the service's")
    args = parser.parse_args()
    n = args.subscriptions
    with scratch_database() as url:
        started = time.perf_counter()
        populate(url, n)
        print(f"populated {n} contacts and subscriptions in {time.perf_counter() - started:.1f} s")
        read = baseline_read(url, args.page)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        engine = make_engine(url)
        uow = UnitOfWork(make_session_factory(engine))
        workflows = load_workflows(ROOT / "workflows")
        begin = time.perf_counter()
        report = scan_renewals(
            uow, workflows, VirtualClock(NOW), page=args.page, workers=args.workers
        )
        elapsed = time.perf_counter() - begin
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        engine.dispose()
    print(f"{'':40}{'seconds':>10}{'subs/s':>12}")
    print(f"{'baseline: keyset read of every row':40}{read:10.1f}{n / read:12.0f}")
    print(f"{'renewal scan (enroll + deliveries)':40}{elapsed:10.1f}{n / elapsed:12.0f}")
    print(
        f"enrolled {report.enrolled}, deliveries {report.deliveries}, pages {report.pages}; "
        f"ratio to the bare read {elapsed / read:.1f}x; "
        f"peak RSS grew {(rss_after - rss_before) / 1024:.0f} MB during the scan"
    )
    print(f"target: {n} subscriptions in <= 60 s: {'met' if elapsed <= 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
