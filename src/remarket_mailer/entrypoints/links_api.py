"""The tracked links inside emails: ``GET /c/<token>`` (click, then redirect) and
``GET /o/<token>`` (open pixel). Both only when tracking is switched on for the email."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from remarket_mailer.bootstrap import App
from remarket_mailer.entrypoints.link_pages import invalid_link
from remarket_mailer.errors import ValidationError
from remarket_mailer.rendering.pages import PageRenderer
from remarket_mailer.services.webhooks import record_engagement
from remarket_mailer.tracking.links import PIXEL_GIF, TrackingLinks


def tracking_links_router(app: App, pages: PageRenderer) -> APIRouter:
    """The click and open routes of ``app``; a bad click token gets ``pages``' error page."""
    router = APIRouter(include_in_schema=False)
    tracking = TrackingLinks(app.settings.secret_key, app.settings.public_url)

    @router.get("/c/{token}")
    async def click(token: str, request: Request) -> Response:
        try:
            delivery_id, url = tracking.read_click(token)
        except ValidationError as exc:
            return invalid_link(pages, request, exc)
        agent = request.headers.get("user-agent")
        await run_in_threadpool(
            record_engagement, app.uow, app.clock, delivery_id, "clicked", url, agent
        )
        # Only a URL we signed when rendering this email: never an open redirect.
        return RedirectResponse(url, status_code=302)

    @router.get("/o/{token}")
    async def pixel(token: str, request: Request) -> Response:
        try:
            delivery_id = tracking.read_open(token)
        except ValidationError:
            return Response(PIXEL_GIF, media_type="image/gif")
        agent = request.headers.get("user-agent")
        await run_in_threadpool(
            record_engagement, app.uow, app.clock, delivery_id, "opened", None, agent
        )
        return Response(PIXEL_GIF, media_type="image/gif", headers={"Cache-Control": "no-store"})

    return router
