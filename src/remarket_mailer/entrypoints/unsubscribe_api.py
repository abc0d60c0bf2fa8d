"""The unsubscribe links of every email: ``POST /u/<token>`` (RFC 8058 one-click, and the
preference page's forms) and ``GET /u/<token>`` (the preference page).

RFC 8058: the POST needs no cookie, no login and no redirect; everything is in the signed
token, and it takes effect at once. A GET never unsubscribes (link scanners GET every link),
it only shows the choice. Pages come from ``templates/_pages`` in the contact's language.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from remarket_mailer.bootstrap import App
from remarket_mailer.domain.audiences import ADS_TOPIC
from remarket_mailer.entrypoints.http import read_body
from remarket_mailer.entrypoints.link_pages import invalid_link
from remarket_mailer.errors import ValidationError
from remarket_mailer.rendering.pages import PageRenderer
from remarket_mailer.services.preferences import allows_ads, contact_language
from remarket_mailer.services.unsubscribe import unsubscribe
from remarket_mailer.tracking.links import UnsubscribeToken

# An unsubscribe form is a few fields; anything larger is not one.
UNSUBSCRIBE_MAX_BYTES = 16_000


def unsubscribe_router(app: App, pages: PageRenderer) -> APIRouter:
    """The ``/u/<token>`` routes of ``app``, answered with ``pages``."""
    router = APIRouter(include_in_schema=False)
    categories = sorted({w.category for w in app.workflows.workflows.values()})

    async def language(token: UnsubscribeToken) -> str | None:
        return await run_in_threadpool(contact_language, app.uow, token.contact_id)

    @router.post("/u/{token}", summary="RFC 8058 one-click unsubscribe")
    async def one_click(token: str, request: Request) -> HTMLResponse:
        try:
            parsed = app.links.read_unsubscribe_token(token)
        except ValidationError as exc:
            return invalid_link(pages, request, exc)
        body = await read_body(request, UNSUBSCRIBE_MAX_BYTES)
        # Gmail posts "List-Unsubscribe=One-Click" urlencoded; RFC 8058 also allows multipart.
        # Any POST to this URL unsubscribes from the token's topic; the preference page may
        # send "scope=all" or a list of "topics".
        fields: dict[str, list[str]] = {}
        if "urlencoded" in request.headers.get("content-type", ""):
            fields = parse_qs(body.decode("utf-8", "replace"))
        everything = fields.get("scope") == ["all"]
        # Besides the email categories, a contact may stop their address going into ad
        # audiences (the page offers it only to those who allowed it).
        choosable = {*categories, ADS_TOPIC}
        topics = [t for t in fields.get("topics", []) if t in choosable] or [parsed.topic]
        source = "one-click" if b"One-Click" in body else "preference page"
        found = True
        for topic in [parsed.topic] if everything else topics:
            result = await run_in_threadpool(
                unsubscribe,
                app.uow,
                app.workflows,
                app.clock,
                replace(parsed, topic=topic),
                everything=everything,
                source=source,
            )
            found = found and result.contact_found
        page = pages.render(
            "unsubscribe",
            await language(parsed) if found else None,
            view="done",
            everything=everything and found,
            topics=topics if found and not everything else [],
        )
        return HTMLResponse(page)

    @router.get("/u/{token}", summary="Unsubscribe confirmation and preference page")
    async def preference_page(token: str, request: Request) -> HTMLResponse:
        try:
            parsed = app.links.read_unsubscribe_token(token)
        except ValidationError as exc:
            return invalid_link(pages, request, exc)
        choices = [{"value": t, "checked": t == parsed.topic} for t in categories]
        if await run_in_threadpool(allows_ads, app.uow, parsed.contact_id):
            choices.append({"value": ADS_TOPIC, "checked": False})
        page = pages.render("unsubscribe", await language(parsed), view="choose", topics=choices)
        return HTMLResponse(page)

    return router
