"""Prometheus metrics: what happened, in numbers, per process (scrape api, worker, scheduler).

The API serves them at /metrics; worker and scheduler start a small HTTP server on
REMARKET_METRICS_PORT when it is set.
"""

from __future__ import annotations

from prometheus_client import Counter, start_http_server

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
EXPRESSION_ERRORS = Counter(
    "remarket_expression_errors_total",
    "Workflow filters and conditions that failed at run time (a division by zero, a type "
    "error): the trigger did not match, the step's delivery failed",
    ["workflow", "where"],
)
TRACKING = Counter("remarket_tracking_events_total", "ESP and own tracking events", ["kind"])


def serve(port: int | None) -> None:
    """Expose this process's metrics on ``port`` (no-op when None)."""
    if port:
        start_http_server(port)
