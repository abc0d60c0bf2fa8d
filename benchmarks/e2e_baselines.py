"""The baselines of benchmarks/e2e.py, one process each (started ``× processes`` by it):

    python benchmarks/e2e_baselines.py noop REDIS_URL THREADS
    python benchmarks/e2e_baselines.py smtp PORT MESSAGE_FILE COUNT

``noop``: a Dramatiq worker with ``THREADS`` threads and an actor that does nothing; it starts
consuming when a line arrives on stdin (the messages are queued by then), and on SIGTERM
prints how many it ran and when the first and last ran (JSON, Unix time).
``smtp``: raw smtplib, one reused connection, ``COUNT`` copies of the message in
``MESSAGE_FILE`` (the very email remarket sent), starting when a line arrives on stdin.
"""

from __future__ import annotations

import json
import signal
import smtplib
import sys
import threading
import time
from pathlib import Path
from types import FrameType

NOOP_NAMESPACE = "remarket-bench-noop"
NOOP_QUEUE = "bench"


def noop_broker(redis_url: str) -> object:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=redis_url, namespace=NOOP_NAMESPACE)
    dramatiq.set_broker(broker)
    return broker


def run_noop(redis_url: str, threads: int) -> None:
    import dramatiq

    broker = noop_broker(redis_url)
    lock = threading.Lock()
    seen = {"count": 0, "first": 0.0, "last": 0.0}

    @dramatiq.actor(broker=broker, queue_name=NOOP_QUEUE, actor_name="noop")  # type: ignore[misc]
    def noop(_n: int) -> None:
        now = time.time()
        with lock:
            if not seen["count"]:
                seen["first"] = now
            seen["count"] += 1
            seen["last"] = now

    stopped = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    print("ready", file=sys.stderr, flush=True)
    sys.stdin.readline()
    worker = dramatiq.Worker(broker, worker_threads=threads)  # type: ignore[arg-type]
    worker.start()
    stopped.wait()
    worker.stop()
    print(json.dumps(seen), flush=True)


def run_smtp(port: int, message: Path, count: int) -> None:
    data = message.read_bytes()
    print("ready", file=sys.stderr, flush=True)
    sys.stdin.readline()
    with smtplib.SMTP("127.0.0.1", port) as connection:
        for n in range(count):
            connection.sendmail("shop@example.com", [f"raw{n}@example.org"], data)


def main() -> None:
    if sys.argv[1] == "noop":
        run_noop(sys.argv[2], int(sys.argv[3]))
    else:
        run_smtp(int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))


if __name__ == "__main__":
    main()
