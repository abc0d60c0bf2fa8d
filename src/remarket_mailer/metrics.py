"""Prometheus metrics: what happened, in numbers, per process (scrape api, worker, scheduler).

Never on the public API port: each process starts a small HTTP server on its own port, bound
to REMARKET_METRICS_HOST (127.0.0.1 by default). The worker serves on 9102 and the scheduler
on 9103 unless REMARKET_METRICS_PORT says otherwise (0: none); the API only when it is set.
A worker or an API with several processes serves their sum from its supervisor process
(prometheus_client's multiprocess mode). docs/operations.md lists every metric.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from remarket_mailer.errors import ConfigError

log = logging.getLogger(__name__)

Role = Literal["api", "worker", "scheduler"]
DEFAULT_PORTS: dict[Role, int | None] = {"api": None, "worker": 9102, "scheduler": 9103}
"""Where each process serves its metrics when REMARKET_METRICS_PORT is not set: the host
ports docker-compose publishes them on. The API serves none unless told (its port is public)."""

EVENTS = Counter("remarket_events_total", "Events ingested", ["type", "outcome"])
DELIVERIES = Counter(
    "remarket_deliveries_total", "Deliveries decided by the worker", ["workflow", "outcome"]
)
SKIPS = Counter("remarket_skips_total", "Deliveries skipped or deferred, by reason", ["reason"])
RESENT_UNKNOWN = Counter(
    "remarket_resent_unknown_total",
    "Deliveries found 'sending' after their worker died, sent again (may be duplicates)",
)
RESENT_BY_KEY = Counter(
    "remarket_resent_by_key_total",
    "Deliveries found 'sending' after their worker died, sent again under their idempotency "
    "key (the provider replays, no duplicate)",
)
ALREADY_SENT = Counter(
    "remarket_already_sent_total",
    "Deliveries the provider had already sent under their stored idempotency key (the group "
    "changed since): marked sent, provider id unknown",
    ["provider"],
)
RECORD_FAILURES = Counter(
    "remarket_record_failures_total",
    "Provider results that could not be recorded (database unreachable after retries): those "
    "deliveries are sent again when their lease ends",
)
EXPRESSION_ERRORS = Counter(
    "remarket_expression_errors_total",
    "Workflow filters and conditions that failed at run time (a division by zero, a type "
    "error): the trigger did not match, the step's delivery failed",
    ["workflow", "where"],
)
TRACKING = Counter("remarket_tracking_events_total", "ESP and own tracking events", ["kind"])
PROVIDER_PAUSED = Gauge(
    "remarket_provider_paused",
    "1 while the provider is paused after an account or configuration fault (its messages are "
    "kept and wait), 0 once a probe got through",
    ["provider"],
    # Across worker processes the newest value wins: the one that saw the latest state.
    multiprocess_mode="mostrecent",
)
PROVIDER_FAULTS = Counter(
    "remarket_provider_faults_total",
    "Requests the provider refused for an account or configuration reason (a refused key, an "
    "unverified sender domain, a suspended account)",
    ["provider", "reason"],
)


SENT = Counter("remarket_sent_total", "Emails the provider accepted (recorded sent)")
FAILED = Counter(
    "remarket_failed_total",
    "Deliveries failed for good, by reason (permanent, retry_exhausted, condition_error…)",
    ["reason"],
)
DEFERRED = Counter(
    "remarket_deferred_total",
    "Deliveries put off to a later due time by a rule, by reason (quiet_hours, a frequency "
    "cap…): kept, never dropped",
    ["reason"],
)
SKIPPED = Counter(
    "remarket_skipped_total",
    "Deliveries not sent on purpose, by reason (no_consent, suppressed, exited, holdout…)",
    ["reason"],
)
RETRIED = Counter(
    "remarket_retried_total",
    "Deliveries the provider did not take this time, due again later, by reason (transient, "
    "provider_paused)",
    ["reason"],
)
_LAG_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 86400, 3 * 86400)
DUE_TO_SENT = Histogram(
    "remarket_due_to_sent_seconds",
    "Seconds from when a delivery last became due to being recorded sent: the queue's own lag "
    "(a deferral for quiet hours or a cap, or a retry's wait, moves the due time and is not "
    "counted)",
    buckets=_LAG_BUCKETS,
)
PLANNED_TO_SENT = Histogram(
    "remarket_planned_to_sent_seconds",
    "Seconds from the time the workflow planned a delivery to being recorded sent: the queue's "
    "lag plus every deferral and retry (what the recipient sees)",
    buckets=_LAG_BUCKETS,
)
PROVIDER_SECONDS = Histogram(
    "remarket_provider_request_seconds",
    "Seconds per provider request (one send_many call: an SMTP batch, an ESP call), by provider",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BACKLOG = Gauge(
    "remarket_backlog_deliveries",
    "Deliveries due and not sent yet, by status: scheduled (due, not claimed yet: more than a "
    "sweep takes, or a paused provider), queued (claimed, in the broker), sending (a worker "
    "has them). Counted by the scheduler after each sweep",
    ["status"],
    # One scheduler sets it; should a second run for a while, the latest sweep is the truth.
    multiprocess_mode="mostrecent",
)


HEADER_TIMEOUTS = Counter(
    "remarket_http_header_timeouts_total",
    "API connections closed because a request's headers did not arrive in time",
)


class BatchOutcomes(Protocol):
    """What ``observe_batch`` reads of a batch's ``SendReport`` (services/sending): this
    module imports nothing above it."""

    sent: int
    sent_lag_seconds: list[float]
    since_planned_seconds: list[float]
    by_outcome: dict[tuple[str, str], int]
    deferred_why: dict[str, int]


def observe_batch(report: BatchOutcomes) -> None:
    """Count one finished ``send_batch``: sent, failed, deferred, skipped and retried by
    reason, and the due-to-sent and planned-to-sent lag of every email it sent (the actor
    calls this once per batch, with the report that has every outcome)."""
    if report.sent:
        SENT.inc(report.sent)
    for lag in report.sent_lag_seconds:
        DUE_TO_SENT.observe(max(lag, 0.0))
    for lag in report.since_planned_seconds:
        PLANNED_TO_SENT.observe(max(lag, 0.0))
    by_kind = {"failed": FAILED, "skipped": SKIPPED, "retried": RETRIED}
    for (kind, reason), count in report.by_outcome.items():
        by_kind[kind].labels(reason).inc(count)
    for why, count in report.deferred_why.items():
        DEFERRED.labels(why or "unknown").inc(count)


def set_backlog(counts: dict[str, int]) -> None:
    """The backlog gauge, one value per status (a status with none is set to 0)."""
    for status in ("scheduled", "queued", "sending"):
        BACKLOG.labels(status).set(counts.get(status, 0))


def port_for(role: Role, setting: int | None) -> int | None:
    """The metrics port of ``role``: REMARKET_METRICS_PORT if set (0: none), else its default."""
    if setting is None:
        return DEFAULT_PORTS[role]
    return setting or None


def serve_role(role: Role, setting: int | None, host: str = "127.0.0.1") -> None:
    """Serve this process's metrics on its port (``port_for``). A port set explicitly that
    cannot be bound raises ConfigError; a default port in use (a second worker on this
    host) is one warning, and the process runs without metrics."""
    port = port_for(role, setting)
    if not port:
        return
    try:
        _listen(port, host, _registry())
    except ConfigError as exc:
        if setting is not None:
            raise
        log.warning("%s; running without metrics (set REMARKET_METRICS_PORT)", exc)


def serve(port: int | None, host: str = "127.0.0.1") -> None:
    """Expose this process's metrics on ``host:port`` (no-op when ``port`` is None).

    Raises ConfigError when the port cannot be bound."""
    if port:
        _listen(port, host, None)


def serve_for_workers(port: int, host: str = "127.0.0.1") -> tempfile.TemporaryDirectory[str]:
    """Expose the sum of the metrics of worker processes started after this call.

    Sets PROMETHEUS_MULTIPROC_DIR, which spawned workers inherit: prometheus_client then
    keeps their values in files there, and this process serves them added up. Keep the
    returned directory for as long as the workers run. Raises ConfigError like ``serve``."""
    directory = multiprocess_directory()
    _listen(port, host, _registry())
    return directory


def multiprocess_directory() -> tempfile.TemporaryDirectory[str]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for the processes this one starts next (they inherit
    it, and prometheus_client then writes their values to per-process files there). Keep the
    returned directory while they run; its cleanup removes the files."""
    directory = tempfile.TemporaryDirectory(prefix="remarket-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory.name
    return directory


def process_dead(pid: int) -> None:
    """Forget a finished child's live gauges (its counters stay in the sum, as they should)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def _registry() -> CollectorRegistry | None:
    """With PROMETHEUS_MULTIPROC_DIR set, a registry that adds up every process's files (this
    process's own metrics are in them too); else None: the default registry."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return None
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def _listen(port: int, host: str, registry: CollectorRegistry | None) -> None:
    try:
        if registry is None:
            start_http_server(port, addr=host)
        else:
            start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"REMARKET_METRICS_PORT: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
