"""MemoryProvider: keeps messages in a list. For tests, the simulator and your own test suite."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from remarket_mailer.delivery.base import OutboundMessage, Provider, SendResult, Sent


class MemoryProvider(Provider):
    name = "memory"
    max_batch = 1000

    def __init__(self) -> None:
        self.outbox: list[OutboundMessage] = []
        self._lock = threading.Lock()

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        with self._lock:
            self.outbox.extend(messages)
        return [Sent(f"memory-{m.delivery_id}") for m in messages]
