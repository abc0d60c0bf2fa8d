"""Long-running processes tune the garbage collector once everything long-lived is loaded."""

from __future__ import annotations

import gc

from remarket_mailer.entrypoints.gc_tuning import tune_gc


def test_tune_gc_freezes_the_loaded_heap_and_collects_in_larger_rounds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold()[0] == 50_000
        assert gc.get_freeze_count() > 0
        garbage = []
        garbage.append(garbage)  # a cycle: still collected, by an explicit or a later round
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
