"""Shared fixtures. Services: PostgreSQL, Redis and an in-process SMTP server (aiosmtpd).

Locally a missing service skips its tests with the reason; under ``CI=true`` it fails them.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from remarket_mailer.bootstrap import App, build_app
from remarket_mailer.config import Settings, load_settings
from remarket_mailer.db.engine import make_engine
from remarket_mailer.db.migrate import upgrade
from remarket_mailer.db.models import Base
from remarket_mailer.delivery.base import Provider
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get(
    "REMARKET_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("REMARKET_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Amsterdam


def service_missing(reason: str) -> None:
    """Skip locally, fail in CI: CI must never silently skip the integration tests."""
    if IN_CI:
        pytest.fail(f"CI=true and a required service is missing: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    # aiosmtpd 1.4.6 Controller(port=0) does not work (its start-up check connects to the port
    # it was given, 0): pick a free port first.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": "sqlite://",
        "broker_url": "stub://",
        "provider_url": "memory://",
        "workflows_dir": ROOT / "workflows",
        "segments_dir": ROOT / "segments",
        "templates_dir": ROOT / "templates",
        "secret_key": "test-secret-key-0123456789-0123456789",
        "public_url": "https://mail.shop.example",
        "api_keys": ["test-key"],
        "from_email": "Shop <news@shop.example>",
        # Throttling has its own tests; elsewhere a shared Redis bucket would couple tests.
        "provider_rate": 0,
    }
    values.update(overrides)
    return load_settings(**values)


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database for this test session, migrated with Alembic, dropped at the end."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        service_missing(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc)[:120]}")
    name = f"remarket_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def truncate_all(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        if url.startswith("postgresql"):
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


# --- Redis ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        service_missing(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


def delete_keys(url: str, prefix: str) -> int:
    """Delete every key of ``url``'s database that starts with ``prefix``; how many."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def close_redis_broker(broker: RedisBroker, url: str) -> None:
    """Drop the broker's messages and every key of its namespace. ``flush_all`` alone leaves
    Dramatiq's ``NAMESPACE:__heartbeats__`` set (and acks of a worker that died), one more
    key per test in the developer's Redis."""
    broker.flush_all()
    broker.close()
    delete_keys(url, f"{broker.namespace}:")


@pytest.fixture
def redis_broker(redis_url: str) -> Iterator[RedisBroker]:
    """A Dramatiq Redis broker on a namespace of its own, removed with all its keys after
    the test (stop the test's workers first: fixtures that use this one end before it)."""
    broker = RedisBroker(url=redis_url, namespace=f"remarket-test-{uuid.uuid4().hex[:8]}")
    try:
        yield broker
    finally:
        close_redis_broker(broker, redis_url)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own in the test Redis; its keys are deleted afterwards."""
    prefix = f"remarket-test:{uuid.uuid4().hex[:8]}:"
    try:
        yield prefix
    finally:
        delete_keys(redis_url, prefix)


# --- SMTP -----------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[Received] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    """Scripted replies for the next DATA commands (e.g. '451 4.3.0 try later', or '' to
    accept that one); once the script runs out every message is accepted."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.sink.lock:
            reply = self.sink.replies.pop(0) if self.sink.replies else ""
            if reply:
                return reply
            self.sink.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 2.0.0 OK"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(_Handler(sink), hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


# --- apps -----------------------------------------------------------------------------------


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each engine test runs on SQLite and on PostgreSQL: the same code on both."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'remarket.db'}"
        upgrade(url)
        return url
    url = str(request.getfixturevalue("postgres_url"))
    truncate_all(url)
    return url


AppFactory = Callable[..., App]


@pytest.fixture
def cart_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workflows directory with only the stock abandoned-cart workflow, for tests about the
    engine's mechanics that should not see the other stock flows' emails."""
    directory = tmp_path_factory.mktemp("cart_only")
    source = ROOT / "workflows" / "abandoned_cart.yaml"
    (directory / source.name).write_text(source.read_text())
    return directory


@pytest.fixture
def make_app(database_url: str, clock: VirtualClock) -> Iterator[AppFactory]:
    apps: list[App] = []

    def factory(provider: Provider | None = None, **overrides: Any) -> App:
        settings = make_settings(database_url=database_url, **overrides)
        if provider is None and "provider_url" not in overrides:
            provider = MemoryProvider()
        app = build_app(settings, clock=clock, provider=provider, broker=StubBroker())
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()
