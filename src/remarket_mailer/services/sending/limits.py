"""Time budgets of the send path: what a batch's lease and time limit are reckoned from."""

from __future__ import annotations

MAX_THROTTLE_SLEEP = 5.0
"""Longer waits put the batch back (transient, retry_after) rather than block a worker."""

PREPARE_SECONDS = 10.0
"""Budget for taking a batch, loading its facts and rendering it (well under a second when
healthy; PostgreSQL under load or a cold template cache take longer)."""

RECORD_SECONDS = 5.0
"""Budget for one recording transaction, besides its retry pauses."""

RECORD_RETRY_PAUSES = (0.2, 1.0, 3.0)
"""Seconds between attempts to record results the provider already gave. The results are
known: losing them to a dropped connection would send those emails again once the lease ends."""
