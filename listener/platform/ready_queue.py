"""Ready jobs are a queue, not only a broadcast (DESIGN.md §3): job:ready again for a worker that starts.

The part of JobService (jobs.py) that announces ready jobs again; it holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from anyio.abc import TaskGroup

from listener import topics
from listener.errors import Conflict, NotFound
from listener.models import MAX_PRIORITY, Event, Job
from listener.platform.eventlog import ready_between
from listener.platform.moves import ANNOUNCE, Move, job_payload
from listener.platform.store.base import Store

if TYPE_CHECKING:
    from listener.listener import Listener

__all__ = ["ReadyQueueMixin", "announce_for"]

_ANNOUNCE_PAGE = 500
"""Ready jobs read at a time when a worker starts (see announce_waiting)."""


class ReadyQueueMixin:
    """jobs.announce / announce_waiting."""

    _store: Store

    if TYPE_CHECKING:
        async def _move(self, job_id: str, move: Move) -> Job: ...

    async def announce(self, job_id: str) -> bool:
        """Emit job:ready again for a job that is still ready, because the worker it went to is gone.

        False (and nothing written) when the job is no longer ready: someone claimed it meanwhile.
        """
        try:
            await self._move(job_id, ANNOUNCE)
        except (Conflict, NotFound):
            return False
        return True

    async def announce_waiting(self, wanted: Callable[[Event], bool], *, after: int | None = None) -> int:
        """Emit job:ready again, the highest priority first and oldest first within one, for every job still
        ready whose job:ready `wanted` would take.

        Ready jobs are a queue, not only a broadcast: a worker that starts gets the jobs that became
        ready before it (no worker was listening, or they went to a busy worker of its agent).
        `after` is where the worker's stream starts: the jobs whose job:ready lies past it reach the
        worker anyway and are left alone. Returns how many were announced.
        """
        coming: dict[str, None] = {}
        announced, scanned = 0, after
        # Above 0, then 0 (the jobs of most queues, read as before by position), then below: see Store.ready_jobs.
        for band in (1, 0, -1):
            position, priority = 0, MAX_PRIORITY + 1
            while True:
                page = await self._store.ready_jobs(position, _ANNOUNCE_PAGE, priority=priority, band=band)
                if scanned is not None:
                    # Read after the page: a job:ready of any job in it that lies past `after` is in this stretch.
                    head = await self._store.head()
                    coming.update(await ready_between(self._store, scanned, head, wanted))
                    scanned = head
                for _, job, ctx in page:
                    candidate = Event.trusted(id="", seq=0, topic=topics.JOB_READY, context=ctx,
                                              payload=job_payload(job), created_at=job.updated_at)
                    # One at a time, so that the new job:ready events keep the jobs' order.
                    if job.id not in coming and wanted(candidate) and await self.announce(job.id):
                        announced += 1
                if len(page) < _ANNOUNCE_PAGE:
                    break
                position, priority = page[-1][0], page[-1][1].priority
        return announced


def announce_for(tg: TaskGroup, jobs: ReadyQueueMixin, listener: Listener, after: int) -> None:
    """Start announcing again, in `tg`, every job still ready that one of `listener`'s handlers takes: a
    worker starting, whose live events begin after `after` (subscribe first, then call this)."""
    tg.start_soon(partial(jobs.announce_waiting, lambda event: bool(listener.handlers_for(event)), after=after))
