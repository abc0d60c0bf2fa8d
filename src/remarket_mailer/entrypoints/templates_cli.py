"""``remarket lint`` and ``remarket preview``: the templates, read as a recipient would and
shown in a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from remarket_mailer.entrypoints.cli_common import console, current_settings

PREVIEW_PORT = 8089
"""Not 8025: Mailpit's web UI has that one in docker-compose.yml, and a writer runs both."""


def lint(
    directory: Annotated[Path | None, typer.Argument(help="Templates directory.")] = None,
    workflows: Annotated[
        Path | None, typer.Option(help="Workflows directory: check each step's template.")
    ] = None,
) -> None:
    """Render every template in every language with the samples; print file:line: problem."""
    from remarket_mailer.rendering.lint import run_lint
    from remarket_mailer.workflows.loader import load_workflows

    settings = current_settings()
    workflows_dir = workflows or settings.workflows_dir
    steps = load_workflows(workflows_dir).workflows.values() if workflows_dir.is_dir() else None
    code = run_lint(
        directory or settings.templates_dir,
        # markup=False: rich would swallow the "[language it]" notes in the lines.
        lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True),
        steps,
    )
    raise typer.Exit(code=code)


def preview(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = PREVIEW_PORT,
) -> None:
    """Serve the template preview page (reloads when a template changes). Local use only."""
    import uvicorn
    from fastapi import FastAPI

    from remarket_mailer.rendering.preview import preview_router

    application = FastAPI(title="remarket preview")
    application.include_router(preview_router(current_settings().templates_dir))
    console.print(f"preview at http://{host}:{port}/preview/")
    uvicorn.run(application, host=host, port=port, log_level="warning")
