"""send_deliveries: the worker's use case for one batch of delivery ids.

1. one transaction: take the rows (queued → sending, guarded), load every fact the batch needs
   in a few queries, decide send / skip / defer per delivery, allocate discount codes, commit;
2. render (compiled templates, no DB) and build messages;
3. ``provider.plan`` cuts each route's messages into requests; for an idempotent provider
   (Resend) one statement stores every request's key on its rows and commits before any call,
   so a worker that dies mid-request leaves the key behind;
4. ``provider.send_many`` per request, and after each request one transaction that records
   its results (sent / retry later / failed), suppresses hard bounces and completes the
   enrollments with nothing left to send. Recording as we go bounds what a crash re-sends to
   the request in flight (SMTP requests are small for that reason), not the whole batch. A
   recording that loses its database connection is retried on a fresh one
   (``RECORD_RETRY_PAUSES``); only then are the rows left to their lease.

A row that comes back with a ``send_key`` (its worker died, or a timeout is being retried) is
sent again in the same request: same key, same group (the sweeper keeps the group in one
batch, the plan keeps it in one request), so the provider replays the first answer instead of
sending twice. If the group has changed since (a contact unsubscribed and was skipped), the
provider refuses the key with another body (``KeyConflict``): the first request went out with
these rows in it, so they are recorded sent, provider id unknown, and counted. A row deferred
meanwhile leaves its key's group (its key is cleared): the group may go out without it, and a
later request under that key would be answered as already sent when it was not. Rows that
end (sent, failed, skipped) drop their key too: only rows in flight hold one.

The package, one module per step: ``prepare`` (step 1: facts, decisions, discount codes via
``codes``), ``message`` (step 2), ``transport`` (requests, throttle, provider pauses),
``record`` (step 4), ``service`` (``DeliveryService``, the batch from end to end, leases and
time limits), ``config`` / ``report`` / ``limits`` (settings, the batch's counts, budgets).
"""

from __future__ import annotations

from remarket_mailer.services.sending.config import DEFAULT_ROUTE, Route, SendConfig, pause_key
from remarket_mailer.services.sending.limits import (
    MAX_THROTTLE_SLEEP,
    PREPARE_SECONDS,
    RECORD_RETRY_PAUSES,
    RECORD_SECONDS,
)
from remarket_mailer.services.sending.report import SendReport
from remarket_mailer.services.sending.service import DeliveryService

__all__ = [
    "DEFAULT_ROUTE",
    "MAX_THROTTLE_SLEEP",
    "PREPARE_SECONDS",
    "RECORD_RETRY_PAUSES",
    "RECORD_SECONDS",
    "DeliveryService",
    "Route",
    "SendConfig",
    "SendReport",
    "pause_key",
]
