"""A live preview of the templates for the people who write them: ``/preview/``.

Every template, rendered with the sample contexts (``_samples/*.yaml``) in any language, at
desktop (600 px) or mobile (375 px) width, with its subject, preheader, text part and HTML
size. The page polls ``/preview/version`` (a hash of the templates directory) and reloads when
a file changes, so an edit shows up on save. Problems show as ``file:line: message``.

It renders sample data only and sends nothing, but it shows the templates' source material:
mount it on an internal address or behind authentication.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse

from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering.locales import catalog_files
from remarket_mailer.rendering.renderer import (
    GMAIL_CLIP_BYTES,
    RenderedEmail,
    Renderer,
    available_languages,
)
from remarket_mailer.rendering.samples import load_samples, sample_context

WIDTHS = {"desktop": 600, "mobile": 375}
AUTO = "auto"
"""Locale choice meaning: whatever the sample contact's own locale resolves to."""

# The email's HTML is shown in a sandboxed iframe and may not run script or load anything but
# images and inline styles.
EMAIL_CSP = "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; sandbox"


def directory_hash(directory: Path) -> str:
    """A hash of every file's path and content under ``directory`` (hidden files aside)."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            digest.update(rel.as_posix().encode() + b"\0")
            try:
                digest.update(path.read_bytes())
            except OSError:
                continue
            digest.update(b"\0")
    return digest.hexdigest()[:16]


@dataclass
class _State:
    renderer: Renderer
    version: str
    catalogs: tuple[str, ...]


class _Preview:
    """The renderer behind the page, refreshed when the directory's content changes."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self._lock = threading.Lock()
        self._state = self._fresh()

    def _fresh(self) -> _State:
        catalogs = tuple(catalog_files(self.templates_dir))
        renderer = Renderer(self.templates_dir, languages=available_languages(self.templates_dir))
        return _State(renderer, directory_hash(self.templates_dir), catalogs)

    def current(self) -> tuple[Renderer, str]:
        """The renderer, up to date with the files, and the version it reflects.

        Raises TemplateError when a catalog cannot be loaded.
        """
        version = directory_hash(self.templates_dir)
        with self._lock:
            state = self._state
            if version != state.version:
                if tuple(catalog_files(self.templates_dir)) != state.catalogs:
                    state = self._fresh()
                else:
                    state.renderer.refresh()
                    state.version = version
                self._state = state
            return state.renderer, state.version

    def version(self) -> str:
        return directory_hash(self.templates_dir)

    def resolve(
        self, template: str | None, locale: str, sample: str | None, width: str
    ) -> tuple[Renderer, str, _View, dict[str, dict[str, Any]]]:
        """What a request asks to see, falling back to the first template and sample; raises
        HTTPException 404 when there is no such template, 422 when the samples are broken."""
        renderer, version = self.current()
        names = renderer.templates()
        if not names:
            raise HTTPException(404, f"no templates in {self.templates_dir}")
        chosen = template or names[0]
        if chosen not in names:
            raise HTTPException(404, f"no template {chosen!r}")
        try:
            samples = load_samples(self.templates_dir)
        except TemplateError as exc:
            raise HTTPException(422, str(exc)) from None
        if not samples:
            samples = {"empty": {}}
        picked = sample if sample in samples else next(iter(samples))
        if locale != AUTO and locale not in renderer.languages:
            locale = AUTO
        view = _View(chosen, locale, picked, width if width in WIDTHS else "desktop")
        return renderer, version, view, samples


@dataclass(frozen=True)
class _View:
    template: str
    locale: str
    sample: str
    width: str

    def query(self, **changes: str) -> str:
        values = {
            "template": self.template,
            "locale": self.locale,
            "sample": self.sample,
            "width": self.width,
            **changes,
        }
        return urlencode(values)


def _render(renderer: Renderer, view: _View, samples: dict[str, dict[str, Any]]) -> RenderedEmail:
    sample = samples[view.sample]
    if view.locale == AUTO:
        return renderer.render(view.template, sample_context(sample))
    context = sample_context(sample, view.locale)
    return renderer.render(view.template, context, locale=view.locale)


