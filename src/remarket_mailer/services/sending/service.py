"""``DeliveryService.send``: one batch of delivery ids from taken to recorded (see the package
docstring for the steps and what a crash leaves behind)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from remarket_mailer.db import deliveries as deliveries_db
from remarket_mailer.delivery.base import OutboundMessage, Permanent, Provider, SendResult
from remarket_mailer.delivery.throttle import Throttle
from remarket_mailer.domain import transitions
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.states import DeliveryStatus
from remarket_mailer.errors import ConfigError
from remarket_mailer.rendering.renderer import Renderer
from remarket_mailer.services.provider_pauses import ProviderPauses
from remarket_mailer.services.sending import limits
from remarket_mailer.services.sending.config import DEFAULT_ROUTE, Route, SendConfig, pause_key
from remarket_mailer.services.sending.message import MessageBuilder
from remarket_mailer.services.sending.prepare import Preparer, Ready
from remarket_mailer.services.sending.record import Recorder
from remarket_mailer.services.sending.report import SendReport, reported
from remarket_mailer.services.sending.transport import Transport
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.tracking.links import LinkSigner, TrackingLinks

Request = tuple[Route, list[OutboundMessage]]


class DeliveryService:
    def __init__(
        self,
        uow: UnitOfWork,
        workflows: Any,
        renderer: Renderer,
        provider: Provider,
        clock: Clock,
        links: LinkSigner,
        config: SendConfig,
        throttle: Throttle | None = None,
        routes: dict[str, Route] | None = None,
    ) -> None:
        self.uow = uow
        self.workflows = workflows
        self.renderer = renderer
        self.clock = clock
        self.links = links
        self.config = config
        self.routes = {DEFAULT_ROUTE: Route(provider, throttle), **(routes or {})}
        self.tracking = TrackingLinks(config.secret_key, links.public_url)
        self.pauses = ProviderPauses(uow, clock, config.lease)
        self.pause_keys = {
            route: pause_key(name, route.provider) for name, route in self.routes.items()
        }
        self.preparer = Preparer(workflows, clock, links, config, uow)
        self.messages = MessageBuilder(renderer, clock, config, self.tracking)
        self.transport = Transport(self.pauses, self.pause_keys, clock)
        self.recorder = Recorder(uow, clock, config)

    def pause_keys_by_workflow(self) -> dict[str, str]:
        """Workflow id → the pause name of the provider it sends through (for the sweeper)."""
        return {
            workflow.id: pause_key(
                workflow.provider or DEFAULT_ROUTE,
                self.routes.get(
                    workflow.provider or DEFAULT_ROUTE, self.routes[DEFAULT_ROUTE]
                ).provider,
            )
            for workflow in self.workflows.workflows.values()
        }

    def send(self, delivery_ids: Sequence[int]) -> SendReport:
        """Send one batch; every id ends sent, skipped, deferred, retried later or failed."""
        report = SendReport()
        taken_at = self.clock.now()  # no later than the lease's start: a safe reckoning
        with self.uow() as session:
            ready = self.preparer.prepare(session, delivery_ids, report)
        if not ready:  # all skipped or deferred: still counted and logged
            return reported(report)
        messages, failures = self.messages.render(ready)
        results: dict[int, SendResult] = dict(failures)
        by_id = {r.delivery.id: r for r in ready}
        requests = self._plan(by_id, messages, results)
        self._send_requests(by_id, requests, results, taken_at, report)
        return reported(report)

    def _plan(
        self,
        by_id: dict[int, Ready],
        messages: list[OutboundMessage],
        results: dict[int, SendResult],
    ) -> list[Request]:
        """Cut each route's messages into the provider's requests; store the idempotency keys
        an idempotent provider gives them, committed before any request is made."""
        groups: dict[str, list[OutboundMessage]] = {}
        for message in messages:
            route_name = by_id[message.delivery_id].workflow.provider or DEFAULT_ROUTE
            groups.setdefault(route_name, []).append(message)
        requests: list[Request] = []
        keys: dict[int, str] = {}
        for name, group in groups.items():
            route = self.routes.get(name)
            if route is None:
                for message in group:
                    results[message.delivery_id] = Permanent(f"no provider named {name!r}")
                continue
            for chunk in route.provider.plan(group):
                requests.append((route, chunk))
                if route.provider.idempotent:
                    keys.update((m.delivery_id, m.send_key) for m in chunk if m.send_key)
        new_keys = {i: key for i, key in keys.items() if by_id[i].delivery.send_key != key}
        if new_keys:
            with self.uow() as session:
                deliveries_db.set_send_keys(session, new_keys)
        return requests

    def _send_requests(
        self,
        by_id: dict[int, Ready],
        requests: list[Request],
        results: dict[int, SendResult],
        taken_at: datetime,
        report: SendReport,
    ) -> None:
        """Make each request and record its results at once. Results not tied to a request
        (render failures, unknown routes) go with the first."""
        pending = results
        every_enrollment = {r.delivery.enrollment_id for r in by_id.values()}
        lease_until = taken_at + self.config.lease
        for index, (route, chunk) in enumerate(requests):
            if self.clock.now() + timedelta(seconds=self._request_budget(route)) > lease_until:
                # A slow batch: keep the rows still to go ours for another lease.
                lease_until = self._renew_lease(
                    [m.delivery_id for _, later in requests[index:] for m in later]
                )
            outcome, asked = self.transport.send_unless_paused(route, chunk)
            used = {m.delivery_id: route.provider.name for m in chunk} if asked else {}
            for message, result in zip(chunk, outcome, strict=True):
                pending[message.delivery_id] = result
            if index == len(requests) - 1:
                finishing = every_enrollment
            else:
                # Only a last step can end its enrollment; the batch's last recording checks
                # the rest. Checking every enrollment per request cost 7 ms a request.
                finishing = {
                    by_id[i].delivery.enrollment_id
                    for i in pending
                    if by_id[i].step.id == by_id[i].workflow.steps[-1].id
                }
            self.recorder.record_or_leave(by_id, pending, used, finishing, report)
            pending = {}
        if pending:
            self.recorder.record_or_leave(by_id, pending, {}, every_enrollment, report)

    # -- leases and time limits ----------------------------------------------------------------

    def _request_budget(self, route: Route) -> float:
        """Seconds one request on ``route`` and the recording of its results may take."""
        return (
            route.provider.request_seconds()
            + limits.RECORD_SECONDS
            + sum(limits.RECORD_RETRY_PAUSES)
        )

    def lease_needed(self) -> float:
        """The shortest lease under which a batch can take its rows and finish its slowest
        request before it renews the lease: the lease must be at least this long."""
        return limits.PREPARE_SECONDS + max(self._request_budget(r) for r in self.routes.values())

    def check_lease(self) -> None:
        """ConfigError (one line, naming the setting) when the lease is too short to send."""
        needed = self.lease_needed()
        if self.config.lease.total_seconds() < needed:
            raise ConfigError(
                f"REMARKET_LEASE_SECONDS={self.config.lease.total_seconds():.0f} is too short: "
                f"one request to the slowest provider may take {needed:.0f} s with its "
                f"timeouts; set it to at least {needed:.0f}"
            )

    def time_limit_seconds(self, batch_size: int) -> float:
        """The longest a batch of ``batch_size`` may run: every request on the slowest route
        taking its whole budget. The worker's time limit is this, so it never cuts a batch
        that is still making progress."""
        slowest = max(
            -(-batch_size // r.provider.max_batch) * self._request_budget(r)
            for r in self.routes.values()
        )
        return limits.PREPARE_SECONDS + slowest

    def _renew_lease(self, delivery_ids: list[int]) -> datetime:
        until = self.clock.now() + self.config.lease
        changes = [transitions.renew_lease(i, until).change() for i in delivery_ids]
        with self.uow() as session:
            deliveries_db.finish_deliveries(
                session, DeliveryStatus.SENDING, changes, self.clock.now()
            )
        return until
