"""The scheduler logs a database outage once and its end once, not a traceback per sweep."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from remarket_mailer.entrypoints.scheduler import _Outage
from remarket_mailer.errors import UnavailableError


def test_an_outage_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    answers = iter([UnavailableError("down")] * 20 + [None] * 5)
    ran: list[int] = []

    def job(_app: Any) -> None:
        answer = next(answers)
        if answer is not None:
            raise answer
        ran.append(1)

    outage = _Outage()
    with caplog.at_level(logging.INFO, logger="remarket_mailer.entrypoints.scheduler"):
        for _ in range(25):
            outage.run(job, None)  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "unreachable" in messages[0] and "reachable again" in messages[1]
    assert len(ran) == 5
