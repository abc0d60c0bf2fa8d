"""Group commit of single-event posts: who runs with whom, and who gets which result."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from remarket_mailer.entrypoints.coalesce import GroupCommit


class Recorder:
    """run_group that blocks its first call until released, recording every group."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.groups: list[list[str]] = []
        self.release = threading.Event()
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[str]) -> list[str]:
        with self.lock:
            self.groups.append(list(items))
            first = len(self.groups) == 1
        if first:
            assert self.release.wait(5)
        if self.fail_on in items:
            raise RuntimeError(f"cannot take {self.fail_on}")
        return [f"done:{item}" for item in items]


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


class Caller(threading.Thread):
    def __init__(self, group: GroupCommit[str, str], item: str) -> None:
        super().__init__()
        self.group, self.item = group, item
        self.result: str | None = None
        self.error: Exception | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.group.submit(self.item)
        except Exception as exc:
            self.error = exc

    def answer(self) -> str | None:
        self.join(5)
        assert not self.is_alive(), f"{self.item} never answered"
        if self.error is not None:
            raise self.error
        return self.result


def test_callers_that_queue_behind_a_running_group_share_the_next() -> None:
    run = Recorder()
    group: GroupCommit[str, str] = GroupCommit(run, slots=1)
    first = Caller(group, "a")
    wait_for(lambda: len(run.groups) == 1)
    queued = [Caller(group, x) for x in ("b", "c", "d")]
    wait_for(lambda: len(group._waiting) == 3)
    run.release.set()
    assert first.answer() == "done:a"
    assert [c.answer() for c in queued] == ["done:b", "done:c", "done:d"]
    assert run.groups[0] == ["a"]
    assert sorted(run.groups[1]) == ["b", "c", "d"]
    assert len(run.groups) == 2


def test_groups_are_capped_and_every_item_runs_once() -> None:
    run = Recorder()
    group: GroupCommit[str, str] = GroupCommit(run, slots=1, max_items=2)
    first = Caller(group, "a")
    wait_for(lambda: len(run.groups) == 1)
    queued = [Caller(group, str(n)) for n in range(5)]
    wait_for(lambda: len(group._waiting) == 5)
    run.release.set()
    assert first.answer() == "done:a"
    assert [c.answer() for c in queued] == [f"done:{n}" for n in range(5)]
    assert [len(g) for g in run.groups] == [1, 2, 2, 1]
    assert sorted(item for g in run.groups[1:] for item in g) == [str(n) for n in range(5)]


def test_a_failing_group_is_retried_one_by_one_so_only_the_culprit_fails() -> None:
    run = Recorder(fail_on="bad")
    group: GroupCommit[str, str] = GroupCommit(run, slots=1)
    first = Caller(group, "a")
    wait_for(lambda: len(run.groups) == 1)
    queued = {x: Caller(group, x) for x in ("b", "bad", "c")}
    wait_for(lambda: len(group._waiting) == 3)
    run.release.set()
    assert first.answer() == "done:a"
    assert queued["b"].answer() == "done:b"
    assert queued["c"].answer() == "done:c"
    with pytest.raises(RuntimeError, match="cannot take bad"):
        queued["bad"].answer()
    assert sorted(run.groups[1]) == ["b", "bad", "c"]
    assert sorted(map(tuple, run.groups[2:])) == [("b",), ("bad",), ("c",)]


def test_idle_callers_run_alone_and_bursts_leave_no_one_behind() -> None:
    run = Recorder()
    run.release.set()
    group: GroupCommit[str, str] = GroupCommit(run, slots=2)
    for n in range(10):
        assert group.submit(str(n)) == f"done:{n}"
    assert run.groups == [[str(n)] for n in range(10)]
    callers = [Caller(group, f"x{n}") for n in range(200)]
    assert [c.answer() for c in callers] == [f"done:x{n}" for n in range(200)]
    ran = [item for g in run.groups for item in g if item.startswith("x")]
    assert sorted(ran) == sorted(f"x{n}" for n in range(200))
