"""Per-type limits (`jobs.configure`): at most so many running, so many starts a second, default timeouts.

The part of JobService (jobs.py) that sets them and starts the jobs waiting for them; it holds no
state of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from listener import topics
from listener.errors import Conflict, NotFound
from listener.models import Event, JobSettings, parse
from listener.platform.moves import ADMIT, Events
from listener.platform.store.base import NoSlot, Store
from listener.types import Clock

__all__ = ["LimitsMixin"]


class LimitsMixin:
    """jobs.configure / settings / promote_waiting, and the promotion of waiting jobs after a change."""

    _store: Store
    _clock: Clock
    actor: str | None

    if TYPE_CHECKING:
        async def _follow(self, events: Sequence[Event]) -> None: ...

    async def configure(
        self,
        job: str,
        *,
        max_running: int | None = None,
        starts_per_second: float | None = None,
        timeout_seconds: int | None = None,
        max_lease_expirations: int | None = None,
    ) -> JobSettings:
        """Set what the platform enforces for every `type:operation` job (replacing what was set before).

        `max_running`: at most this many ready or executing at once, the rest wait in `scheduled`
        (1: one at a time); `starts_per_second`: at most this many starts a second;
        `timeout_seconds`: the timeout of jobs created without their own; `max_lease_expirations`:
        how often a job created without its own goes back to ready when its worker dies (then it fails).
        """
        settings = parse(JobSettings, {"job": job, "max_running": max_running, "starts_per_second": starts_per_second,
                                       "timeout_seconds": timeout_seconds,
                                       "max_lease_expirations": max_lease_expirations}, what="job settings")
        await self._store.set_job_settings(settings)
        await self._follow(await self._promote(settings.job))  # a raised limit lets waiting jobs start now
        return settings

    async def settings(self) -> Sequence[JobSettings]:
        """The settings of every type that has some, read afresh from the store."""
        return list((await self._store.job_settings()).values())

    async def promote_waiting(self) -> int:
        """Start the jobs waiting for a limit, oldest first, as far as each type's limits allow (the sweep's part)."""
        started = 0
        for key, settings in (await self._store.job_settings()).items():
            if settings.max_running is not None or settings.starts_per_second is not None:
                events = await self._promote(key)
                started += sum(e.topic == topics.JOB_READY for e in events)
                await self._follow(events)
        return started

    async def _promote(self, key: str) -> Events:
        """Make waiting jobs of `key` ready, oldest first, until its limit says no; returns the events."""
        events: Events = []
        while True:
            waiting = await self._store.waiting_jobs(key, 50)
            before = len(events)
            for job_id in waiting:
                try:
                    _, added = await self._store.change_job(job_id, ADMIT.rule(self._clock.now(), self.actor))
                except NoSlot:
                    return events
                except (Conflict, NotFound):
                    continue  # started, cancelled or deleted meanwhile
                events += added
            if len(waiting) < 50 or len(events) == before:
                return events
