"""``remarket dev``: the API, the scheduler and a worker in one process, for trying it out.

The production layout is three kinds of process talking through a broker (Redis or
RabbitMQ). To try remarket on a laptop with nothing installed, this runs all three in one
process on the embedded defaults (SQLite, Dramatiq's in-process stub broker, ``.eml`` files
in ``./outbox``): post an event with curl and the email appears in the outbox once it is due.
Not for production: one process, one machine, no broker to survive a restart (the database
still holds every delivery, so nothing is lost, only re-dispatched by the next run's sweep).
"""

from __future__ import annotations

import logging

import uvicorn

from remarket_mailer.bootstrap import App, wait_for_database
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.entrypoints.scheduler import add_jobs
from remarket_mailer.entrypoints.worker import start_worker

log = logging.getLogger(__name__)


def run_dev(app: App, *, host: str, port: int) -> None:
    """Serve the API on ``host:port`` with the scheduler's jobs and worker threads running
    beside it, until Ctrl-C or SIGTERM."""
    from apscheduler.schedulers.background import BackgroundScheduler

    wait_for_database(app)
    # No warm-up (5 s for every template in every language): each compiles when first used.
    worker = start_worker(app, threads=2)
    scheduler = BackgroundScheduler(timezone="UTC")
    add_jobs(scheduler, app)
    scheduler.start()
    log.info(
        "dev: API on http://%s:%d, scheduler every %ss, worker threads=2, provider=%s",
        host,
        port,
        app.settings.sweep_interval_seconds,
        app.settings.provider_url.split("://", 1)[0],
    )
    try:
        # uvicorn handles SIGINT/SIGTERM: run() returns once it has shut down.
        uvicorn.Server(uvicorn.Config(create_api(app), host=host, port=port)).run()
    finally:
        scheduler.shutdown(wait=False)
        worker.stop()
        app.close()
