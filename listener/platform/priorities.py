"""Priorities: a job that has not started can be given another priority while it waits.

Where the order is decided (each goes by priority, then FIFO): the store promotes waiting jobs by it
(Store.waiting_jobs), a starting worker has the ready jobs announced by it (ready_queue.py), and a
worker's Runner dispatches the job:ready events it holds beyond its free slots by it (runner.py).
The part of JobService (jobs.py) that changes it; it holds no state of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from listener import topics
from listener.models import Job, JobPriority, parse
from listener.platform.moves import Move, S

__all__ = ["REPRIORITIZABLE", "PrioritiesMixin"]

REPRIORITIZABLE = frozenset({S.CREATED, S.PLANNING, S.SCHEDULED, S.READY})
"""The statuses whose job has not started: its priority can still change."""


class PrioritiesMixin:
    """jobs.set_priority."""

    if TYPE_CHECKING:
        async def _move(self, job_id: str, move: Move) -> Job: ...

    async def set_priority(self, job_id: str, priority: int) -> Job:
        """Give a job that has not started (created, planning, scheduled or ready) another priority; job:updated fires.

        A waiting job takes its new place among the waiting at once. A ready job's job:ready already went
        out: a worker that has not dispatched it yet orders it by the priority it was sent with.
        Invalid outside -1000 to 1000; Conflict once the job has started.
        """
        body = parse(JobPriority, {"priority": priority})
        return await self._move(job_id, Move("set_priority", REPRIORITIZABLE, topics.JOB_UPDATED,
                                             lambda job: {"priority": body.priority}))
