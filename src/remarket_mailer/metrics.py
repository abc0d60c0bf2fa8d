"""Prometheus metrics: what happened, in numbers, per process (scrape api, worker, scheduler).

Never on the public API port: api, worker and scheduler each start a small HTTP server on
REMARKET_METRICS_PORT (bound to REMARKET_METRICS_HOST, 127.0.0.1 by default) when it is set.
An API with several worker processes serves their sum from its supervisor process.
"""

from __future__ import annotations

import os
import tempfile

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from remarket_mailer.errors import ConfigError

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


HEADER_TIMEOUTS = Counter(
    "remarket_http_header_timeouts_total",
    "API connections closed because a request's headers did not arrive in time",
)


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
    directory = tempfile.TemporaryDirectory(prefix="remarket-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory.name
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory.name)  # type: ignore[no-untyped-call]
    _listen(port, host, registry)
    return directory


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
