"""The job state machine (DESIGN.md §2) and JobService, the jobs part of the in-process Api.

The rules are pure functions from the job as it is to the job as it becomes plus
the events that report it; the store runs each inside one transaction, so a
move either happens whole, with its events, or not at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import anyio

from listener import topics
from listener.errors import Conflict
from listener.models import (
    Event,
    EventContext,
    Job,
    JobAck,
    JobCancel,
    JobComplete,
    JobCreate,
    JobError,
    JobFail,
    JobListQuery,
    JobStatus,
    JobTrigger,
    JobType,
    JobUpdate,
    Outcome,
    Page,
    new_id,
    parse,
)
from listener.platform.eventlog import EventLog
from listener.platform.store.base import JobChange, JobQuery, NewEvent, Store
from listener.types import UNSET, Clock

__all__ = ["JobService"]

S = JobStatus
_ACTIVE = frozenset({S.CREATED, S.PLANNING, S.SCHEDULED, S.READY, S.EXECUTING})
_ENDED_TOPICS = frozenset({topics.JOB_COMPLETED, topics.JOB_FAILED, topics.JOB_CANCELLED, topics.JOB_DELETED})

ContextResolver = Callable[[str], Awaitable[EventContext]]
"""Given a job's source id, the ids of what it belongs to (workbook, space, sheet...)."""


def job_context(job: Job, base: EventContext | None = None) -> EventContext:
    """The context every event about `job` carries."""
    base = base or EventContext()
    return base.model_copy(
        update={"job_id": job.id, "job": job.job, "domain": job.type.value, "operation": job.operation}
    )


def job_payload(job: Job) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "status": job.status.value,
        "progress": job.progress,
        "info": job.info,
        "mode": job.mode.value,
        "isPart": False,
        "createdBy": job.created_by,
    }
    if job.input:
        payload["input"] = job.input
    if job.error is not None:
        payload["error"] = job.error.model_dump()
    return payload


def _given(model: Any) -> dict[str, Any]:
    return {name: getattr(model, name) for name in model.model_fields_set}


class _Move:
    """One row of the state table: which states a move may start from and what it does."""

    def __init__(
        self,
        name: str,
        allowed: Iterable[JobStatus],
        topic: str,
        apply: Callable[[Job], dict[str, Any]],
        *,
        hint: str = "",
    ) -> None:
        self.name, self.allowed, self.topic, self.apply, self.hint = name, frozenset(allowed), topic, apply, hint

    def rule(self, now: datetime, actor: str | None) -> Callable[[Job, EventContext], JobChange]:
        def rule(job: Job, ctx: EventContext) -> JobChange:
            if job.status not in self.allowed:
                allowed = ", ".join(sorted(s.value for s in self.allowed))
                raise Conflict(
                    f"Cannot {self.name} job {job.id} ({job.job}): it is {job.status.value}, "
                    f"and {self.name} needs one of: {allowed}.{self.hint}",
                    details={"jobId": job.id, "status": job.status.value, "move": self.name},
                )
            changes = self.apply(job)
            new = job.model_copy(update={**changes, "updated_at": now})
            context = ctx.model_copy(update={"actor_id": actor}) if actor else ctx
            if self.topic == topics.JOB_DELETED:
                return JobChange(None, [NewEvent(self.topic, context, job_payload(job), now)])
            return JobChange(new, [NewEvent(self.topic, context, job_payload(new), now)])

        return rule


