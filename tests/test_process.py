"""tune_gc: the process-wide GC settings listener serve / run / dev start with."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from listener import tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_gc_raises_the_young_threshold_and_freezes_what_exists(restored_gc: None) -> None:
    older, oldest = gc.get_threshold()[1:]
    tune_gc(5_000)
    assert gc.get_threshold() == (5_000, older, oldest)
    assert gc.get_freeze_count() > 0


def test_tune_gc_refuses_a_threshold_below_one(restored_gc: None) -> None:
    before = gc.get_threshold()
    with pytest.raises(ValueError, match="threshold"):
        tune_gc(0)
    assert gc.get_threshold() == before
