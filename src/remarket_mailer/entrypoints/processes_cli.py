"""``remarket api``, ``worker``, ``scheduler`` and ``dev``: start the long-running processes.

Each builds the application once up front, so a bad setting is one line and exit code 2.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from remarket_mailer.entrypoints.cli_common import (
    configure_logging,
    current_settings,
    fail,
    one_process_settings,
    shared_broker_settings,
)


def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (events, health, one-click unsubscribe)."""
    from remarket_mailer.bootstrap import build_app, wait_for_database
    from remarket_mailer.entrypoints.serve import ClientLimits, serve

    configure_logging()
    if workers < 1:
        raise fail("--workers must be at least 1")
    # Build once here so a bad setting or a database on another schema is one clear line and
    # exit code 2, not a traceback (or a 500 on every request) in every worker; the workers
    # build their own from the same environment. A database not up yet is waited for.
    settings = current_settings()
    built = build_app(settings)
    try:
        wait_for_database(built)
    finally:
        built.close()
    serve(
        "remarket_mailer.entrypoints.asgi:create_app",
        host=host,
        port=port,
        workers=workers,
        factory=True,
        metrics_port=settings.metrics_port,
        metrics_host=settings.metrics_host,
        log_format=settings.log_format,
        limits=ClientLimits(
            header_timeout=settings.api_header_timeout_seconds,
            keep_alive_timeout=settings.api_keep_alive_seconds,
            max_concurrency=settings.api_max_concurrency,
        ),
    )


def worker(
    workers: Annotated[
        int,
        typer.Option(help="Worker processes, each with REMARKET_WORKER_THREADS threads."),
    ] = 1,
) -> None:
    """Run Dramatiq worker threads that render and send due emails."""
    from remarket_mailer.bootstrap import build_app
    from remarket_mailer.entrypoints.worker import run_worker, run_workers

    if workers < 1:
        raise fail("--workers must be at least 1")
    configure_logging()
    if workers > 1:
        raise typer.Exit(run_workers(shared_broker_settings(), workers))
    run_worker(build_app(shared_broker_settings()))


def scheduler() -> None:
    """Run the sweeper: claims due deliveries and enqueues them for the workers."""
    from remarket_mailer.bootstrap import build_app
    from remarket_mailer.entrypoints.scheduler import run_scheduler

    configure_logging()
    run_scheduler(build_app(shared_broker_settings()))


def dev(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Try it in one process: the API, the scheduler and a worker together (not for
    production). With the defaults: SQLite, the in-process broker, emails in ./outbox."""
    from remarket_mailer.bootstrap import build_app
    from remarket_mailer.entrypoints.dev import run_dev

    configure_logging()
    settings = current_settings()
    if not settings.secret_key:
        logging.getLogger(__name__).warning(
            "REMARKET_SECRET_KEY is not set: using a random one for this run; the unsubscribe "
            "links in its emails stop verifying when it ends"
        )
        settings = one_process_settings()
    run_dev(build_app(settings), host=host, port=port)
