"""The job state machine (DESIGN.md §2) and JobService, the jobs part of the in-process Api.

The rules are pure functions from the job as it is to the job as it becomes plus
the events that report it; the store runs each inside one transaction, so a
move either happens whole, with its events, or not at all.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import anyio

from listener import topics
from listener.errors import Conflict, Invalid, NotFound
from listener.models import (
    Event,
    EventContext,
    Job,
    JobAck,
    JobCancel,
    JobCheckpoint,
    JobComplete,
    JobCreate,
    JobError,
    JobErrors,
    JobFail,
    JobHeartbeat,
    JobItemError,
    JobListQuery,
    JobStatus,
    JobTrigger,
    JobType,
    JobUpdate,
    Outcome,
    Page,
    RetryPolicy,
    job_spec,
    new_id,
    parse,
)
from listener.platform.eventlog import EventLog
from listener.platform.store.base import (
    Idempotency,
    IdempotentReplay,
    JobChange,
    JobQuery,
    NewEvent,
    Store,
    deadline,
)
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
        "processed": job.processed,
        "total": job.total,
        "info": job.info,
        "mode": job.mode.value,
        "isPart": False,
        "createdBy": job.created_by,
    }
    if job.input:
        payload["input"] = job.input
    if job.error is not None:
        payload["error"] = job.error.model_dump()
    if job.attempt:
        payload["attempt"] = job.attempt
        payload["maxAttempts"] = job.max_attempts
    if job.status is JobStatus.SCHEDULED and job.next_attempt_at is not None:
        payload["nextAttemptAt"] = job.next_attempt_at.isoformat()
    return payload


def _fence(job: Job, attempt: int | None, move: str) -> None:
    if attempt is not None and attempt != job.attempt:
        raise Conflict(f"Cannot {move} job {job.id}: attempt {attempt} is over (the job is on attempt "
                       f"{job.attempt}, {job.status.value}).",
                       details={"jobId": job.id, "status": job.status.value, "move": move, "attempt": attempt})


def _failure(job: Job, error: JobError, now: datetime, rand: float) -> dict[str, Any]:
    """The changes of a failed attempt: a retry is scheduled while the policy has attempts left."""
    lease = {"lease_expires_at": None, "error": error.model_copy(update={"attempt": job.attempt})}
    if error.retryable and job.attempt < job.max_attempts:
        policy = job.retry or RetryPolicy()
        return {**lease, "status": S.SCHEDULED,
                "next_attempt_at": now + timedelta(seconds=policy.delay(job.attempt, rand))}
    return {**lease, "status": S.FAILED, "finished_at": now}


def _given(model: Any) -> dict[str, Any]:
    return {name: getattr(model, name) for name in model.model_fields_set}


class _Move:
    """One row of the state table: which states a move may start from and what it does."""

    def __init__(
        self,
        name: str,
        allowed: Iterable[JobStatus],
        topic: str | None,
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
            if self.topic is None:  # a change no one needs to hear of (a heartbeat)
                return JobChange(new, [])
            payload = job_payload(new)
            if self.topic == topics.JOB_FAILED:
                payload["willRetry"] = new.status is S.SCHEDULED
            return JobChange(new, [NewEvent(self.topic, context, payload, now)])

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
        retry: RetryPolicy | dict[str, Any] | None = None,
        timeout_seconds: int | None = None,
        lease_seconds: int | None = None,
        run_at: datetime | None = None,
        predecessor_ids: Sequence[str] | None = None,
    ) -> Job:
        """Create a job. With trigger `immediate` (the default) it is ready at once and job:ready fires."""
        return await self.create_from(job_spec(
            type=type, operation=operation, source=source, destination=destination, trigger=trigger, mode=mode,
            managed=managed, info=info, metadata=metadata, input=input, retry=retry, timeout_seconds=timeout_seconds,
            lease_seconds=lease_seconds, run_at=run_at, predecessor_ids=predecessor_ids))

    async def create_from(self, spec: JobCreate, *, idempotency_key: str | None = None) -> Job:
        """Create a job from a validated `JobCreate` (what `create` and actions use).

        With an `idempotency_key`, the same key and body from the same caller return the job created the
        first time; the same key with another body is Invalid (IETF idempotency-key draft).
        """
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 255:
                raise Invalid("Idempotency-Key: must be 1 to 255 characters.",
                              details=[{"field": "Idempotency-Key", "message": "length"}])
            digest = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()
            try:
                return await self._create(spec, Idempotency(self.actor or "", idempotency_key, digest))
            except IdempotentReplay as replay:
                if not replay.same_body:
                    raise Invalid(f"Idempotency-Key: {idempotency_key!r} was used for another job with another body.",
                                  details=[{"field": "Idempotency-Key", "message": "reused"}]) from None
                return await self.get(replay.job_id)
        return await self._create(spec, None)

    async def _create(self, spec: JobCreate, idempotency: Idempotency | None) -> Job:
        base = await self._resolve(spec.source) if spec.source else EventContext()
        now = self._clock.now()
        job = Job(id=new_id("jb"), created_by=self.actor, created_at=now, updated_at=now, **_given(spec))
        if job.retry is not None:
            job = job.model_copy(update={"max_attempts": job.retry.max_attempts})
        ctx = job_context(job, base)
        if self.actor:
            ctx = ctx.model_copy(update={"actor_id": self.actor})
        events = [NewEvent(topics.JOB_CREATED, ctx, job_payload(job), now)]
        waiting = [p for p, status in (await self._predecessors(job)).items() if status is not S.COMPLETE]
        if waiting:
            # Held in planning until every predecessor has completed (the scheduler watches them).
            job = job.model_copy(update={"status": S.PLANNING})
        elif job.trigger is JobTrigger.IMMEDIATE and job.run_at is not None and job.run_at > now:
            # Starts later: the scheduler makes it ready (and job:ready fires) when its time comes.
            job = job.model_copy(update={"status": S.SCHEDULED, "next_attempt_at": job.run_at})
        elif job.trigger is JobTrigger.IMMEDIATE:
            job = job.model_copy(update={"status": S.READY})
            events.append(NewEvent(topics.JOB_READY, ctx, job_payload(job), now))
        await self._store.insert_job(job, ctx, events, idempotency)
        return self._bind(job)

    async def get(self, job_id: str) -> Job:
        return self._bind(await self._store.get_job(job_id))

    async def _predecessors(self, job: Job) -> dict[str, JobStatus | None]:
        """The status of each predecessor of `job` (None: it no longer exists)."""
        statuses: dict[str, JobStatus | None] = {}
        for predecessor in job.predecessor_ids:
            try:
                statuses[predecessor] = (await self._store.get_job(predecessor)).status
            except NotFound:
                if job.status is S.CREATED and not job.attempt:  # being created: an unknown id is a mistake
                    raise Invalid(f"predecessorIds: job {predecessor} does not exist.",
                                  details=[{"field": "predecessorIds", "message": "unknown job"}]) from None
                statuses[predecessor] = None
        return statuses

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
        retry: RetryPolicy | dict[str, Any] | None = UNSET,  # type: ignore[assignment]
        lease_seconds: int = UNSET,  # type: ignore[assignment]
    ) -> Job:
        """Claim a ready job: ready → executing, with a lease that updates and heartbeats renew.

        Exactly one of several concurrent acks wins; the rest get Conflict. A listener may bring its
        retry policy (job_handler does), which the job keeps unless it was created with its own.
        """
        body = parse(JobAck, _body(info=info, progress=progress, estimated_completion_at=estimated_completion_at,
                                   retry=retry, lease_seconds=lease_seconds))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            changes = {k: v for k, v in _given(body).items() if k not in ("retry", "lease_seconds")}
            lease = body.lease_seconds if "lease_seconds" in body.model_fields_set else job.lease_seconds
            changes.update(status=S.EXECUTING, started_at=now, attempt=job.attempt + 1, next_attempt_at=None,
                           lease_seconds=lease, lease_expires_at=now + timedelta(seconds=lease))
            if body.retry is not None and job.retry is None:
                changes.update(retry=body.retry, max_attempts=body.retry.max_attempts)
            return changes

        return await self._move(job_id, _Move("ack", {S.READY}, topics.JOB_UPDATED, apply))

    async def update(
        self,
        job_id: str,
        *,
        info: str | None = UNSET,  # type: ignore[assignment]
        progress: int | None = UNSET,  # type: ignore[assignment]
        estimated_completion_at: datetime | None = UNSET,  # type: ignore[assignment]
        metadata: dict[str, Any] | None = UNSET,  # type: ignore[assignment]
        processed: int = UNSET,  # type: ignore[assignment]
        total: int = UNSET,  # type: ignore[assignment]
        attempt: int | None = None,
    ) -> Job:
        """Report progress on an executing job (renews its lease); only the fields given change.

        With `processed` (and `total`) items, progress follows them and, unless given, the estimated
        completion time is computed from the rate observed since the attempt started.
        """
        body = parse(JobUpdate, _body(info=info, progress=progress, estimated_completion_at=estimated_completion_at,
                                      metadata=metadata, processed=processed, total=total, attempt=attempt))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            _fence(job, body.attempt, "update")
            changes = {k: v for k, v in _given(body).items() if k != "attempt"}
            done, total_ = changes.get("processed", job.processed), changes.get("total", job.total)
            if done is not None and total_:
                changes.setdefault("progress", min(100, done * 100 // total_))
                elapsed = (now - job.started_at).total_seconds() if job.started_at else 0
                if done and elapsed > 0 and "estimated_completion_at" not in changes:
                    changes["estimated_completion_at"] = now + timedelta(seconds=elapsed * max(total_ - done, 0) / done)
            return {**changes, "lease_expires_at": now + timedelta(seconds=job.lease_seconds)}

        return await self._move(job_id, _Move("update", {S.EXECUTING}, topics.JOB_UPDATED, apply))

    async def heartbeat(self, job_id: str, *, attempt: int | None = None) -> Job:
        """The worker running the job is alive: renew its lease (no event). Conflict once the attempt is over."""
        body = parse(JobHeartbeat, _body(attempt=attempt))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            _fence(job, body.attempt, "heartbeat")
            return {"lease_expires_at": now + timedelta(seconds=job.lease_seconds)}

        return await self._move(job_id, _Move("heartbeat", {S.EXECUTING}, None, apply))

    async def checkpoint(self, job_id: str, state: dict[str, Any], *, attempt: int | None = None) -> Job:
        """Save a small JSON state of an executing job (renews its lease); a retried attempt resumes from it."""
        body = parse(JobCheckpoint, _body(state=state, attempt=attempt))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            _fence(job, body.attempt, "checkpoint")
            return {"checkpoint": body.state, "lease_expires_at": now + timedelta(seconds=job.lease_seconds)}

        return await self._move(job_id, _Move("checkpoint", {S.EXECUTING}, None, apply))

    async def complete(
        self,
        job_id: str,
        *,
        outcome: Outcome | dict[str, Any] | None = None,
        info: str | None = UNSET,  # type: ignore[assignment]
        attempt: int | None = None,
    ) -> Job:
        """Finish an executing job successfully, with an optional outcome for the person who started it."""
        body = parse(JobComplete, _body(outcome=outcome, info=info, attempt=attempt))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            _fence(job, body.attempt, "complete")
            changes = {k: v for k, v in _given(body).items() if k != "attempt"}
            return {"status": S.COMPLETE, "progress": 100, "finished_at": now, "lease_expires_at": None, **changes}

        return await self._move(job_id, _Move("complete", {S.EXECUTING}, topics.JOB_COMPLETED, apply))

    async def fail(
        self,
        job_id: str,
        *,
        outcome: Outcome | dict[str, Any] | None = None,
        info: str | None = UNSET,  # type: ignore[assignment]
        error: str | None = None,
        kind: str = "error",
        retryable: bool = False,
        attempt: int | None = None,
    ) -> Job:
        """Fail an executing job's attempt. The error message is `error`, else the outcome's, else the info.

        A `retryable` failure with attempts left under the job's retry policy moves it to `scheduled`
        and job:failed says `willRetry`; otherwise the job ends `failed`.
        """
        body = parse(JobFail, _body(outcome=outcome, info=info, error=error, kind=kind, retryable=retryable,
                                    attempt=attempt))
        now = self._clock.now()
        rand = random.random()

        def apply(job: Job) -> dict[str, Any]:
            _fence(job, body.attempt, "fail")
            message = body.error or (body.outcome and body.outcome.message) or body.info or "The job failed."
            changes = _failure(job, JobError(message=message, kind=body.kind, retryable=body.retryable), now, rand)
            if body.outcome is not None:
                changes["outcome"] = body.outcome
            if "info" in body.model_fields_set:
                changes["info"] = body.info
            return changes

        return await self._move(job_id, _Move("fail", {S.EXECUTING}, topics.JOB_FAILED, apply))

    async def retry(self, job_id: str) -> Job:
        """Run a failed job again by hand (the outcome's `retry` button): failed → ready, one more attempt allowed."""
        def apply(job: Job) -> dict[str, Any]:
            return {"status": S.READY, "finished_at": None, "next_attempt_at": None, "outcome": None,
                    "outcome_acknowledged_at": None, "max_attempts": max(job.max_attempts, job.attempt + 1)}

        return await self._move(job_id, _Move("retry", {S.FAILED}, topics.JOB_READY, apply))

    async def cancel(self, job_id: str, *, info: str | None = UNSET) -> Job:  # type: ignore[assignment]
        """Cancel a job that has not ended; a handler running it should stop."""
        body = parse(JobCancel, _body(info=info))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            return {"status": S.CANCELLED, "finished_at": now, "lease_expires_at": None, "next_attempt_at": None,
                    **_given(body)}

        return await self._move(job_id, _Move("cancel", _ACTIVE, topics.JOB_CANCELLED, apply))

    async def log_errors(self, job_id: str, errors: Sequence[JobItemError | dict[str, Any]]) -> int:
        """Append entries (`item`, `message`) to the job's error log, which stays with it whatever its end."""
        body = parse(JobErrors, {"errors": list(errors)}, what="errors")
        now = self._clock.now()
        stamped = [e if e.created_at else e.model_copy(update={"created_at": now}) for e in body.errors]
        return await self._store.add_job_errors(job_id, stamped)

    async def log_error(self, job_id: str, *, message: str, item: str | None = None) -> int:
        """Append one entry to the job's error log; returns the log's length."""
        return await self.log_errors(job_id, [{"item": item, "message": message}])

    async def errors(self, job_id: str, *, limit: int = 100, offset: int = 0) -> Page[JobItemError]:
        """A page of the job's error log, oldest first."""
        await self._store.get_job(job_id)
        items, total = await self._store.job_errors(job_id, limit, offset)
        return Page[JobItemError](items=items, total=total, limit=limit, offset=offset)

    async def prune(self, older_than: timedelta, *, batch: int = 1000) -> int:
        """Delete finished jobs that ended more than `older_than` ago, with their events (retention)."""
        if older_than.total_seconds() < 0:
            raise Invalid("older_than: must not be negative.", details=[{"field": "older_than", "message": "negative"}])
        cutoff = self._clock.now() - older_than
        pruned = 0
        while (n := await self._store.prune_jobs(cutoff, batch)) > 0:
            pruned += n
            if n < batch:
                break
        return pruned

    async def due(self, *, limit: int = 500) -> Sequence[str]:
        """The ids of jobs whose next attempt, lease end or timeout has come (for the scheduler)."""
        return await self._store.due_jobs(self._clock.now(), limit)

    async def advance(self, job_id: str) -> bool:
        """Do what is due for the job now: start a scheduled retry, expire a lease, time it out. False if nothing."""
        now = self._clock.now()
        rand = random.random()
        actor = self.actor

        current = await self._store.get_job(job_id)
        predecessors = await self._predecessors(current) if current.status is S.PLANNING else {}

        def rule(job: Job, ctx: EventContext) -> JobChange:
            context = ctx.model_copy(update={"actor_id": actor}) if actor else ctx
            if job.status.is_terminal:
                return JobChange(job, [])
            if job.status is S.PLANNING and predecessors:
                broken = [(p, st) for p, st in predecessors.items() if st in (S.FAILED, S.CANCELLED, None)]
                if broken:
                    p, st = broken[0]
                    reason = f"was {st.value}" if st is not None else "was deleted"
                    error = JobError(message=f"Predecessor {p} {reason}.", kind="error")
                    new = job.model_copy(update={"status": S.FAILED, "finished_at": now, "updated_at": now,
                                                 "error": error})
                    return JobChange(new, [NewEvent(topics.JOB_FAILED, context,
                                                    {**job_payload(new), "willRetry": False}, now)])
                if all(st is S.COMPLETE for st in predecessors.values()):
                    if job.trigger is JobTrigger.MANUAL:
                        new = job.model_copy(update={"status": S.CREATED, "updated_at": now})
                        return JobChange(new, [NewEvent(topics.JOB_UPDATED, context, job_payload(new), now)])
                    new = job.model_copy(update={"status": S.READY, "updated_at": now})
                    return JobChange(new, [NewEvent(topics.JOB_READY, context, job_payload(new), now)])
                return JobChange(job, [])
            if now >= deadline(job):
                error = JobError(message=f"Timed out after {job.timeout_seconds}s.", kind="timeout")
                new = job.model_copy(update={"status": S.FAILED, "finished_at": now, "updated_at": now,
                                             "lease_expires_at": None, "next_attempt_at": None,
                                             "error": error.model_copy(update={"attempt": job.attempt})})
                return JobChange(new, [NewEvent(topics.JOB_FAILED, context, {**job_payload(new), "willRetry": False},
                                                now)])
            if job.status is S.SCHEDULED and job.next_attempt_at is not None and now >= job.next_attempt_at:
                new = job.model_copy(update={"status": S.READY, "next_attempt_at": None, "updated_at": now})
                return JobChange(new, [NewEvent(topics.JOB_READY, context, job_payload(new), now)])
            if job.status is S.EXECUTING and job.lease_expires_at is not None and now >= job.lease_expires_at:
                error = JobError(message=f"The worker running attempt {job.attempt} stopped renewing its lease.",
                                 kind="lease_expired", retryable=True)
                new = job.model_copy(update={**_failure(job, error, now, rand), "updated_at": now})
                payload = {**job_payload(new), "willRetry": new.status is S.SCHEDULED}
                return JobChange(new, [NewEvent(topics.JOB_FAILED, context, payload, now)])
            return JobChange(job, [])

        _, events = await self._store.change_job(job_id, rule)
        return bool(events)

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
