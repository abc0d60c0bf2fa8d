"""``GET /v1/health``: the database and the broker answer (for load balancers and compose)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from remarket_mailer import __version__
from remarket_mailer.bootstrap import App, check_database

log = logging.getLogger(__name__)


def health_router(app: App) -> APIRouter:
    """The health route of ``app`` (no API key: it names no host, port or role)."""
    router = APIRouter()

    @router.get(
        "/v1/health",
        summary="Database and broker reachable",
        responses={503: {"description": 'Which dependency failed, e.g. ["database"]'}},
    )
    async def health() -> JSONResponse:
        failing: list[str] = []
        for name, check in (("database", check_database), ("broker", check_broker)):
            error = await run_in_threadpool(check, app)
            if error:
                # Error texts name hosts, ports and roles: the log gets them, callers do not.
                log.warning("health check failed dependency=%s error=%s", name, error)
                failing.append(name)
        if failing:
            return JSONResponse({"status": "unavailable", "failing": failing}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    return router


def check_broker(app: App) -> str | None:
    """None when the broker of ``app`` answers, else its error in one line."""
    broker = app.broker
    try:
        client = getattr(broker, "client", None)
        if client is not None:
            client.ping()
        elif hasattr(broker, "connection"):
            broker.connection  # noqa: B018 - opening the connection is the check
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None
