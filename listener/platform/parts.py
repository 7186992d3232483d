"""Split jobs (`jobs.split`): a parent's parts, their counts, their order, and their end with the parent's.

The part of JobService (jobs.py) that splits a job and keeps its parent up to date; it holds no
state of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from listener import topics
from listener.errors import Conflict, NotFound
from listener.models import EventContext, Job, JobError, JobParts, JobSplit, JobStatus, Outcome, new_id, parse
from listener.platform.moves import (
    ACTIVE,
    Events,
    Inserts,
    Move,
    S,
    fence,
    given,
    job_context,
    job_payload,
    plan,
)
from listener.platform.store.base import JobChange, JobQuery, JobRule, NewEvent, Store
from listener.types import Clock

__all__ = ["PartsMixin"]


class PartsMixin:
    """jobs.split, and what follows a part's change: its parent's recount, the next part, the rest cancelled."""

    _store: Store
    _clock: Clock
    actor: str | None

    if TYPE_CHECKING:
        def _bind(self, job: Job) -> Job: ...
        async def get(self, job_id: str) -> Job: ...
        async def advance(self, job_id: str) -> bool: ...
        async def _change(self, job_id: str, rule: JobRule) -> tuple[Job | None, Events]: ...
        async def _predecessors(self, job: Job) -> dict[str, JobStatus | None]: ...

    async def split(
        self,
        job_id: str,
        *,
        parts: int | Sequence[dict[str, Any]],
        run_in_parallel: bool = True,
        settle: str = "listener",
        attempt: int | None = None,
    ) -> Job:
        """Split an executing job into parts: child jobs with its operation, `is_part`, `part`, `part_data`.

        `parts` is how many, or each part's data. Parts run at once, or one after another unless
        `run_in_parallel` (a failed one then stops the rest). When every part has finished,
        job:parts-completed fires on the parent with the counts; a listener settles the parent,
        or with `settle="auto"` the platform completes it (or fails it, naming the failed parts).
        The parent holds no lease while its parts run and its progress follows theirs.
        """
        body = parse(JobSplit, given(parts=parts if isinstance(parts, int) else list(parts),
                                     run_in_parallel=run_in_parallel, settle=settle, attempt=attempt), what="split")
        now = self._clock.now()
        actor = self.actor
        datas: list[dict[str, Any] | None] = [None] * body.parts if isinstance(body.parts, int) else list(body.parts)

        def rule(job: Job, ctx: EventContext) -> JobChange:
            if job.status is not S.EXECUTING:
                raise Conflict(f"Cannot split job {job.id} ({job.job}): it is {job.status.value}, and split needs "
                               "executing.", details={"jobId": job.id, "status": job.status.value, "move": "split"})
            fence(job, body.attempt, "split")
            if job.is_part or job.parts is not None:
                what = "is a part itself" if job.is_part else f"was already split into {job.parts.total} parts" \
                    if job.parts else ""
                raise Conflict(f"Cannot split job {job.id}: it {what}.",
                               details={"jobId": job.id, "status": job.status.value, "move": "split"})
            context = ctx.model_copy(update={"actor_id": actor}) if actor else ctx
            inserts: Inserts = []
            previous: str | None = None
            for number, data in enumerate(datas, start=1):
                later = not body.run_in_parallel and previous is not None
                child = Job(
                    id=new_id("jb"), type=job.type, operation=job.operation, source=job.source,
                    destination=job.destination, mode=job.mode, managed=job.managed, input=job.input,
                    retry=job.retry, max_attempts=job.max_attempts, lease_seconds=job.lease_seconds,
                    timeout_seconds=job.timeout_seconds, max_lease_expirations=job.max_lease_expirations,
                    created_by=job.created_by, created_at=now, updated_at=now,
                    is_part=True, part=number, part_data=data, parent_id=job.id,
                    # Each part starts through the scheduler's path (so limits apply), at once or after the one before.
                    status=S.PLANNING if later else S.SCHEDULED, next_attempt_at=None if later else now,
                    predecessor_ids=[previous] if later and previous else [],
                )
                child_ctx = job_context(child, context)
                inserts.append((child, child_ctx, [NewEvent(topics.JOB_CREATED, child_ctx, job_payload(child), now)]))
                previous = child.id
            new = job.model_copy(update={
                "parts": JobParts(total=len(datas), run_in_parallel=body.run_in_parallel, settle=body.settle),
                "lease_expires_at": None, "updated_at": now,
                "info": f"Split into {len(datas)} parts{'' if body.run_in_parallel else ', run one after another'}.",
            })
            return JobChange(new, [NewEvent(topics.JOB_UPDATED, context, job_payload(new), now)], inserts)

        parent, events = await self._store.change_job(job_id, rule)
        assert parent is not None
        starting = [e.context.job_id for e in events if e.topic == topics.JOB_CREATED and e.payload["status"] ==
                    S.SCHEDULED.value and e.context.job_id]
        # Concurrent starts share the store's group commits; a crash meanwhile leaves them due for the sweep.
        # Under a limit they start one by one, so the first parts get the free slots, in order.
        if parent.job in self._store.limits():
            for part_id in starting:
                await self._start_part(part_id)
        else:
            async with anyio.create_task_group() as tg:
                for part_id in starting:
                    tg.start_soon(self._start_part, part_id)
        return self._bind(await self.get(parent.id))

    async def _start_part(self, part_id: str) -> None:
        try:
            await self.advance(part_id)
        except (Conflict, NotFound):
            pass

    async def _recount(self, parent_id: str) -> Events:
        """Bring a parent's part counts and progress up to date; job:parts-completed (and, with
        `settle="auto"`, its end) when every part has finished."""
        stats = await self._store.part_stats(parent_id)
        now = self._clock.now()
        actor = self.actor

        def rule(job: Job, ctx: EventContext) -> JobChange:
            parts = job.parts
            if parts is None or parts.completed_at is not None or job.status.is_terminal:
                return JobChange(job, [])
            counts = {"completed": stats.by_status.get(S.COMPLETE, 0), "failed": stats.by_status.get(S.FAILED, 0),
                      "cancelled": stats.by_status.get(S.CANCELLED, 0)}
            ended = sum(counts.values())
            if ended < parts.ended:
                return JobChange(job, [])  # counted before a part that another recount already saw ended
            # A deleted part counts as cancelled: it will never finish.
            counts["cancelled"] += max(0, parts.total - stats.total)
            ended = sum(counts.values())
            progress = min(100, (ended * 100 + stats.progress) // parts.total)
            new_parts = parts.model_copy(update={**counts, "completed_at": now if ended >= parts.total else None})
            if new_parts == parts and progress == job.progress:
                return JobChange(job, [])
            context = ctx.model_copy(update={"actor_id": actor}) if actor else ctx
            new = job.model_copy(update={"parts": new_parts, "progress": progress, "updated_at": now})
            if new_parts.completed_at is None:
                return JobChange(new, [NewEvent(topics.JOB_UPDATED, context, job_payload(new), now)])
            events = [NewEvent(topics.JOB_PARTS_COMPLETED, context, job_payload(new), now)]
            if parts.settle == "auto":
                bad = counts["failed"] + counts["cancelled"]
                if bad == 0:
                    new = new.model_copy(update={
                        "status": S.COMPLETE, "progress": 100, "finished_at": now,
                        "outcome": Outcome(message=f"All {parts.total} parts completed.")})
                    events.append(NewEvent(topics.JOB_COMPLETED, context, job_payload(new), now))
                else:
                    numbers = ", ".join(str(n) for n in stats.failed_parts) or "(deleted)"
                    error = JobError(message=f"{bad} of {parts.total} parts did not complete: "
                                             f"part{'s' if bad > 1 else ''} {numbers}.", attempt=job.attempt)
                    new = new.model_copy(update={"status": S.FAILED, "finished_at": now, "error": error})
                    events.append(NewEvent(topics.JOB_FAILED, context, {**job_payload(new), "willRetry": False}, now))
            return JobChange(new, events)

        _, events = await self._store.change_job(parent_id, rule)
        return events

    async def _start_next_part(self, parent_id: str) -> Events:
        """Sequential parts: the next one waits in planning on the one before; move it on now, not at the next sweep."""
        waiting, _ = await self._store.list_jobs(JobQuery(status=[S.PLANNING], parent_id=parent_id, limit=1))
        if not waiting:
            return []
        job_id = waiting[0].id
        current = await self._store.get_job(job_id)
        predecessors = await self._predecessors(current)
        now = self._clock.now()

        def rule(job: Job, ctx: EventContext) -> JobChange:
            return plan(job, ctx, predecessors, now, self.actor)

        _, events = await self._change(job_id, rule)
        return events

    async def _cancel_parts(self, parent_id: str) -> Events:
        """The parent ended before its parts: those not finished are cancelled."""
        events: Events = []
        unfinished, _ = await self._store.list_jobs(JobQuery(status=list(ACTIVE), parent_id=parent_id, limit=1000))
        for part in unfinished:
            move = Move("cancel", ACTIVE, topics.JOB_CANCELLED, lambda job: {
                "status": S.CANCELLED, "finished_at": self._clock.now(), "lease_expires_at": None,
                "next_attempt_at": None, "waiting_for": None, "info": "Cancelled: its parent job ended."})
            try:
                _, added = await self._store.change_job(part.id, move.rule(self._clock.now(), self.actor))
            except (Conflict, NotFound):
                continue
            events += added
        return events