def preview_router(templates_dir: Path) -> APIRouter:
    """Routes for the preview page: ``GET /preview/``, ``/preview/html``, ``/preview/version``.

    Raises TemplateError at once when a catalog under ``templates_dir`` is invalid.
    """
    preview = _Preview(templates_dir)
    router = APIRouter(prefix="/preview", tags=["preview"])

    @router.get("/", response_class=HTMLResponse)
    def page(
        template: str | None = Query(None, description="e.g. abandoned_cart/reminder_1"),
        locale: str = Query(AUTO, description="A language, or 'auto': the sample contact's own"),
        sample: str | None = Query(None, description="Sample context (file name in _samples/)"),
        width: str = Query("desktop", description="desktop (600 px) or mobile (375 px)"),
    ) -> HTMLResponse:
        renderer, version, view, samples = preview.resolve(template, locale, sample, width)
        try:
            email: RenderedEmail | None = _render(renderer, view, samples)
            problem = None
        except TemplateError as exc:
            email, problem = None, str(exc)
        body = _page(renderer, version, view, list(samples), email, problem)
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    @router.get("/html", response_class=HTMLResponse)
    def email_html(
        template: str | None = None,
        locale: str = AUTO,
        sample: str | None = None,
    ) -> HTMLResponse:
        renderer, _, view, samples = preview.resolve(template, locale, sample, "desktop")
        headers = {"Cache-Control": "no-store", "Content-Security-Policy": EMAIL_CSP}
        try:
            email = _render(renderer, view, samples)
        except TemplateError as exc:
            error = f"<pre>{html.escape(str(exc))}</pre>"
            return HTMLResponse(error, status_code=422, headers=headers)
        return HTMLResponse(email.html, headers=headers)

    @router.get("/version")
    def version() -> JSONResponse:
        return JSONResponse({"version": preview.version()}, headers={"Cache-Control": "no-store"})

    return router


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1f2933; background: #eef0f3; }
header { background: #1f2933; color: #fff; padding: 10px 18px; }
header h1 { font-size: 16px; margin: 0; }
main { display: grid; grid-template-columns: 250px minmax(0, 1fr); min-height: calc(100vh - 40px); }
nav { background: #fff; border-right: 1px solid #d5d9e0; padding: 12px; }
nav a { display: block; padding: 4px 6px; color: #1f2933; text-decoration: none; }
nav a.on { background: #1f6feb; color: #fff; border-radius: 4px; }
section { padding: 14px 18px; }
.bar a { margin-right: 6px; padding: 2px 8px; border: 1px solid #c3c9d3; border-radius: 10px;
  color: #1f2933; text-decoration: none; background: #fff; }
.bar a.on { background: #1f2933; color: #fff; }
.bar { margin-bottom: 8px; }
dl { display: grid; grid-template-columns: 110px 1fr; gap: 4px 10px; background: #fff;
  padding: 10px; border: 1px solid #d5d9e0; border-radius: 6px; }
dt { color: #6b7280; } dd { margin: 0; }
.panes { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; margin-top: 12px; }
iframe { border: 1px solid #c3c9d3; background: #fff; height: 1100px; flex: none; }
pre { background: #fff; border: 1px solid #d5d9e0; padding: 10px; white-space: pre-wrap;
  overflow-wrap: anywhere; flex: 1 1 200px; max-width: 560px; margin: 0; }
.problem { background: #fdecec; border: 1px solid #e5a0a0; color: #8a1c1c; padding: 10px; }
.over { color: #b42318; font-weight: bold; }
iframe, pre, dl { max-width: 100%; box-sizing: border-box; }
/* A phone or a narrow window: the template list goes on top and the email takes the width. */
@media (max-width: 860px) {
  main { grid-template-columns: minmax(0, 1fr); }
  nav { border-right: 0; border-bottom: 1px solid #d5d9e0; display: flex; flex-wrap: wrap;
    gap: 2px 4px; padding: 8px; }
  section { padding: 10px; }
  .panes { display: block; }
  iframe { width: 100%; }
  pre { max-width: none; margin-top: 12px; }
  dl { grid-template-columns: 90px minmax(0, 1fr); }
  dd { overflow-wrap: anywhere; }
}
"""

_POLL = """
const seen = __VERSION__;
setInterval(async () => {
  try {
    const answer = await fetch("version", {cache: "no-store"});
    if ((await answer.json()).version !== seen) location.reload();
  } catch (e) {}
}, 1000);
"""


def _links(view: _View, field: str, options: list[tuple[str, str]]) -> str:
    current = getattr(view, field)
    links = []
    for value, label in options:
        href = html.escape(view.query(**{field: value}))
        on = "on" if value == current else ""
        links.append(f'<a class="{on}" href="?{href}">{html.escape(label)}</a>')
    return "".join(links)


def _page(
    renderer: Renderer,
    version: str,
    view: _View,
    samples: list[str],
    email: RenderedEmail | None,
    problem: str | None,
) -> str:
    e = html.escape
    nav = "".join(
        f'<a class="{"on" if name == view.template else ""}" '
        f'href="?{e(view.query(template=name))}">{e(name)}</a>'
        for name in renderer.templates()
    )
    languages = [(AUTO, "contact's own"), *((x, x) for x in renderer.languages)]
    widths = [(name, f"{name} {px}px") for name, px in WIDTHS.items()]
    bars = (
        f'<div class="bar">Language: {_links(view, "locale", languages)}</div>'
        f'<div class="bar">Sample: {_links(view, "sample", [(x, x) for x in samples])}</div>'
        f'<div class="bar">Width: {_links(view, "width", widths)}</div>'
    )
    if email is None:
        content = f'<div class="problem"><strong>Problem</strong><pre>{e(problem or "")}</pre>'
        content += "</div>"
    else:
        size = len(email.html.encode())
        over = ' class="over"' if size > GMAIL_CLIP_BYTES else ""
        frame = view.query()
        content = (
            "<dl>"
            f'<dt>Subject</dt><dd id="subject">{e(email.subject)}</dd>'
            f'<dt>Preheader</dt><dd id="preheader">{e(email.preheader)}</dd>'
            f"<dt>Language</dt><dd>{e(email.locale)}</dd>"
            f"<dt>HTML size</dt><dd{over}>{size / 1024:.1f} KB "
            f"(Gmail clips above {GMAIL_CLIP_BYTES // 1024} KB)</dd>"
            "</dl>"
            '<div class="panes">'
            f'<iframe title="HTML part" sandbox src="html?{e(frame)}" '
            f'width="{WIDTHS[view.width]}"></iframe>'
            f'<pre id="text" aria-label="text part">{e(email.text)}</pre>'
            "</div>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(view.template)} · preview</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>Template preview · {e(str(renderer.templates_dir))}</h1></header>"
        f"<main><nav>{nav}</nav><section>{bars}{content}</section></main>"
        f"<script>{_POLL.replace('__VERSION__', json.dumps(version))}</script></body></html>"
    )
