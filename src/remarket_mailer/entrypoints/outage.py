"""A database outage, logged once when it starts and once when it ends.

The scheduler sweeps every second and a worker takes batch after batch: logging each failure
wrote a traceback a second (538 lines in 30 s, measured with PostgreSQL stopped).
"""

from __future__ import annotations

import logging
import threading
import time


class Outage:
    """Tracks whether the database is away; thread-safe (a worker runs many threads)."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.down_since: float | None = None
        self._lock = threading.Lock()

    def failed(self, exc: Exception) -> None:
        """An operation found the database away: log it if it is the first to."""
        with self._lock:
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
        self.log.warning("database unreachable; %s until it answers: %s", self.what, exc)

    def succeeded(self) -> None:
        """An operation reached the database: log the end of an outage, if there was one."""
        if self.down_since is None:  # the common case, without the lock
            return
        with self._lock:
            since, self.down_since = self.down_since, None
        if since is not None:
            self.log.info("database reachable again after %.0fs", time.monotonic() - since)
