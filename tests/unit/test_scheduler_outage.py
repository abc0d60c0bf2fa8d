"""Scheduler and worker log a database outage once and its end once, not a traceback each."""

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


def test_a_worker_batch_that_finds_the_database_away_is_retried_quietly(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dramatiq logged every failed batch with a traceback; a Retry is not logged, and the
    outage is, once, and its end once."""
    import dramatiq

    from remarket_mailer.entrypoints import actors
    from remarket_mailer.services.sending import SendReport

    down = [True]

    class Delivery:
        def send(self, _ids: list[int]) -> SendReport:
            if down[0]:
                raise UnavailableError("down")
            return SendReport()  # the actor counts it in the metrics

    class App:
        delivery = Delivery()

    monkeypatch.setattr(actors, "current_app", lambda: App())
    with caplog.at_level(logging.INFO, logger="remarket_mailer.entrypoints.actors"):
        for _ in range(5):
            with pytest.raises(dramatiq.Retry):
                actors.send_batch([1, 2])
        down[0] = False
        actors.send_batch([1, 2])
        actors.send_batch([3])
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "unreachable" in messages[0] and "reachable again" in messages[1]
