"""Timers: retries whose backoff has passed, leases that expired, jobs past their timeout, jobs waiting
for their type's limit, parents recounting their parts, retention.

Every job row carries `due_at`, the earliest moment something must happen to it
without anyone asking (its next attempt, its lease running out, its timeout).
The scheduler sweeps the rows that are due and moves each through the same state
machine as any caller, in its own transaction, so several replicas sweeping at
once is harmless: a move that is no longer allowed is a Conflict and is skipped.

The scheduler reads the time from the platform's clock: tests move a manual
clock and call `sweep()` instead of sleeping.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import anyio

from listener.errors import Conflict, NotFound
from listener.platform.jobs import JobService
from listener.types import Clock

__all__ = ["Scheduler"]

log = logging.getLogger("listener.scheduler")


class Scheduler:
    """Sweeps due jobs every `interval` seconds (and whenever `sweep()` is called)."""

    def __init__(self, jobs: JobService, clock: Clock, *, interval: float = 0.5, batch: int = 500,
                 retention: timedelta | None = timedelta(days=30), prune_every: timedelta = timedelta(hours=1)) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}.")
        self.jobs = jobs
        self.clock = clock
        self.interval = interval
        self.batch = batch
        self.retention = retention
        self.prune_every = prune_every
        self.swept = 0
        self.pruned = 0
        self._last_prune: datetime | None = None

    async def sweep(self) -> int:
        """Move every job that is due now; returns how many moved."""
        moved = 0
        while True:
            due = await self.jobs.due(limit=self.batch)
            for job_id in due:
                try:
                    if await self.jobs.advance(job_id):
                        moved += 1
                except (Conflict, NotFound):
                    pass  # another replica's sweep, or a caller, got there first
            if len(due) < self.batch:
                break
        # Jobs waiting for their type's limit: a slot freed (or a second passed) since they were last tried.
        moved += await self.jobs.promote_waiting()
        self.swept += moved
        now = self.clock.now()
        if self.retention is not None and (self._last_prune is None or now - self._last_prune >= self.prune_every):
            self._last_prune = now
            self.pruned += await self.jobs.prune(self.retention)
            await self.jobs.prune_data()
        return moved

    async def run(self) -> None:
        """Sweep until cancelled; a failed sweep is logged and tried again at the next tick."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("A scheduler sweep failed; trying again in %.1fs", self.interval)
            await anyio.sleep(self.interval)
