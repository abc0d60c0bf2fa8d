"""Delivery benchmark, one run, real PostgreSQL (and Redis for the Dramatiq baseline).

(a) end-to-end sends/s from due deliveries (claim, policy checks, render, build, SMTP, record)
    to an aiosmtpd sink, next to a raw smtplib loop sending prebuilt messages to the same
    sink over one connection. Target: >= 0.8x.
(b) end-to-end sends/s to a local HTTP ESP mock (Postmark's batch endpoint), next to a raw
    Dramatiq no-op actor draining the same number of messages through Redis. Target: >= 2x.

Both at 4 worker threads and at the worker's default (8), ours and the Dramatiq drain alike:
SMTP gains from more connections in flight, and the Dramatiq no-op drain from more threads.
Each figure is the median of ``--rounds`` runs, ours and its baseline taken in turn.

    python benchmarks/delivery.py [--emails 2000] [--threads 4,8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import smtplib
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from statistics import median
from tempfile import TemporaryDirectory
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson  # noqa: E402
from common import ROOT, free_port, scratch_database, smtp_sink  # noqa: E402
from dramatiq.brokers.stub import StubBroker  # noqa: E402

from remarket_mailer.bootstrap import App, build_app  # noqa: E402
from remarket_mailer.config import Settings, load_settings  # noqa: E402
from remarket_mailer.delivery.base import Provider  # noqa: E402
from remarket_mailer.delivery.message import to_bytes  # noqa: E402
from remarket_mailer.delivery.providers.postmark import PostmarkProvider  # noqa: E402
from remarket_mailer.delivery.providers.smtp import SmtpProvider, SmtpSettings  # noqa: E402
from remarket_mailer.domain.clock import VirtualClock  # noqa: E402
from remarket_mailer.entrypoints.gc_tuning import tune_gc  # noqa: E402
from remarket_mailer.entrypoints.worker import warm_templates  # noqa: E402
from remarket_mailer.schemas import parse_event  # noqa: E402
from remarket_mailer.services.dispatch import dispatch_due  # noqa: E402
from remarket_mailer.services.ingest import ingest_batch  # noqa: E402

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def cart(n: int) -> dict[str, Any]:
    return {
        "event_id": f"bench-{n}",
        "type": "cart.updated",
        "occurred_at": T0.isoformat(),
        "contact": {"email": f"shopper{n}@example.org"},
        "cart_id": f"cart-{n}",
        "currency": "EUR",
        "total": "74.50",
        "checkout_url": "https://shop.example/checkout",
        "items": [
            {
                "name": f"Product {i}",
                "quantity": 1,
                "unit_price": "24.50",
                "url": f"https://shop.example/p/{i}",
            }
            for i in range(3)
        ],
    }


def prepared_app(url: str, workflows: Path, provider: Provider, emails: int) -> App:
    # The worker's default batch, or as many messages as a batch ESP takes in one call (up to
    # 500). SMTP requests are smaller than a batch (results are recorded per request), so
    # its batches stay at the default rather than shrinking to one request.
    batch_size = max(Settings.model_fields["batch_size"].default, min(provider.max_batch, 500))
    settings = load_settings(
        database_url=url,
        broker_url="stub://",
        provider_url="memory://",
        workflows_dir=workflows,
        templates_dir=ROOT / "templates",
        consent_rule="opt_out",
        secret_key="benchmark-secret-key-0123456789-0123456789",
        frequency_caps="100/1h",
        provider_rate=0,
        batch_size=batch_size,
    )
    app = build_app(settings, clock=VirtualClock(T0), provider=provider, broker=StubBroker())
    for start in range(0, emails, 500):
        events = [cart(n) for n in range(start, min(start + 500, emails))]
        ingest_batch(app.uow, app.workflows, app.clock, [(parse_event(e), e) for e in events])
    assert isinstance(app.clock, VirtualClock)
    app.clock.set(T0 + timedelta(hours=1))
    warm_templates(app)  # as `remarket worker` does before it takes work
    tune_gc()
    return app


def run_pipeline(app: App, threads: int) -> float:
    """Sweep and send everything due with ``threads`` workers; seconds taken."""
    batches: list[list[int]] = []
    begin = time.perf_counter()
    dispatch_due(
        app.uow,
        app.clock,
        lambda ids: batches.append(list(ids)),
        batch_size=app.settings.batch_size,
        max_rows=10**6,
    )
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not batches:
                    return
                batch = batches.pop()
            app.delivery.send(batch)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return time.perf_counter() - begin


def raw_smtplib(port: int, messages: list[tuple[str, str, bytes]]) -> float:
    begin = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as conn:
        for sender, recipient, data in messages:
            conn.sendmail(sender, [recipient], data)
    return time.perf_counter() - begin


class _PostmarkMock(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        # orjson: the mock stands for a remote ESP and shares our two cores, so it should
        # spend as little of them as it can while still reading every message.
        body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = json.dumps(
            [{"ErrorCode": 0, "Message": "OK", "MessageID": f"m{i}"} for i in range(len(body))]
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


def dramatiq_noop(count: int, redis_url: str, threads: int) -> float:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=redis_url, namespace="remarket-bench")
    broker.flush_all()

    @dramatiq.actor(broker=broker, queue_name="bench")
    def noop(_n: int) -> None:
        pass

    begin = time.perf_counter()
    for n in range(count):
        noop.send(n)
    worker = dramatiq.Worker(broker, worker_threads=threads)
    worker.start()
    broker.join("bench")
    worker.join()
    elapsed = time.perf_counter() - begin
    worker.stop()
    broker.flush_all()
    broker.close()
    return elapsed


def serve_mock(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), _PostmarkMock).serve_forever()


def wait_for_port(port: int) -> None:
    import socket

    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)


Row = tuple[str, list[float], str, list[float]]


def measure(n: int, threads: int, redis: str, workflows: Path, rounds: int) -> list[Row]:
    """Both comparisons with ``threads`` worker threads (ours and the Dramatiq drain alike),
    ``rounds`` times, each ours-then-baseline: a slow spell of the machine (they come and go
    over seconds here) then falls on both sides instead of deciding one ratio."""
    from remarket_mailer.delivery.providers.memory import MemoryProvider

    # Prebuilt copies of what the pipeline sends, for the raw smtplib baseline.
    memory = MemoryProvider()
    with scratch_database() as url:
        app = prepared_app(url, workflows, memory, n)
        run_pipeline(app, threads)
        app.close()
    prebuilt = [
        ("news@shop.example", f"shopper{m.delivery_id}@example.org", to_bytes(m))
        for m in memory.outbox
    ]
    ours_smtp: list[float] = []
    raw: list[float] = []
    ours_http: list[float] = []
    noop: list[float] = []
    # The ESP mock runs in its own process, as a real ESP would not share our GIL.
    port = free_port()
    mock = subprocess.Popen([sys.executable, __file__, "--serve-mock", str(port)])
    base = f"http://127.0.0.1:{port}"
    wait_for_port(port)
    try:
        for _ in range(rounds):
            with smtp_sink() as sink, scratch_database() as url:
                app = prepared_app(url, workflows, SmtpProvider(SmtpSettings("127.0.0.1", sink)), n)
                ours_smtp.append(n / run_pipeline(app, threads))
                app.close()
                raw.append(n / raw_smtplib(sink, prebuilt))
            with scratch_database() as url:
                app = prepared_app(url, workflows, PostmarkProvider("token", base_url=base), n)
                ours_http.append(n / run_pipeline(app, threads))
                app.close()
            noop.append(n / dramatiq_noop(n, redis, threads))
    finally:
        mock.terminate()
        mock.wait(10)
    return [
        ("(a) remarket -> SMTP sink", ours_smtp, "raw smtplib, prebuilt", raw),
        ("(b) remarket -> ESP batch mock", ours_http, "Dramatiq no-op drain", noop),
    ]


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-mock":
        serve_mock(int(sys.argv[2]))
        return
    default_threads = Settings.model_fields["worker_threads"].default
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument(
        "--threads",
        default=f"4,{default_threads}",
        help="worker thread counts to measure, for ours and the Dramatiq drain alike "
        f"(default: 4 and the worker's default, {default_threads})",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per figure")
    args = parser.parse_args()
    n = args.emails
    counts = sorted({int(t) for t in args.threads.split(",")})
    with TemporaryDirectory() as tmp:
        workflows = Path(tmp)
        source = ROOT / "workflows" / "abandoned_cart.yaml"
        (workflows / source.name).write_text(source.read_text())
        results = {
            threads: measure(n, threads, args.redis, workflows, args.rounds) for threads in counts
        }
    print(f"{n} emails, PostgreSQL, median of {args.rounds} rounds (range in brackets)")
    print(f"{'':40}{'sends/s':>20}   {'baseline':22}{'per s':>20}{'ratio':>7}")
    for threads, rows in results.items():
        for label, ours, base_label, base in rows:
            label = f"{label}, {threads} threads"
            print(
                f"{label:40}{_spread(ours):>20}   {base_label:22}{_spread(base):>20}"
                f"{median(ours) / median(base):7.2f}"
            )
    print("targets: (a) >= 0.8x, (b) >= 2x")


def _spread(values: list[float]) -> str:
    return f"{median(values):.0f} [{min(values):.0f}-{max(values):.0f}]"


if __name__ == "__main__":
    main()
