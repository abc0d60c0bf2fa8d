"""SMTP connections as real servers treat them: a kept connection the server closed while it
was idle is noticed and re-opened before it carries a message, and a connection lost in the
middle of a request is re-opened once so the rest of the request still goes out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from remarket_mailer.delivery.base import OutboundMessage, Sent, Transient
from remarket_mailer.delivery.providers import smtp
from remarket_mailer.delivery.providers.smtp import SmtpProvider, SmtpSettings
from tests.conftest import free_port


class Closing:
    """Accepts messages; can close every open connection (as an MTA's idle timeout does) or
    drop the connection instead of answering the DATA of message number ``drop_at``."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.servers: list[Any] = []
        self.drop_at: int | None = None
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.servers.append(server)
            number = len(self.accepted) + 1
            if number == self.drop_at:
                self.drop_at = None
                server.transport.close()
                return "421 closing"
            self.accepted.append(envelope.rcpt_tos[0])
        return "250 OK"

    def close_all(self) -> None:
        with self.lock:
            for server in self.servers:
                if server.transport is not None:
                    server.loop.call_soon_threadsafe(server.transport.close)


@pytest.fixture
def server() -> Iterator[tuple[Closing, int]]:
    handler = Closing()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def message(n: int) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=n,
        message_id=f"{n}@test",
        from_addr="Shop <news@shop.example>",
        to_addr=f"p{n}@shop.example",
        subject="Hello",
        html="<p>Hi</p>",
        text="Hi",
    )


def test_a_connection_closed_while_idle_is_reopened_before_it_is_used(
    server: tuple[Closing, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, port = server
    provider = SmtpProvider(SmtpSettings("127.0.0.1", port, timeout=5))
    assert provider.send_many([message(1)]) == [Sent("1@test")]
    handler.close_all()  # the server's idle timeout
    import time

    time.sleep(0.2)
    monkeypatch.setattr(smtp, "IDLE_CHECK_SECONDS", 0.0)
    assert provider.send_many([message(2)]) == [Sent("2@test")]
    assert handler.accepted == ["p1@shop.example", "p2@shop.example"]
    provider.close()


def test_a_connection_lost_mid_request_is_reopened_and_the_request_goes_on(
    server: tuple[Closing, int],
) -> None:
    handler, port = server
    handler.drop_at = 3
    provider = SmtpProvider(SmtpSettings("127.0.0.1", port, timeout=5))
    results = provider.send_many([message(n) for n in range(1, 7)])
    assert [type(r) for r in results] == [Sent, Sent, Transient, Sent, Sent, Sent]
    lost = results[2]
    assert isinstance(lost, Transient) and lost.tried  # it was on the wire
    assert handler.accepted == [f"p{n}@shop.example" for n in (1, 2, 4, 5, 6)]
    provider.close()
