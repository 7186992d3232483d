"""Per-type limits (`jobs.configure`): at most so many running, so many starts a second, default timeouts and
priority, and the same limits per concurrency key (fairness between tenants).

The part of JobService (jobs.py) that sets them and starts the jobs waiting for them, the highest priority
first and, where a type limits its keys, the keys taking turns; it holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from listener import topics
from listener.errors import Conflict, NotFound
from listener.models import Event, EventContext, Job, JobSettings, JobStatus, parse
from listener.platform.moves import ADMIT, Events, job_payload
from listener.platform.store.base import JobChange, JobRule, NewEvent, NoSlot, Store
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
        priority: int | None = None,
        max_running_per_key: int | None = None,
        starts_per_second_per_key: float | None = None,
    ) -> JobSettings:
        """Set what the platform enforces for every `type:operation` job (replacing what was set before).

        `max_running`: at most this many ready or executing at once, the rest wait in `scheduled`
        (1: one at a time); `starts_per_second`: at most this many starts a second;
        `timeout_seconds`: the timeout of jobs created without their own; `max_lease_expirations`:
        how often a job created without its own goes back to ready when its worker dies (then it fails);
        `priority`: the priority of jobs created without their own. `max_running_per_key` and
        `starts_per_second_per_key`: the same two limits for the jobs of each `concurrency_key`, so that one
        key's burst cannot hold every slot; when slots free up, the keys take turns.
        """
        settings = parse(JobSettings, {"job": job, "max_running": max_running, "starts_per_second": starts_per_second,
                                       "timeout_seconds": timeout_seconds,
                                       "max_lease_expirations": max_lease_expirations, "priority": priority,
                                       "max_running_per_key": max_running_per_key,
                                       "starts_per_second_per_key": starts_per_second_per_key},
                         what="job settings")
        await self._store.set_job_settings(settings)
        await self._follow(await self._promote(settings.job))  # a raised limit lets waiting jobs start now
        return settings

    async def settings(self) -> Sequence[JobSettings]:
        """The settings of every type that has some, read afresh from the store."""
        return list((await self._store.job_settings()).values())

    async def promote_waiting(self) -> int:
        """Start the jobs waiting for a limit, in turn, as far as each type's limits allow (the sweep's part)."""
        started = 0
        for key, settings in (await self._store.job_settings()).items():
            if settings.limits_starts:
                events = await self._promote(key)
                started += sum(e.topic == topics.JOB_READY for e in events)
                await self._follow(events)
        return started

    async def _promote(self, key: str) -> Events:
        """Make waiting jobs of `key` ready in the order they start (Store.waiting_jobs) until the type's limit
        says no; a concurrency key at its own limit is passed over for the others. Returns the events."""
        events: Events = []
        settings = self._store.limits().get(key)
        by_key = settings is not None and settings.per_key
        while True:
            waiting = await self._store.waiting_jobs(key, 50, by_key=by_key)
            before = len(events)
            full: set[str] = set()  # keys at their limit: their later jobs are not tried again in this pass
            for job_id, concurrency_key in waiting:
                if concurrency_key is not None and concurrency_key in full:
                    continue
                try:
                    _, added = await self._store.change_job(job_id, ADMIT.rule(self._clock.now(), self.actor))
                except NoSlot as slot:
                    if slot.key is None:
                        return events  # the type's own limit: no other job of it starts either
                    full.add(slot.key)
                    events += await self._held_by(job_id, slot)
                    continue
                except (Conflict, NotFound):
                    continue  # started, cancelled or deleted meanwhile
                events += added
            if len(waiting) < 50 or len(events) == before:
                return events

    async def _held_by(self, job_id: str, slot: NoSlot) -> Events:
        """Say which limit holds a waiting job now, if it is another than it says (its key's, say)."""
        now = self._clock.now()

        def rule(job: Job, ctx: EventContext) -> JobChange:
            if job.status is not JobStatus.SCHEDULED or job.waiting_for in (None, slot.reason):
                return JobChange(job, [])
            new = job.model_copy(update={"waiting_for": slot.reason, "info": slot.message, "updated_at": now})
            return JobChange(new, [NewEvent(topics.JOB_UPDATED, ctx, job_payload(new), now)])

        held: JobRule = rule
        try:
            _, added = await self._store.change_job(job_id, held)
        except (Conflict, NotFound):
            return []
        return added
