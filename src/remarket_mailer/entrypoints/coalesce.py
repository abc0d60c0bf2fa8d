"""Group commit for single-event posts.

Under load, single ``POST /v1/events`` requests that arrive while an ingest transaction runs
wait for the next one and go into it together: one transaction for the few events that queued
up, instead of one each. A single event costs several milliseconds of fixed work (prefetch
queries, inserts, commit) that a group shares, so capacity grows with load instead of
latency. Idle, a request runs alone at once, as before.

Each caller still gets its own result, and only after the transaction holding its event has
committed: the durability promise of the endpoint is unchanged. If a group fails as a whole
(an error no event was expected to raise), its events are run again one by one, so only the
event that fails gets the error.

Callers are threads (the API runs each request's ingest in a worker thread): whichever caller
finds a free slot runs the oldest waiting group, its own event or not, and the others sleep.
No event loop is involved, so it works the same under any number of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Waiting(Generic[Item, Result]):
    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = False
        self.result: Result | None = None
        self.error: Exception | None = None


class GroupCommit(Generic[Item, Result]):
    """Runs ``run_group(items) -> results`` (same length, same order) for items submitted
    concurrently: at most ``slots`` groups at a time, at most ``max_items`` items each."""

    def __init__(
        self,
        run_group: Callable[[Sequence[Item]], Sequence[Result]],
        slots: int,
        max_items: int = 100,
    ) -> None:
        self.run_group = run_group
        self.slots = slots
        self.max_items = max_items
        self._changed = threading.Condition()
        self._waiting: list[_Waiting[Item, Result]] = []
        self._running = 0

    def submit(self, item: Item) -> Result:
        """The result for ``item`` once its group has run; raises what running it raised."""
        mine: _Waiting[Item, Result] = _Waiting(item)
        with self._changed:
            self._waiting.append(mine)
        while True:
            with self._changed:
                # Sleep while every slot is busy, or while our item is in a running group.
                while not mine.done and (self._running >= self.slots or not self._waiting):
                    self._changed.wait()
                if mine.done:
                    if mine.error is not None:
                        raise mine.error
                    return mine.result  # type: ignore[return-value]
                self._running += 1
                group = self._waiting[: self.max_items]
                del self._waiting[: self.max_items]
            try:
                self._run(group)
            finally:
                with self._changed:
                    self._running -= 1
                    self._changed.notify_all()

    def _run(self, group: list[_Waiting[Item, Result]]) -> None:
        try:
            results = self.run_group([waiting.item for waiting in group])
        except Exception as exc:
            if len(group) > 1:
                for one in group:
                    self._run([one])
                return
            with self._changed:
                group[0].error, group[0].done = exc, True
            return
        with self._changed:
            for waiting, result in zip(group, results, strict=True):
                waiting.result, waiting.done = result, True
