"""Process-wide settings for a long-running Listener process (`listener serve`, `run`, `dev` call them)."""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]

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
