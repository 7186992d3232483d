"""Process-wide settings for a long-running Listener process (`listener serve`, `run`, `dev` call them)."""

from __future__ import annotations

import gc
import importlib.util
import os
from typing import Any

__all__ = ["event_loop", "loop_options", "tune_gc"]

LOOP_ENV = "LISTENER_LOOP"
"""`asyncio` keeps the standard event loop even where uvloop is installed."""

DEFAULT_GC_THRESHOLD = 10_000


def tune_gc(threshold: int = DEFAULT_GC_THRESHOLD) -> None:
    """Make Python's cyclic garbage collector cheap for a process that runs jobs.

    Every job allocates and keeps many small objects (its events, its state, the store's copy of it).
    With CPython's default threshold (a young-generation pass every 700 net allocations) those passes
    took about a sixth of the CPU of a busy job process while finding almost no garbage: nearly all of
    it is freed by reference counting. This runs the young generation every `threshold` allocations
    instead, and freezes the objects that exist now (modules, the app's setup) so that full
    collections skip them. Memory stays bounded: cycles are still collected, just in larger batches.

    Call it once, at startup, after imports. It changes the whole process, so an application that
    embeds the platform decides whether to call it; `listener serve`, `listener run` and `listener dev`
    do.
    """
    if threshold < 1:
        raise ValueError(f"threshold must be at least 1, not {threshold}.")
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)


def event_loop() -> str:
    """The event loop `listener serve`, `run`, `dev` and `demo` run on: "uvloop" or "asyncio".

    uvloop (the optional `fast` extra: `pip install -e '.[fast]'` in a checkout) is used where it is
    installed, unless LISTENER_LOOP=asyncio. On this project's benchmark it saves a few percent of CPU
    per job (most of a job's cost is Python, not the loop), and it is what the peers measured beside us
    run on.
    """
    choice = os.environ.get(LOOP_ENV, "").strip().lower()
    if choice not in ("", "asyncio", "uvloop"):
        raise ValueError(f"{LOOP_ENV} must be asyncio or uvloop, not {choice!r}.")
    if choice == "asyncio":
        return "asyncio"
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise ValueError(f"{LOOP_ENV}=uvloop, but uvloop is not installed "
                             "(the fast extra: pip install -e '.[fast]').")
        return "asyncio"
    return "uvloop"


def loop_options() -> dict[str, Any]:
    """`anyio.run(main, backend_options=loop_options())` runs `main` on `event_loop()`'s choice."""
    return {"use_uvloop": event_loop() == "uvloop"}