class JobService:
    """jobs.create / execute / ack / update / complete / fail / cancel / acknowledge_outcome / ..."""

    def __init__(
        self,
        store: Store,
        eventlog: EventLog,
        clock: Clock,
        resolve: ContextResolver,
        actor: str | None = None,
    ) -> None:
        self._store = store
        self._eventlog = eventlog
        self._clock = clock
        self._resolve = resolve
        self.actor = actor
        # The Api that jobs returned from here remember, for `job.refresh()` and `job.wait()`.
        self.owner: Any = None

    def _bind(self, job: Job) -> Job:
        return job.bind(self.owner) if self.owner is not None else job

    async def _move(self, job_id: str, move: _Move) -> Job:
        job, _ = await self._store.change_job(job_id, move.rule(self._clock.now(), self.actor))
        assert job is not None
        return self._bind(job)

    async def create(
        self,
        *,
        type: JobType | str,
        operation: str,
        source: str | None = None,
        destination: str | None = None,
        trigger: JobTrigger | str = JobTrigger.IMMEDIATE,
        mode: str = "foreground",
        managed: bool = False,
        info: str | None = None,
        metadata: dict[str, Any] | None = None,
        input: dict[str, Any] | None = None,
    ) -> Job:
        """Create a job. With trigger `immediate` (the default) it is ready at once and job:ready fires."""
        body: dict[str, Any] = {"type": type, "operation": operation, "source": source, "destination": destination,
                                "trigger": trigger, "mode": mode, "managed": managed, "info": info}
        if metadata is not None:
            body["metadata"] = metadata
        if input is not None:
            body["input"] = input
        return await self.create_from(parse(JobCreate, body, what="job"))

    async def create_from(self, spec: JobCreate) -> Job:
        """Create a job from a validated `JobCreate` (what `create` and actions use)."""
        base = await self._resolve(spec.source) if spec.source else EventContext()
        now = self._clock.now()
        job = Job(id=new_id("jb"), created_by=self.actor, created_at=now, updated_at=now, **_given(spec))
        ctx = job_context(job, base)
        if self.actor:
            ctx = ctx.model_copy(update={"actor_id": self.actor})
        events = [NewEvent(topics.JOB_CREATED, ctx, job_payload(job), now)]
        if job.trigger is JobTrigger.IMMEDIATE:
            job = job.model_copy(update={"status": S.READY})
            events.append(NewEvent(topics.JOB_READY, ctx, job_payload(job), now))
        await self._store.insert_job(job, ctx, events)
        return self._bind(job)

    async def get(self, job_id: str) -> Job:
        return self._bind(await self._store.get_job(job_id))

    async def list(
        self,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] | None = None,
        type: JobType | str | Sequence[JobType | str] | None = None,
        operation: str | Sequence[str] | None = None,
        created_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Job]:
        """Jobs, newest first, filtered by status, type, operation and creator."""
        query = parse(
            JobListQuery,
            {"status": _as_list(status), "type": _as_list(type), "operation": _as_list(operation),
             "created_by": created_by, "limit": limit, "offset": offset},
            what="job query",
        )
        items, total = await self._store.list_jobs(
            JobQuery(query.status, query.type, query.operation, query.created_by, query.limit, query.offset)
        )
        return Page[Job](items=[self._bind(j) for j in items], total=total, limit=query.limit, offset=query.offset)

    async def execute(self, job_id: str) -> Job:
        """Start a `manual` job: created → ready, and job:ready fires."""
        return await self._move(job_id, _EXECUTE)

    async def ack(
        self,
        job_id: str,
        *,
        info: str | None = UNSET,  # type: ignore[assignment]
        progress: int | None = UNSET,  # type: ignore[assignment]
        estimated_completion_at: datetime | None = UNSET,  # type: ignore[assignment]
    ) -> Job:
        """Claim a ready job: ready → executing. Exactly one of several concurrent acks wins; the rest get Conflict."""
        body = parse(JobAck, _body(info=info, progress=progress, estimated_completion_at=estimated_completion_at))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            return {"status": S.EXECUTING, "started_at": now, "attempt": job.attempt + 1, **_given(body)}

        return await self._move(job_id, _Move("ack", {S.READY}, topics.JOB_UPDATED, apply))

    async def update(
        self,
        job_id: str,
        *,
        info: str | None = UNSET,  # type: ignore[assignment]
        progress: int | None = UNSET,  # type: ignore[assignment]
        estimated_completion_at: datetime | None = UNSET,  # type: ignore[assignment]
        metadata: dict[str, Any] | None = UNSET,  # type: ignore[assignment]
    ) -> Job:
        """Report progress on an executing job; only the fields given change."""
        body = parse(JobUpdate, _body(info=info, progress=progress, estimated_completion_at=estimated_completion_at,
                                      metadata=metadata))
        return await self._move(job_id, _Move("update", {S.EXECUTING}, topics.JOB_UPDATED, lambda job: _given(body)))

    async def complete(
        self,
        job_id: str,
        *,
        outcome: Outcome | dict[str, Any] | None = None,
        info: str | None = UNSET,  # type: ignore[assignment]
    ) -> Job:
        """Finish an executing job successfully, with an optional outcome for the person who started it."""
        body = parse(JobComplete, _body(outcome=outcome, info=info))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            return {"status": S.COMPLETE, "progress": 100, "finished_at": now, **_given(body)}

        return await self._move(job_id, _Move("complete", {S.EXECUTING}, topics.JOB_COMPLETED, apply))

    async def fail(
        self,
        job_id: str,
        *,
        outcome: Outcome | dict[str, Any] | None = None,
        info: str | None = UNSET,  # type: ignore[assignment]
        error: str | None = None,
        kind: str = "error",
    ) -> Job:
        """Fail an executing job. The error message is `error`, else the outcome's message, else the info."""
        body = parse(JobFail, _body(outcome=outcome, info=info, error=error, kind=kind))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            message = body.error or (body.outcome and body.outcome.message) or body.info or "The job failed."
            changes: dict[str, Any] = {"status": S.FAILED, "finished_at": now,
                                       "error": JobError(message=message, kind=body.kind)}
            if body.outcome is not None:
                changes["outcome"] = body.outcome
            if "info" in body.model_fields_set:
                changes["info"] = body.info
            return changes

        return await self._move(job_id, _Move("fail", {S.EXECUTING}, topics.JOB_FAILED, apply))

    async def cancel(self, job_id: str, *, info: str | None = UNSET) -> Job:  # type: ignore[assignment]
        """Cancel a job that has not ended; a handler running it should stop."""
        body = parse(JobCancel, _body(info=info))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            return {"status": S.CANCELLED, "finished_at": now, **_given(body)}

        return await self._move(job_id, _Move("cancel", _ACTIVE, topics.JOB_CANCELLED, apply))

    async def acknowledge_outcome(self, job_id: str) -> Job:
        """Record that the person saw the outcome of a finished job (job:outcome-acknowledged)."""
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            if job.outcome_acknowledged_at is not None:
                raise Conflict(f"The outcome of job {job.id} was already acknowledged.",
                               details={"jobId": job.id, "status": job.status.value, "move": "acknowledge_outcome"})
            return {"outcome_acknowledged_at": now}

        move = _Move("acknowledge_outcome", {S.COMPLETE, S.FAILED}, topics.JOB_OUTCOME_ACKNOWLEDGED, apply)
        return await self._move(job_id, move)

    async def delete(self, job_id: str) -> None:
        """Delete a job that is not executing (cancel it first); job:deleted fires."""
        await self._store.change_job(job_id, _DELETE.rule(self._clock.now(), self.actor))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait until the job is complete, failed or cancelled and return it.

        Raises TimeoutError when `timeout` seconds pass first, NotFound if the job is deleted.
        """
        changed = anyio.Event()

        def on_batch(events: Sequence[Event]) -> None:
            if any(e.context.job_id == job_id and e.topic in _ENDED_TOPICS for e in events):
                changed.set()

        self._eventlog.on_batch(on_batch)
        try:
            with anyio.fail_after(timeout):
                while True:
                    job = await self.get(job_id)
                    if job.status.is_terminal:
                        return job
                    await changed.wait()
                    changed = anyio.Event()
        finally:
            self._eventlog.off_batch(on_batch)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _body(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not UNSET}


_EXECUTE = _Move("execute", {S.CREATED}, topics.JOB_READY, lambda job: {"status": S.READY},
                 hint=" Only a manual job that has not started can be executed.")
_DELETE = _Move("delete", _ACTIVE - {S.EXECUTING} | {S.COMPLETE, S.FAILED, S.CANCELLED}, topics.JOB_DELETED,
                lambda job: {}, hint=" Cancel it first.")
