"""FileProvider: writes each message as ``<dir>/<delivery id>.eml``, ready for a mail client."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from remarket_mailer.delivery.base import OutboundMessage, Permanent, Provider, SendResult, Sent
from remarket_mailer.delivery.dkim import DkimSigner
from remarket_mailer.delivery.message import to_bytes


class FileProvider(Provider):
    name = "file"
    max_batch = 1000

    def __init__(self, directory: Path, dkim: DkimSigner | None = None) -> None:
        self.directory = directory
        self.dkim = dkim

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        self.directory.mkdir(parents=True, exist_ok=True)
        results: list[SendResult] = []
        for message in messages:
            path = self.directory / f"{message.delivery_id:08d}.eml"
            try:
                data = to_bytes(message)
            except ValueError as exc:
                results.append(Permanent(str(exc)))
                continue
            if self.dkim is not None:
                data = self.dkim.sign(data)
            # Write then rename: a reader never sees half a message.
            tmp = path.with_suffix(".eml.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            results.append(Sent(path.name))
        return results
