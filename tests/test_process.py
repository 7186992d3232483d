"""tune_gc and the event loop: the process-wide settings listener serve / run / dev start with."""

from __future__ import annotations

import gc
import importlib.util
from collections.abc import Iterator

import pytest

from listener import tune_gc
from listener.cli import main
from listener.process import LOOP_ENV, event_loop, loop_options


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


def test_the_event_loop_is_uvloop_where_installed_unless_asyncio_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = importlib.util.find_spec("uvloop") is not None
    monkeypatch.delenv(LOOP_ENV, raising=False)
    assert event_loop() == ("uvloop" if installed else "asyncio")
    assert loop_options() == {"use_uvloop": installed}
    monkeypatch.setenv(LOOP_ENV, "asyncio")
    assert event_loop() == "asyncio" and loop_options() == {"use_uvloop": False}


def test_a_bad_loop_choice_is_one_clear_line(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(LOOP_ENV, "trio")
    with pytest.raises(ValueError, match=LOOP_ENV):
        event_loop()
    assert main(["jobs", "list"]) == 2
    assert capsys.readouterr().err.strip() == f"listener: {LOOP_ENV} must be asyncio or uvloop, not 'trio'."
