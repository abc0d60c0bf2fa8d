"""Speed as users run it: ``remarket api``, ``remarket scheduler`` and ``remarket worker`` as
separate processes on PostgreSQL and a Redis broker, next to baselines measured in the same
run.

Each measurement of ours: start ``remarket worker --workers W`` (8 threads each, the default)
with the provider, wait until every process says it started; create ``--emails`` due
abandoned-cart emails through ``POST /v1/events/batch`` (carts left an hour ago, so the first
reminder is due) while the scheduler is held (SIGSTOP: the backlog waits as if the scheduler
were away); let the scheduler go (it sweeps every 0.2 s here) and wait until the sink has
every message. Every rate counts from the moment the senders are told to go to the last
arrival at the sink (Celery's from its first arrival: its worker process starts then). Sinks
run in their own processes: aiosmtpd, and Postmark's batch endpoint over HTTPS
(``e2e_sinks.py``).

Baselines, taken in turn with ours in every round (a slow spell of the shared machine then
falls on both): a Dramatiq no-op actor drained by W processes × 8 threads; raw smtplib with a
reused connection from 1 and 2 processes, sending the very email ours sent; and, when
installed (``pip install -e '.[bench-peers]'``), django-post-office's ``send_queued_mail``
and a Celery task (Jinja render + smtplib) to the same sink (``peers/``).

Printed: median [range] per row with its ratio, CPU seconds per process (from /proc) for
ours, the load average before and after.

    python benchmarks/e2e.py [--emails 5000] [--rounds 3] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from tempfile import TemporaryDirectory
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import yaml  # noqa: E402
from common import ROOT, free_port, scratch_database  # noqa: E402
from e2e_sinks import make_certificate  # noqa: E402
from e2e_stack import Stack, noop_drain, raw_smtplib  # noqa: E402
from peers import PEERS, peer_missing, run_peer  # noqa: E402
from procs import load_average  # noqa: E402

KEY = "bench-key"
THREADS = 8  # the worker's default (REMARKET_WORKER_THREADS), and the no-op drain's


def cart(n: int, tag: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"{tag}-{n}",
        "type": "cart.updated",
        "occurred_at": at.isoformat(),
        "contact": {"email": f"{tag}-{n}@example.org"},
        "cart_id": f"{tag}-cart-{n}",
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


def post_events(base: str, n: int, tag: str) -> None:
    """``n`` carts left 61 minutes ago, through the batch endpoint: the first reminder (wait
    1 h) of each is due at once."""
    at = datetime.now(UTC) - timedelta(minutes=61)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}) as client:
        for start in range(0, n, 500):
            events = [cart(i, tag, at) for i in range(start, min(start + 500, n))]
            answer = client.post("/v1/events/batch", json={"events": events}, timeout=120)
            if answer.status_code != 200:
                raise RuntimeError(f"ingest answered {answer.status_code}: {answer.text[:300]}")


def bench_workflows(directory: Path) -> Path:
    """The stock abandoned-cart workflow without its send window (08:00-21:00 in the
    contact's time zone), so the benchmark measures the same at any hour."""
    source = yaml.safe_load((ROOT / "workflows" / "abandoned_cart.yaml").read_text())
    source.pop("send_window", None)
    workflows = directory / "workflows"
    workflows.mkdir()
    (workflows / "abandoned_cart.yaml").write_text(yaml.safe_dump(source))
    return workflows


Rows = dict[str, list[float]]


def one_round(stack: Stack, args: argparse.Namespace, number: int, rows: Rows) -> None:
    n = args.emails

    def add(label: str, value: float) -> None:
        rows.setdefault(label, []).append(value)
        print(f"  round {number}: {label}: {value:.0f}/s  (load {load_average()})", flush=True)

    for workers in args.workers if "smtp" in args.only or "peers" in args.only else ():
        add(f"smtp {workers}", stack.ours("smtp", workers, n, f"r{number}s{workers}"))
        if "smtp" in args.only:
            add(f"raw {workers}", raw_smtplib(stack, workers, n))
    for workers in args.workers if "esp" in args.only else ():
        add(f"esp {workers}", stack.ours("esp", workers, n, f"r{number}e{workers}"))
        add(f"noop {workers}", noop_drain(stack, workers, THREADS, n))
    for name, configurations in PEERS.items():
        if peer_missing(name) or "peers" not in args.only:
            continue
        for configuration in configurations:
            add(f"{name} {configuration}", run_peer(stack, name, configuration, n))


def _spread(values: list[float]) -> str:
    return f"{median(values):,.0f}/s ({min(values):,.0f}-{max(values):,.0f})"


def report(rows: Rows, stack: Stack, args: argparse.Namespace, loads: list[str]) -> None:
    print(
        f"\n{args.emails} emails, {args.rounds} rounds, medians (ranges); "
        f"load average (1/5/15 min) before {loads[0]}, after {loads[1]}"
    )
    print(f"| measure | ours | baseline in the same run | ratio |\n|{'---|' * 4}")

    def row(label: str, ours: str, base_label: str, base: str | None) -> None:
        if ours not in rows:
            return
        if base is None or base not in rows:
            print(f"| {label} | {_spread(rows[ours])} | {base_label} | — |")
            return
        ratio = median(rows[ours]) / median(rows[base])
        print(f"| {label} | {_spread(rows[ours])} | {base_label}: {_spread(rows[base])} "
              f"| {ratio:.2f}x |")  # fmt: skip

    for w in args.workers:
        row(f"ESP batch mock, {w} worker × {THREADS} threads", f"esp {w}",
            f"Dramatiq no-op drain {w} × {THREADS}", f"noop {w}")  # fmt: skip
    for w in args.workers:
        row(f"SMTP sink, {w} worker × {THREADS} threads", f"smtp {w}",
            f"raw smtplib, {w} process(es), reused connection", f"raw {w}")  # fmt: skip
    if len(args.workers) > 1:
        low, high = min(args.workers), max(args.workers)
        for kind in ("esp", "smtp", "raw"):
            if f"{kind} {low}" in rows and f"{kind} {high}" in rows:
                gain = median(rows[f"{kind} {high}"]) / median(rows[f"{kind} {low}"])
                print(f"| {kind}: {high} processes / {low} | {gain:.2f}x | | |")
    measured = [w for w in args.workers if f"smtp {w}" in rows]
    for name, configurations in PEERS.items() if "peers" in args.only and measured else ():
        if peer_missing(name):
            print(f"| {name} | skipped (pip install -e '.[bench-peers]') | — | — |")
            continue
        for configuration in configurations:
            # Beside ours with as many processes (Celery's prefork pool: one per task slot),
            # or ours' largest measured count.
            count = int(configuration.partition("=")[2])
            same = count if count in measured else max(measured)
            ours = median(rows[f"smtp {same}"])
            key = f"{name} {configuration}"
            print(
                f"| {name} {configuration}, same sink and email | {_spread(rows[key])} "
                f"| ours SMTP, {same} process(es): {ours:,.0f}/s "
                f"| ours {ours / median(rows[key]):.2f}x |"
            )
    print("\nCPU seconds per process during ours (median over rounds):")
    for label, cpu in stack.cpu.items():
        parts = ", ".join(f"{role} {median(values):.2f}" for role, values in cpu.items())
        print(f"  {label}: {parts}")
    for label, counts in stack.connections.items():
        print(f"  PostgreSQL connections of the worker processes, {label}: max {max(counts)}")
    print(
        "targets: ESP >= 2.0x the no-op drain (1 and 2 processes); SMTP >= 1.0x raw smtplib; "
        "ESP 1 -> 2 processes >= 1.8x; >= 2x django-post-office and Celery"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--emails", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workers", default="1,2", help="worker process counts, comma-separated (default 1,2)"
    )
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/8",
        help="broker: a spare Redis DB, flushed by the run",
    )
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--only",
        default="esp,smtp,peers",
        help="what to measure: esp (with the no-op drain), smtp (with raw smtplib), peers",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the worker processes with py-spy (collapsed stacks) into this directory",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: only samples that hold the GIL (where the CPU goes)",
    )
    args = parser.parse_args()
    try:
        args.workers = sorted({int(w) for w in args.workers.split(",")})
    except ValueError:
        parser.error("--workers: comma-separated whole numbers, e.g. 1,2")
    args.only = set(args.only.split(","))
    if not args.only <= {"esp", "smtp", "peers"}:
        parser.error("--only: a comma-separated subset of esp, smtp, peers")
    if args.emails < 100 or args.rounds < 1 or min(args.workers) < 1:
        parser.error("--emails must be at least 100, --rounds and --workers at least 1")
    loads = [load_average()]
    rows: Rows = {}
    with TemporaryDirectory() as tmp, scratch_database(args.postgres) as url:
        directory = Path(tmp)
        ca, cert, key = make_certificate(directory)
        env = {
            "REMARKET_DATABASE_URL": url,
            "REMARKET_BROKER_URL": args.redis,
            "REMARKET_API_KEYS": KEY,
            "REMARKET_SECRET_KEY": "benchmark-only-secret-key-0123456789abcdef",
            "REMARKET_WORKFLOWS_DIR": str(bench_workflows(directory)),
            "REMARKET_TEMPLATES_DIR": str(ROOT / "templates"),
            "REMARKET_CONSENT_RULE": "opt_out",
            "REMARKET_FREQUENCY_CAPS": "100/1h",
            "REMARKET_PROVIDER_RATE": "0",  # no throttle: the sink is the limit
            "REMARKET_METRICS_PORT": "0",
            "REMARKET_SWEEP_INTERVAL_SECONDS": "0.2",
            "SSL_CERT_FILE": str(ca),  # trusts the ESP mock's throwaway CA
        }
        with Stack(
            directory, env, url, cert, key, free_port(), post_events, args.postgres
        ) as stack:
            stack.profile = args.profile
            stack.spy_options = ["--gil"] if args.profile_gil else []
            for number in range(1, args.rounds + 1):
                one_round(stack, args, number, rows)
            loads.append(load_average())
            report(rows, stack, args, loads)


if __name__ == "__main__":
    main()
