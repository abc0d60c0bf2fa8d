"""Composition root: settings → engine, broker, provider, renderer, services.

Everything else receives what it needs from here; nothing reaches for globals except the
Dramatiq actors, which look up the current ``App`` (set once per process by ``build_app``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from remarket_mailer.config import Settings, require_secret_key
from remarket_mailer.db.engine import make_engine, make_session_factory
from remarket_mailer.db.migrate import schema_problem
from remarket_mailer.delivery.base import Provider
from remarket_mailer.delivery.dkim import DkimSigner
from remarket_mailer.delivery.registry import provider_from_url
from remarket_mailer.delivery.throttle import (
    LocalThrottle,
    RedisThrottle,
    Throttle,
    ThrottleSettings,
)
from remarket_mailer.domain.caps import parse_caps
from remarket_mailer.domain.clock import Clock, SystemClock
from remarket_mailer.errors import ConfigError, UnavailableError, WorkflowError
from remarket_mailer.rendering.renderer import Renderer
from remarket_mailer.services.sending import DeliveryService, Route, SendConfig
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.tracking.links import LinkSigner
from remarket_mailer.workflows.loader import WorkflowSet, load_workflows
from remarket_mailer.workflows.segments import check_references, load_segments

log = logging.getLogger(__name__)

SEND_QUEUE = "remarket.send"


@dataclass
class App:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    uow: UnitOfWork
    workflows: WorkflowSet
    renderer: Renderer
    provider: Provider
    clock: Clock
    links: LinkSigner
    broker: dramatiq.Broker
    delivery: DeliveryService
    extras: dict[str, Any] = field(default_factory=dict)

    def enqueue_send(self, delivery_ids: Any) -> None:
        """Put one ``send_batch`` message on the broker."""
        self.broker.enqueue(
            dramatiq.Message(
                queue_name=SEND_QUEUE,
                actor_name="send_batch",
                args=(list(delivery_ids),),
                kwargs={},
                options={},
            )
        )

    def close(self) -> None:
        for route in self.delivery.routes.values():
            route.provider.close()
        self.engine.dispose()


_current: App | None = None


def current_app() -> App:
    """The App of this process (workers use it); raises RuntimeError before ``build_app``."""
    if _current is None:
        raise RuntimeError("remarket app not built: call bootstrap.build_app first")
    return _current


def make_broker(url: str) -> dramatiq.Broker:
    """A Dramatiq broker for ``stub://``, ``redis://…`` or ``amqp://…``."""
    if url.startswith("stub"):
        return StubBroker()
    if url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url)  # type: ignore[no-untyped-call]
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url)


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The DKIM signer when all of selector, domain and key file are set."""
    parts = (settings.dkim_selector, settings.dkim_domain, settings.dkim_key_file)
    if not any(parts):
        return None
    if not all(parts):
        raise ConfigError(
            "REMARKET_DKIM_SELECTOR: set DKIM_SELECTOR, DKIM_DOMAIN and DKIM_KEY_FILE together"
        )
    assert settings.dkim_selector and settings.dkim_domain and settings.dkim_key_file
    return DkimSigner.from_file(
        settings.dkim_selector, settings.dkim_domain, settings.dkim_key_file
    )


def make_throttle(settings: Settings, provider: Provider) -> Throttle | None:
    """The provider's shared throttle: in Redis when the broker is Redis, else in memory."""
    if settings.provider_rate <= 0:
        return None
    limits = ThrottleSettings(max_rate=settings.provider_rate)
    if settings.broker_url.startswith(("redis://", "rediss://")):
        import redis

        return RedisThrottle(redis.Redis.from_url(settings.broker_url), provider.name, limits)
    return LocalThrottle(provider.name, limits)


def shop_info(settings: Settings) -> dict[str, str]:
    return {
        "name": settings.shop_name,
        "address": settings.shop_address,
        "url": settings.shop_url,
        "placeholder_image": settings.shop_placeholder_image,
        "logo_url": settings.shop_logo_url,
    }


def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    provider: Provider | None = None,
    broker: dramatiq.Broker | None = None,
    engine: Engine | None = None,
    workflows: WorkflowSet | None = None,
) -> App:
    """Wire the whole product from ``settings`` (``workflows``: these instead of the files in
    ``settings.workflows_dir``, as the demo does). Raises ConfigError / WorkflowError early."""
    global _current
    # Before anything else: without a real secret anyone could mint unsubscribe links.
    secret_key = require_secret_key(settings)
    engine = engine or make_engine(settings.database_url)
    session_factory = make_session_factory(engine)
    uow = UnitOfWork(session_factory)
    workflows = workflows if workflows is not None else load_workflows(settings.workflows_dir)
    attach_segments(workflows, settings.segments_dir)
    renderer = Renderer(settings.templates_dir, languages=settings.languages)
    provider = provider or provider_from_url(settings.provider_url, dkim_signer(settings))
    clock = clock or SystemClock()
    links = LinkSigner(secret_key, settings.public_url)
    broker = broker or make_broker(settings.broker_url)
    config = send_config(settings, secret_key)
    routes = provider_routes(settings, workflows)
    delivery = DeliveryService(
        uow,
        workflows,
        renderer,
        provider,
        clock,
        links,
        config,
        make_throttle(settings, provider),
        routes,
    )
    app = App(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        uow=uow,
        workflows=workflows,
        renderer=renderer,
        provider=provider,
        clock=clock,
        links=links,
        broker=broker,
        delivery=delivery,
    )
    dramatiq.set_broker(broker)
    _current = app
    return app


