"""Pages answered to a link from an email that does not verify."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from remarket_mailer.errors import ValidationError
from remarket_mailer.rendering.locales import SOURCE_LOCALE
from remarket_mailer.rendering.pages import PageRenderer


def invalid_link(pages: PageRenderer, request: Request, problem: ValidationError) -> HTMLResponse:
    """The 400 page for a link that does not verify, in the browser's language."""
    locale = browser_language(pages, request.headers.get("accept-language", ""))
    page = pages.render("invalid_link", locale, problem=str(problem))
    return HTMLResponse(page, status_code=400)


def browser_language(pages: PageRenderer, accept_language: str) -> str | None:
    """The first language of an ``Accept-Language`` header that the pages are in, by weight;
    None when there is none (English)."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.partition(";")
        tag = tag.strip()
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*":
            weighted.append((-weight, position, tag))
    for _weight, _position, tag in sorted(weighted):
        chosen = pages.language(tag)
        if chosen != SOURCE_LOCALE or tag.lower().startswith(SOURCE_LOCALE):
            return chosen
    return None
