"""The worker process: Dramatiq worker threads consuming ``send_batch`` messages."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

import dramatiq

from remarket_mailer.bootstrap import App, wait_for_database
from remarket_mailer.entrypoints import actors
from remarket_mailer.entrypoints.gc_tuning import tune_gc
from remarket_mailer.metrics import serve as serve_metrics

log = logging.getLogger(__name__)


def start_worker(app: App, threads: int | None = None) -> dramatiq.Worker:
    """Start worker threads in this process (the demo and tests call this too). Raises
    ConfigError when the lease is too short for the configured providers."""
    app.delivery.check_lease()
    actors.declare(app.broker, app.delivery.time_limit_seconds(app.settings.batch_size))
    worker = dramatiq.Worker(app.broker, worker_threads=threads or app.settings.worker_threads)
    worker.start()
    return worker


def warm_templates(app: App) -> int:
    """Compile every template the loaded workflows send, in every language; returns how many
    (template, language) pairs are ready. A template that does not compile is logged and left
    to fail its own deliveries."""
    names = [
        template
        for workflow in app.workflows.workflows.values()
        for step in workflow.steps
        for template in (step.template, *(v.template for v in step.variants))
    ]
    begin = time.perf_counter()
    failed = app.renderer.warm(names)
    for where, exc in failed.items():
        log.error("template %s does not compile: %s", where, exc)
    ready = len(set(names)) * len(app.renderer.languages) - len(failed)
    log.info("templates compiled=%d in %.1fs", ready, time.perf_counter() - begin)
    return ready


def run_worker(app: App) -> None:
    """Block until SIGINT/SIGTERM, then finish the batches in hand and stop. Raises
    ConfigError (exit 2) for a lease too short or a database on another schema."""
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    app.delivery.check_lease()
    wait_for_database(app, stopping)
    if stopping.is_set():
        app.close()
        return
    serve_metrics(app.settings.metrics_port, app.settings.metrics_host)
    warm_templates(app)
    tune_gc()  # after warming: the compiled templates are frozen with the rest
    worker = start_worker(app)
    log.info("worker started threads=%d", app.settings.worker_threads)
    stopping.wait()
    log.info("worker stopping")
    worker.stop()
    app.close()
