"""The worker process: Dramatiq worker threads consuming ``send_batch`` messages; with
``--workers N``, a supervisor of N such processes that serves their metrics added up."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import dramatiq

from remarket_mailer import metrics
from remarket_mailer.bootstrap import App, build_app, wait_for_database
from remarket_mailer.config import Settings
from remarket_mailer.entrypoints import actors
from remarket_mailer.entrypoints.gc_tuning import tune_gc
from remarket_mailer.errors import RemarketError

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


def run_worker(app: App, serve_metrics: bool = True) -> None:
    """Block until SIGINT/SIGTERM, then finish the batches in hand and stop. Raises
    ConfigError (exit 2) for a lease too short or a database on another schema. A process
    started by ``run_workers`` leaves its metrics to the supervisor (``serve_metrics``)."""
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
    if serve_metrics:
        metrics.serve_role("worker", app.settings.metrics_port, app.settings.metrics_host)
    warm_templates(app)
    tune_gc()  # after warming: the compiled templates are frozen with the rest
    worker = start_worker(app)
    log.info("worker started threads=%d", app.settings.worker_threads)
    stopping.wait()
    log.info("worker stopping")
    worker.stop()
    app.close()


# A child that exits with this code refused its settings: starting it again would only fail
# again, so the supervisor stops them all and exits with it.
CONFIG_EXIT = 2
RESTART_PAUSE_SECONDS = 1.0
STOP_GRACE_SECONDS = 60.0
"""How long a stopping child may take to finish the batches in hand before it is killed."""


def run_workers(settings: Settings, processes: int) -> int:
    """Run ``processes`` worker processes (each ``run_worker`` with its own threads) until
    SIGINT/SIGTERM; returns the exit code. Their metrics are served added up, here, on the
    worker's metrics port (prometheus_client multiprocess mode: PROMETHEUS_MULTIPROC_DIR is a
    fresh directory the children inherit; a child that ends is marked dead there). A child
    that dies is started again; one that refuses its settings (exit 2) stops them all.

    Raises ConfigError for settings every child would refuse (checked here once: one line,
    not one per child) and when an explicitly set metrics port cannot be bound."""
    app = build_app(settings)
    try:
        app.delivery.check_lease()
    finally:
        app.close()
    directory = metrics.multiprocess_directory()
    try:
        metrics.serve_role("worker", settings.metrics_port, settings.metrics_host)
        return _supervise(settings, processes)
    finally:
        directory.cleanup()


def _supervise(settings: Settings, processes: int) -> int:
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # spawn, not fork: each child imports prometheus_client afresh, after
    # PROMETHEUS_MULTIPROC_DIR is set, and holds no connection or thread of this process.
    context = multiprocessing.get_context("spawn")
    level = logging.getLevelName(logging.getLogger().level)

    def start(slot: int) -> BaseProcess:
        child = context.Process(
            target=_worker_process,
            args=(settings, level),
            name=f"remarket-worker-{slot}",
        )
        child.start()
        return child

    children = [start(slot) for slot in range(processes)]
    log.info("worker supervisor started processes=%d", processes)
    code = 0
    while not stopping.wait(0.5):
        for slot, child in enumerate(children):
            if child.is_alive():
                continue
            child.join()
            metrics.process_dead(child.pid or 0)
            if child.exitcode == CONFIG_EXIT:
                log.error("worker process %d refused its settings: stopping", child.pid)
                code = CONFIG_EXIT
                stopping.set()
                break
            log.error(
                "worker process %d exited with %s: starting another", child.pid, child.exitcode
            )
            time.sleep(RESTART_PAUSE_SECONDS)
            children[slot] = start(slot)
    log.info("worker supervisor stopping")
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: the child finishes the batches in hand
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        child.join(max(deadline - time.monotonic(), 0.1))
        if child.is_alive():
            child.kill()
            child.join()
        metrics.process_dead(child.pid or 0)
    return code


def _worker_process(settings: Settings, level: str) -> None:
    """One child of ``run_workers``: logs like its parent, runs a worker, exit 2 with one line
    for settings it refuses (as ``remarket worker`` does)."""
    from remarket_mailer.logs import configure

    configure(level, settings.log_format)
    try:
        run_worker(build_app(settings), serve_metrics=False)
    except RemarketError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's one line, in a child
        sys.exit(CONFIG_EXIT)
