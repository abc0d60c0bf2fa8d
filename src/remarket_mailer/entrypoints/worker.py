"""The worker process: Dramatiq worker threads consuming ``send_batch`` messages."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import dramatiq

from remarket_mailer.bootstrap import App
from remarket_mailer.entrypoints import actors
from remarket_mailer.entrypoints.gc_tuning import tune_gc
from remarket_mailer.metrics import serve as serve_metrics

log = logging.getLogger(__name__)


def start_worker(app: App, threads: int | None = None) -> dramatiq.Worker:
    """Start worker threads in this process (the demo and tests call this too)."""
    actors.declare(app.broker, app.settings.lease_seconds)
    worker = dramatiq.Worker(app.broker, worker_threads=threads or app.settings.worker_threads)
    worker.start()
    return worker


def run_worker(app: App) -> None:
    """Block until SIGINT/SIGTERM, then finish the batches in hand and stop."""
    serve_metrics(app.settings.metrics_port)
    tune_gc()
    worker = start_worker(app)
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("worker started threads=%d", app.settings.worker_threads)
    stopping.wait()
    log.info("worker stopping")
    worker.stop()
    app.close()
