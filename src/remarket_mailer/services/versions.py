"""Find the exact workflow version an enrollment started with."""

from __future__ import annotations

import logging

from remarket_mailer.db import enrollments as enrollments_db
from remarket_mailer.db.session import Session
from remarket_mailer.domain.workflow import Workflow
from remarket_mailer.errors import WorkflowError
from remarket_mailer.workflows.loader import WorkflowSet

log = logging.getLogger(__name__)


def resolve_workflow(
    session: Session, workflows: WorkflowSet, workflow_id: str, version: str
) -> Workflow | None:
    """The workflow at ``version``: in memory if loaded, else parsed from the stored source.

    The ``enabled`` flag always comes from the current file, so disabling a workflow stops the
    pending deliveries of every version.
    """
    found = workflows.version(workflow_id, version)
    if found is None:
        source = enrollments_db.workflow_source(session, workflow_id, version)
        if source is None:
            return None
        try:
            found = workflows.remember(workflow_id, version, source)
        except WorkflowError as exc:
            log.error("workflow=%s version=%s no longer parses: %s", workflow_id, version, exc)
            return None
    current = workflows.workflows.get(workflow_id)
    if current is None or not current.enabled:
        from dataclasses import replace

        return replace(found, enabled=False)
    return found
