"""``remarket workflows``: check workflow files against the schema and the templates, and
print the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from remarket_mailer.entrypoints.cli_common import console, current_settings, fail
from remarket_mailer.entrypoints.cli_style import CommandGroup

workflows_app = CommandGroup(help="Workflow files.")


@workflows_app.command("validate")
def workflows_validate(
    directory: Annotated[Path | None, typer.Argument(help="Workflows directory.")] = None,
    templates: Annotated[
        Path | None,
        typer.Option(help="Templates directory the steps' templates must be in."),
    ] = None,
) -> None:
    """Check every workflow file and that each step's template exists; print each problem
    as file:line: message. Exit code 1 when there is a problem, 2 when it cannot check."""
    from remarket_mailer.rendering.lint import missing_templates
    from remarket_mailer.workflows.loader import check_workflow, load_workflows

    settings = current_settings()
    directory = directory or settings.workflows_dir
    templates_dir = templates or settings.templates_dir
    if not directory.is_dir():
        raise fail(f"{directory} is not a directory")
    if not templates_dir.is_dir():
        raise fail(f"{templates_dir} is not a directory (give the templates with --templates)")
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    problems = 0
    for path in files:
        for problem in check_workflow(path.read_text(encoding="utf-8"), str(path)):
            console.print(str(problem), highlight=False, soft_wrap=True)
            problems += 1
    if not problems:
        # Every file loads: now the steps can be looked up against the templates.
        workflows = load_workflows(directory).workflows.values()
        for missing in missing_templates(templates_dir, workflows):
            console.print(str(missing), highlight=False, soft_wrap=True, markup=False)
            problems += 1
    if problems:
        console.print(f"{problems} problem(s) in {len(files)} file(s)")
        raise typer.Exit(code=1)
    console.print(f"{len(files)} workflow file(s) OK")


@workflows_app.command("schema")
def workflows_schema() -> None:
    """Print the JSON Schema of workflow files (published as docs/workflow.schema.json)."""
    from remarket_mailer.workflows.schema import json_schema_text

    typer.echo(json_schema_text(), nl=False)
