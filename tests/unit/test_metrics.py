"""The metrics' own rules: which port each process serves on, what a batch's report counts."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from remarket_mailer import metrics
from remarket_mailer.errors import ConfigError
from remarket_mailer.services.sending import SendReport


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_worker_and_scheduler_serve_by_default_the_api_only_when_told() -> None:
    assert metrics.port_for("worker", None) == 9102
    assert metrics.port_for("scheduler", None) == 9103
    assert metrics.port_for("api", None) is None
    assert metrics.port_for("worker", 9200) == 9200
    assert metrics.port_for("scheduler", 0) is None  # 0: no metrics server


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_default_port_in_use_is_a_warning(
    taken_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A second worker on one host without REMARKET_METRICS_PORT still sends email."""
    monkeypatch.setitem(metrics.DEFAULT_PORTS, "worker", taken_port)
    with caplog.at_level(logging.WARNING, logger="remarket_mailer.metrics"):
        metrics.serve_role("worker", None)
    assert any(
        f"cannot listen on 127.0.0.1:{taken_port}" in r.getMessage()
        and "running without metrics" in r.getMessage()
        for r in caplog.records
    )


def test_a_port_set_explicitly_in_use_is_a_config_error(taken_port: int) -> None:
    with pytest.raises(
        ConfigError, match=f"REMARKET_METRICS_PORT: cannot listen on 127.0.0.1:{taken_port}"
    ):
        metrics.serve_role("scheduler", taken_port)


def test_a_batch_report_counts_every_outcome_by_reason() -> None:
    first, second = SendReport(), SendReport()
    first.sent = 1
    first.sent_lag_seconds.append(42.0)
    first.since_planned_seconds.append(3600.0)  # deferred an hour by quiet hours, then 42 s
    first.skipped += 1
    first.count("no_consent", "skipped")
    second.sent = 2
    second.sent_lag_seconds += [1.0, -0.5]  # a clock a little behind: counted as 0
    second.since_planned_seconds += [1.0, -0.5]
    second.failed += 1
    second.count("permanent", "failed")
    second.retried += 1
    second.count("transient", "retried")
    second.deferred += 1
    second.count("deferred")
    second.deferred_why["quiet_hours"] = 1
    first.add(second)
    assert first.reasons == {"no_consent": 1, "permanent": 1, "transient": 1, "deferred": 1}
    names = [
        ("remarket_sent_total", {}),
        ("remarket_due_to_sent_seconds_count", {}),
        ("remarket_due_to_sent_seconds_sum", {}),
        ("remarket_due_to_sent_seconds_bucket", {"le": "5.0"}),
        ("remarket_planned_to_sent_seconds_count", {}),
        ("remarket_planned_to_sent_seconds_sum", {}),
        ("remarket_planned_to_sent_seconds_bucket", {"le": "60.0"}),
        ("remarket_skipped_total", {"reason": "no_consent"}),
        ("remarket_failed_total", {"reason": "permanent"}),
        ("remarket_retried_total", {"reason": "transient"}),
        ("remarket_deferred_total", {"reason": "quiet_hours"}),
    ]
    before = [sample(name, **labels) for name, labels in names]
    metrics.observe_batch(first)
    after = [sample(name, **labels) for name, labels in names]
    assert [a - b for a, b in zip(after, before, strict=True)] == [
        3,
        3,
        43.0,
        2,
        3,
        3601.0,
        2,
        1,
        1,
        1,
        1,
    ]


def test_the_backlog_gauge_sets_every_status() -> None:
    metrics.set_backlog({"scheduled": 7, "queued": 2, "sending": 1})
    metrics.set_backlog({"queued": 3})
    assert sample("remarket_backlog_deliveries", status="scheduled") == 0
    assert sample("remarket_backlog_deliveries", status="queued") == 3
    assert sample("remarket_backlog_deliveries", status="sending") == 0