def send_config(settings: Settings, secret_key: str) -> SendConfig:
    """What every send reads from the settings: sender, consent rules, caps, tracking, leases."""
    return SendConfig(
        from_email=settings.from_email,
        reply_to=settings.reply_to,
        secret_key=secret_key,
        unsubscribe_mailto=settings.unsubscribe_mailto,
        feedback_sender_id=settings.feedback_sender_id,
        consent_rule=settings.consent_rule,
        consent_rules=dict(settings.consent_rules),
        shop=shop_info(settings),
        caps=parse_caps(settings.frequency_caps),
        category_caps={k: parse_caps(v) for k, v in settings.category_caps.items()},
        click_tracking=settings.click_tracking,
        open_tracking=settings.open_tracking,
        lease=timedelta(seconds=settings.lease_seconds),
        retry_base=timedelta(seconds=settings.retry_base_seconds),
        retry_max_age=timedelta(hours=settings.retry_max_age_hours),
    )


def provider_routes(settings: Settings, workflows: WorkflowSet) -> dict[str, Route]:
    """The named providers of ``REMARKET_PROVIDERS``, each with its own throttle. Raises
    ConfigError when a workflow names a route that is not configured."""
    routes = {
        name: Route(route_provider, make_throttle(settings, route_provider))
        for name, url in settings.providers.items()
        for route_provider in [provider_from_url(url, dkim_signer(settings))]
    }
    for workflow in workflows.workflows.values():
        if workflow.provider and workflow.provider not in routes:
            raise ConfigError(
                f"REMARKET_PROVIDERS: workflow {workflow.id!r} sends through "
                f"{workflow.provider!r}, which is not configured"
            )
    return routes


def attach_segments(workflows: WorkflowSet, directory: Path) -> WorkflowSet:
    """Give ``workflows`` the segments of ``directory`` (unless it has some already).

    Raises WorkflowError for a bad segment file or a workflow naming a segment that does not
    exist."""
    if not workflows.segments:
        workflows.segments = load_segments(directory)
    problems = check_references(workflows.workflows, workflows.segments)
    if problems:
        raise WorkflowError(f"{len(problems)} problem(s):\n" + "\n".join(problems))
    return workflows


def migrated_engine(settings: Settings) -> Engine:
    """An engine on ``settings.database_url`` for a command run by hand, once its schema is
    checked to be this code's.

    Raises ConfigError when the database is not migrated (or on another revision), saying to
    run ``remarket db upgrade``, and UnavailableError when it does not answer: one line each,
    instead of a query failing on a missing table.
    """
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            problem = schema_problem(connection)
    except (OperationalError, InterfaceError) as exc:
        engine.dispose()
        first = str(exc.orig or exc).strip().splitlines() or [type(exc).__name__]
        raise UnavailableError(f"the database does not answer: {first[0]}") from None
    if problem:
        engine.dispose()
        raise ConfigError(problem)
    return engine


def open_migrated_database(settings: Settings) -> UnitOfWork:
    """``migrated_engine`` as a unit of work (raises the same)."""
    return UnitOfWork(make_session_factory(migrated_engine(settings)))


@contextmanager
def migrated_database(settings: Settings) -> Iterator[UnitOfWork]:
    """``open_migrated_database`` for one command: its connections are closed at the end."""
    engine = migrated_engine(settings)
    try:
        yield UnitOfWork(make_session_factory(engine))
    finally:
        engine.dispose()


def check_database(app: App) -> str | None:
    """None when the database answers and is migrated to this code's schema, else the
    problem in one line (for the log: it may name the host)."""
    try:
        with app.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            return schema_problem(connection)
    except Exception as exc:
        return str(exc).splitlines()[0]


def wait_for_database(app: App, stopping: threading.Event | None = None) -> None:
    """Block until the database answers (a process may start before it), logging once when
    it is unreachable and once when it is back, then check its schema.

    Raises ConfigError when the schema is not this code's (run ``remarket db upgrade``): a
    process on the wrong schema would fail every request. Returns early if ``stopping`` is set.
    """
    pause, down_since = 1.0, None
    while True:
        try:
            with app.engine.connect() as connection:
                problem = schema_problem(connection)
            break
        except (OperationalError, InterfaceError) as exc:
            if down_since is None:
                down_since = time.monotonic()
                log.warning(
                    "database unreachable, retrying with backoff: %s",
                    str(exc.orig or exc).splitlines()[0],
                )
            if stopping is not None and stopping.wait(pause):
                return
            if stopping is None:
                time.sleep(pause)
            pause = min(pause * 2, 30.0)
    if down_since is not None:
        log.info("database reachable after %.0fs", time.monotonic() - down_since)
    if problem:
        raise ConfigError(problem)
