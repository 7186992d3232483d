"""The job state machine (DESIGN.md §2) and JobService, the jobs part of the in-process Api.

The rules are pure functions from the job as it is to the job as it becomes plus
the events that report it; the store runs each inside one transaction, so a
move either happens whole, with its events, or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import anyio

from listener import status_words, topics
from listener.errors import Conflict, Gone, Invalid, NotFound
from listener.models import (
    MAX_DATE,
    Event,
    EventContext,
    Job,
    JobAck,
    JobAttach,
    JobCancel,
    JobCheckpoint,
    JobComplete,
    JobCreate,
    JobData,
    JobError,
    JobErrors,
    JobFail,
    JobFile,
    JobHeartbeat,
    JobItemError,
    JobListQuery,
    JobParts,
    JobSettings,
    JobSplit,
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
from listener.platform.csvs import csv_chunks
from listener.platform.eventlog import EventLog, ready_between
from listener.platform.store.base import (
    Idempotency,
    IdempotentReplay,
    JobChange,
    JobQuery,
    JobRule,
    NewEvent,
    NoSlot,
    Store,
    StoredObject,
    deadline,
)
from listener.types import UNSET, Clock

__all__ = ["DEFAULT_DATA_TTL", "JobService", "unknown_predecessor"]

DEFAULT_DATA_TTL = timedelta(hours=24)

log = logging.getLogger("listener.jobs")

# Retry jitter draws from its own generator: the scheduler runs beside whatever else uses `random`.
_jitter = random.Random()

_ANNOUNCE_PAGE = 500
"""Ready jobs read at a time when a worker starts (see announce_waiting)."""

S = JobStatus
_ACTIVE = frozenset({S.CREATED, S.PLANNING, S.SCHEDULED, S.READY, S.EXECUTING})
_ENDED_TOPICS = frozenset({topics.JOB_COMPLETED, topics.JOB_FAILED, topics.JOB_CANCELLED, topics.JOB_DELETED})
# What a part's parent recounts on: a part progressed, ended or went away.
_PART_TOPICS = _ENDED_TOPICS | {topics.JOB_UPDATED}

Events = list[Event]
Inserts = list[tuple[Job, EventContext, list[NewEvent]]]

ContextResolver = Callable[[str], Awaitable[EventContext]]
"""Given a job's source id, the ids of what it belongs to (workbook, space, sheet...)."""


def job_context(job: Job, base: EventContext | None = None) -> EventContext:
    """The context every event about `job` carries."""
    base = base or EventContext()
    return base.model_copy(
        update={"job_id": job.id, "job": job.job, "domain": job.type, "operation": job.operation}
    )


def job_payload(job: Job) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "status": job.status.value,
        "progress": job.progress,
        "processed": job.processed,
        "total": job.total,
        "info": job.info,
        "mode": job.mode.value,
        "isPart": job.is_part,
        "managed": job.managed,
        "createdBy": job.created_by,
    }
    if job.is_part:
        payload["part"] = job.part
        payload["parentId"] = job.parent_id
    if job.parts is not None:
        payload["parts"] = job.parts.model_dump(include={"total", "completed", "failed", "cancelled"})
    if job.waiting_for is not None:
        payload["waitingFor"] = job.waiting_for
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


def unknown_predecessor(job_id: str) -> Invalid:
    """What naming a job that does not exist as a predecessor answers (and, over REST, one the caller may not see)."""
    return Invalid(f"predecessorIds: job {job_id} does not exist.",
                   details=[{"field": "predecessorIds", "message": "unknown job"}])


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


def _lease_lost(job: Job, ctx: EventContext, now: datetime) -> JobChange:
    """A worker died holding the job (its lease ran out): not the job's failure, so it goes back to ready,
    resuming from its checkpoint, and keeps its attempts for real failures. Only a job whose workers keep
    dying (`max_lease_expirations` times already) fails, so that a job that kills every worker still ends."""
    lost = job.lease_expirations + 1
    message = f"The worker running attempt {job.attempt} stopped renewing its lease"
    if lost > job.max_lease_expirations:
        error = JobError(message=f"{message}; {lost} workers died running this job, so it fails "
                                 f"(max_lease_expirations is {job.max_lease_expirations}).",
                         kind="lease_expired", attempt=job.attempt)
        new = job.model_copy(update={"status": S.FAILED, "finished_at": now, "updated_at": now, "error": error,
                                     "lease_expires_at": None, "lease_expirations": lost})
        return JobChange(new, [NewEvent(topics.JOB_FAILED, ctx, {**job_payload(new), "willRetry": False}, now)])
    error = JobError(message=f"{message}; the job is ready again ({lost} of {job.max_lease_expirations} "
                             "lost workers allowed).", kind="lease_expired", retryable=True, attempt=job.attempt)
    new = job.model_copy(update={"status": S.READY, "updated_at": now, "error": error, "lease_expires_at": None,
                                 "lease_expirations": lost, "max_attempts": job.max_attempts + 1})
    return JobChange(new, [NewEvent(topics.JOB_READY, ctx, job_payload(new), now)])


def _lease_end(job: Job, now: datetime) -> datetime | None:
    """When the job's lease ends if renewed now; a job waiting on its parts holds no lease (no one runs it)."""
    return None if job.parts is not None else now + timedelta(seconds=job.lease_seconds)


def _eta(now: datetime, seconds: float) -> datetime | None:
    """`seconds` from now; None (no estimate) past the last date there is (1 of 10**15 items done in a second)."""
    return now + timedelta(seconds=seconds) if seconds <= (MAX_DATE - now).total_seconds() else None


def _hold(rule: JobRule, slot: NoSlot) -> JobRule:
    """`rule`, except that a job it would make ready waits in `scheduled` for its type's limit instead."""
    def held(job: Job, ctx: EventContext) -> JobChange:
        change = rule(job, ctx)
        new = change.job
        if new is None or new.status is not S.READY:
            return change
        new = new.model_copy(update={"status": S.SCHEDULED, "waiting_for": slot.reason, "next_attempt_at": None,
                                     "info": slot.message})
        events = [NewEvent(topics.JOB_UPDATED, e.context, job_payload(new), e.created_at)
                  if e.topic == topics.JOB_READY else e for e in change.events]
        return JobChange(new, events, change.inserts)

    return held


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
        touch: bool = True,
    ) -> None:
        self.name, self.allowed, self.topic, self.apply, self.hint = name, frozenset(allowed), topic, apply, hint
        self.touch = touch  # False: only an event is emitted, and the job (its updatedAt too) stays as it was

    def rule(self, now: datetime, actor: str | None) -> Callable[[Job, EventContext], JobChange]:
        def rule(job: Job, ctx: EventContext) -> JobChange:
            if job.status not in self.allowed:
                allowed = ", ".join(sorted(s.value for s in self.allowed))
                raise Conflict(
                    f"Cannot {self.name} job {job.id} ({job.job}): it is {job.status.value}, "
                    f"and {self.name} needs one of: {allowed}.{self.hint}",
                    details={"jobId": job.id, "status": job.status.value, "move": self.name},
                )
            new = job.model_copy(update={**self.apply(job), "updated_at": now}) if self.touch else job
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
        *,
        data_ttl: timedelta = DEFAULT_DATA_TTL,
    ) -> None:
        self.data_ttl = data_ttl
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
        job, events = await self._change(job_id, move.rule(self._clock.now(), self.actor))
        await self._follow(events)
        assert job is not None
        return self._bind(job)

    async def _change(self, job_id: str, rule: JobRule) -> tuple[Job | None, Events]:
        """Run `rule` on the job; if it would start a job whose type is at its limit, the job waits instead."""
        try:
            return await self._store.change_job(job_id, rule)
        except NoSlot as slot:
            return await self._store.change_job(job_id, _hold(rule, slot))

    async def _follow(self, events: Sequence[Event]) -> None:
        """What the platform does after a change: start waiting jobs when slots free up, recount a part's
        parent, start the next of sequential parts, cancel the parts of a parent that ended.

        Each is its own transaction; should one be lost (a crash in between), the scheduler's sweep
        does it (it promotes waiting jobs and recounts parents every time). Follow-ups of follow-ups
        are queued here, not recursed into, so a long chain of parts cannot exhaust the stack.
        """
        queue = [e for e in events if e.topic != topics.JOB_CREATED]
        while queue:
            event = queue.pop(0)
            try:
                queue.extend(await self._follow_one(event))
            except (Conflict, NotFound):
                pass  # someone else got there first
            except Exception:
                log.exception("A follow-up of event %s (%s) failed; the scheduler's sweep will redo it",
                              event.id, event.topic)

    async def _follow_one(self, event: Event) -> Events:
        more: Events = []
        payload, key = event.payload, event.context.job
        limits = self._store.limits().get(key or "")
        if limits is not None and event.topic in _ENDED_TOPICS and key is not None:
            more += await self._promote(key)
        parent_id = payload.get("parentId")
        if parent_id and event.topic in _PART_TOPICS:
            more += await self._recount(parent_id)
            if event.topic in _ENDED_TOPICS and event.topic != topics.JOB_DELETED:
                more += await self._start_next_part(parent_id)
        parts = payload.get("parts")
        if parts and event.topic in _ENDED_TOPICS and parts["completed"] + parts["failed"] + parts["cancelled"] < \
                parts["total"] and event.context.job_id is not None:
            more += await self._cancel_parts(event.context.job_id)
        return more

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
        max_lease_expirations: int | None = None,
        run_at: datetime | None = None,
        predecessor_ids: Sequence[str] | None = None,
    ) -> Job:
        """Create a job. With trigger `immediate` (the default) it is ready at once and job:ready fires."""
        return await self.create_from(job_spec(
            type=type, operation=operation, source=source, destination=destination, trigger=trigger, mode=mode,
            managed=managed, info=info, metadata=metadata, input=input, retry=retry, timeout_seconds=timeout_seconds,
            lease_seconds=lease_seconds, max_lease_expirations=max_lease_expirations, run_at=run_at,
            predecessor_ids=predecessor_ids))

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
        settings = self._store.limits().get(job.job)
        if settings is not None:
            # A type's defaults, for what the job did not say itself.
            defaults = {name: value for name in ("timeout_seconds", "max_lease_expirations")
                        if (value := getattr(settings, name)) is not None and name not in spec.model_fields_set}
            if defaults:
                job = job.model_copy(update=defaults)
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
            ready = job.model_copy(update={"status": S.READY})
            queued = settings is not None and await self._store.waiting_jobs(job.job, 1)
            try:
                if queued:  # first come, first served: it waits behind those already waiting
                    raise NoSlot("concurrency" if settings and settings.max_running else "rate",
                                 f"Waiting: earlier {job.job} jobs are waiting for their turn.")
                await self._store.insert_job(ready, ctx, [*events, NewEvent(topics.JOB_READY, ctx,
                                                                            job_payload(ready), now)], idempotency)
                return self._bind(ready)
            except NoSlot as slot:
                job = job.model_copy(update={"status": S.SCHEDULED, "waiting_for": slot.reason, "info": slot.message})
                events.append(NewEvent(topics.JOB_UPDATED, ctx, job_payload(job), now))
            await self._store.insert_job(job, ctx, events, idempotency)
            if queued:
                await self._follow(await self._promote(job.job))
            return self._bind(job)
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
                    raise unknown_predecessor(predecessor) from None
                statuses[predecessor] = None
        return statuses

    async def list(
        self,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] | None = None,
        type: JobType | str | Sequence[JobType | str] | None = None,
        operation: str | Sequence[str] | None = None,
        created_by: str | None = None,
        parent_id: str | None = None,
        is_part: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Job]:
        """Jobs, newest first, filtered by status, type, operation and creator.

        `status` takes our statuses and Cocoa Canvas's, Fiddler's and Zoltar's words, in any case
        (`SUCCESS`, `pending`, `RETRY`, `TIMEOUT`: listener.status_words); `type` any job type.
        `parent_id` lists a split job's parts, in part order; `is_part=False` leaves parts out.
        """
        query = parse(
            JobListQuery,
            {"status": _as_list(status), "type": _as_list(type), "operation": _as_list(operation),
             "created_by": created_by, "parent_id": parent_id, "is_part": is_part, "limit": limit, "offset": offset},
            what="job query",
        )
        words = status_words.resolve(query.status)
        items, total = await self._store.list_jobs(
            JobQuery([S(s) for s in words.statuses], query.type, query.operation, query.created_by, query.parent_id,
                     query.is_part, query.limit, query.offset, words.details, [S(s) for s in words.undetailed])
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
                    changes["estimated_completion_at"] = _eta(now, elapsed * max(total_ - done, 0) / done)
            return {**changes, "lease_expires_at": _lease_end(job, now)}

        return await self._move(job_id, _Move("update", {S.EXECUTING}, topics.JOB_UPDATED, apply))

    async def heartbeat(self, job_id: str, *, attempt: int | None = None) -> Job:
        """The worker running the job is alive: renew its lease (no event). Conflict once the attempt is over."""
        body = parse(JobHeartbeat, _body(attempt=attempt))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            _fence(job, body.attempt, "heartbeat")
            return {"lease_expires_at": _lease_end(job, now)}

        return await self._move(job_id, _Move("heartbeat", {S.EXECUTING}, None, apply))

    async def checkpoint(self, job_id: str, state: dict[str, Any], *, attempt: int | None = None) -> Job:
        """Save a small JSON state of an executing job (renews its lease); a retried attempt resumes from it."""
        body = parse(JobCheckpoint, _body(state=state, attempt=attempt))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            _fence(job, body.attempt, "checkpoint")
            return {"checkpoint": body.state, "lease_expires_at": _lease_end(job, now)}

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
            # An earlier attempt's failure is history now (its job:failed event keeps it).
            return {"status": S.COMPLETE, "progress": 100, "finished_at": now, "lease_expires_at": None, "error": None,
                    **changes}

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
        rand = _jitter.random()

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

    async def announce(self, job_id: str) -> bool:
        """Emit job:ready again for a job that is still ready, because the worker it went to is gone.

        False (and nothing written) when the job is no longer ready: someone claimed it meanwhile.
        """
        try:
            await self._move(job_id, _ANNOUNCE)
        except (Conflict, NotFound):
            return False
        return True

    async def announce_waiting(self, wanted: Callable[[Event], bool], *, after: int | None = None) -> int:
        """Emit job:ready again, oldest first, for every job still ready whose job:ready `wanted` would take.

        Ready jobs are a queue, not only a broadcast: a worker that starts gets the jobs that became
        ready before it (no worker was listening, or they went to a busy worker of its agent).
        `after` is where the worker's stream starts: the jobs whose job:ready lies past it reach the
        worker anyway and are left alone. Returns how many were announced.
        """
        coming: dict[str, None] = {}
        position, announced, scanned = 0, 0, after
        while True:
            page = await self._store.ready_jobs(position, _ANNOUNCE_PAGE)
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
                return announced
            position = page[-1][0]

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
                    "waiting_for": None, **_given(body)}

        return await self._move(job_id, _Move("cancel", _ACTIVE, topics.JOB_CANCELLED, apply))

    async def log_errors(self, job_id: str, errors: Sequence[JobItemError | dict[str, Any]]) -> int:
        """Append entries (`item`, `message`) to the job's error log, which stays with it whatever its end."""
        body = parse(JobErrors, {"errors": list(errors)}, what="errors")
        now = self._clock.now()
        stamped: list[JobItemError] = [e if e.created_at else e.model_copy(update={"created_at": now})
                                       for e in body.errors]
        return await self._store.add_job_errors(job_id, stamped)

    async def log_error(self, job_id: str, *, message: str, item: str | None = None) -> int:
        """Append one entry to the job's error log; returns the log's length."""
        return await self.log_errors(job_id, [{"item": item, "message": message}])

    async def errors(self, job_id: str, *, limit: int = 100, offset: int = 0) -> Page[JobItemError]:
        """A page of the job's error log, oldest first."""
        await self._store.get_job(job_id)
        items, total = await self._store.job_errors(job_id, limit, offset)
        return Page[JobItemError](items=items, total=total, limit=limit, offset=offset)

    # -- files and data ---------------------------------------------------------

    async def attach_file(self, job_id: str, file_id: str, *, role: str) -> Job:
        """Attach an uploaded file to the job as its `input`, `output` or `error_report` (in any state)."""
        body = parse(JobAttach, {"file_id": file_id, "role": role}, what="attachment")
        try:
            stored = await self._store.get_object(body.file_id, "file")
        except NotFound:
            raise Invalid(f"fileId: file {body.file_id} does not exist.",
                          details=[{"field": "fileId", "message": "unknown file"}]) from None
        attached = JobFile(file_id=body.file_id, role=body.role, name=stored.doc.get("name"))

        def apply(job: Job) -> dict[str, Any]:
            others = [f for f in job.files if (f.file_id, f.role) != (attached.file_id, attached.role)]
            return {"files": [*others, attached]}

        job = await self._move(job_id, _Move("attach_file", set(S), topics.JOB_UPDATED, apply))
        if job.created_by and job.created_by != stored.doc.get("createdBy"):
            # Whoever started the job may download what is attached to it (an agent's error report).
            reader = job.created_by

            def share(obj: StoredObject) -> tuple[dict[str, Any] | None, list[NewEvent]]:
                readers = obj.doc.get("readers", [])
                return ({**obj.doc, "readers": [*readers, reader]} if reader not in readers else obj.doc), []

            await self._store.change_object(body.file_id, "file", share)
        return job

    async def write_data(self, job_id: str, rows: Sequence[dict[str, Any]]) -> int:
        """Append result rows to the job's data (its data.csv); returns how many rows it has."""
        body = parse(JobData, {"rows": list(rows)}, what="job data")
        now = self._clock.now()

        def rule(job: Job, ctx: EventContext) -> JobChange:
            if job.status.is_terminal and job.finished_at and now >= job.finished_at + self.data_ttl:
                raise Conflict(f"The data of job {job.id} expired at {(job.finished_at + self.data_ttl).isoformat()}.",
                               details={"jobId": job.id, "status": job.status.value, "move": "write_data"})
            new = job.model_copy(update={"data_rows": job.data_rows + len(body.rows), "updated_at": now})
            return JobChange(new, [], data=body.rows)

        job, _ = await self._store.change_job(job_id, rule)
        assert job is not None
        return job.data_rows

    def data_expires_at(self, job: Job) -> datetime | None:
        """When the job's data stops being served: `data_ttl` after it ended (None while it runs)."""
        return job.finished_at + self.data_ttl if job.finished_at is not None else None

    async def data(self, job_id: str, *, page: int = 1000) -> tuple[Sequence[str], AsyncIterator[Sequence[Any]]]:
        """The job's data as columns (every key, in the order first seen) and rows of values.

        NotFound "no job data" if it wrote none, Gone once it has expired.
        """
        job = await self.get(job_id)
        if job.data_rows == 0:
            raise NotFound(f"Job {job.id} has no job data.", details={"jobId": job.id})
        expires = self.data_expires_at(job)
        if expires is not None and self._clock.now() >= expires:
            raise Gone(f"The data of job {job.id} expired at {expires.isoformat()}.",
                       details={"jobId": job.id, "expiredAt": expires.isoformat()})
        columns: dict[str, None] = {}
        after = 0
        while batch := await self._store.job_data(job.id, after, page):
            for _, row in batch:
                columns.update(dict.fromkeys(row))
            after = batch[-1][0]
        header = list(columns)

        async def rows() -> AsyncIterator[Sequence[Any]]:
            after = 0
            while batch := await self._store.job_data(job.id, after, page):
                for _, row in batch:
                    yield [row.get(c) for c in header]
                after = batch[-1][0]

        return header, rows()

    async def errors_csv(self, job_id: str) -> AsyncIterator[bytes]:
        """The job's error log as CSV: item, message, time (the error report)."""
        await self._store.get_job(job_id)

        async def rows() -> AsyncIterator[Sequence[Any]]:
            offset = 0
            while True:
                items, _ = await self._store.job_errors(job_id, 1000, offset)
                for e in items:
                    yield [e.item, e.message, e.created_at.isoformat() if e.created_at else ""]
                if len(items) < 1000:
                    return
                offset += len(items)

        return csv_chunks(["item", "message", "time"], rows())

    async def prune_data(self) -> int:
        """Delete the rows of job data that has expired (the scheduler does, hourly); returns how many."""
        return await self._store.prune_job_data(self._clock.now() - self.data_ttl)

    async def data_csv(self, job_id: str) -> AsyncIterator[bytes]:
        """The job's data as CSV (NotFound without data, Gone once expired)."""
        header, rows = await self.data(job_id)
        return csv_chunks(header, rows)

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
        actor = self.actor

        current = await self._store.get_job(job_id)
        predecessors = await self._predecessors(current) if current.status is S.PLANNING else {}

        def rule(job: Job, ctx: EventContext) -> JobChange:
            context = ctx.model_copy(update={"actor_id": actor}) if actor else ctx
            if job.status.is_terminal:
                return JobChange(job, [])
            if job.status is S.PLANNING and predecessors:
                return self._plan(job, ctx, predecessors, now)
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
                return _lease_lost(job, context, now)
            return JobChange(job, [])

        _, events = await self._change(job_id, rule)
        if current.parts is not None and current.parts.completed_at is None:
            events += await self._recount(job_id)
        await self._follow(events)
        return bool(events)

    # -- limits ---------------------------------------------------------------

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
                    _, added = await self._store.change_job(job_id, _ADMIT.rule(self._clock.now(), self.actor))
                except NoSlot:
                    return events
                except (Conflict, NotFound):
                    continue  # started, cancelled or deleted meanwhile
                events += added
            if len(waiting) < 50 or len(events) == before:
                return events

    # -- parts ----------------------------------------------------------------

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
        body = parse(JobSplit, _body(parts=parts if isinstance(parts, int) else list(parts),
                                     run_in_parallel=run_in_parallel, settle=settle, attempt=attempt), what="split")
        now = self._clock.now()
        actor = self.actor
        datas: list[dict[str, Any] | None] = [None] * body.parts if isinstance(body.parts, int) else list(body.parts)

        def rule(job: Job, ctx: EventContext) -> JobChange:
            if job.status is not S.EXECUTING:
                raise Conflict(f"Cannot split job {job.id} ({job.job}): it is {job.status.value}, and split needs "
                               "executing.", details={"jobId": job.id, "status": job.status.value, "move": "split"})
            _fence(job, body.attempt, "split")
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
            return self._plan(job, ctx, predecessors, now)

        _, events = await self._change(job_id, rule)
        return events

    async def _cancel_parts(self, parent_id: str) -> Events:
        """The parent ended before its parts: those not finished are cancelled."""
        events: Events = []
        unfinished, _ = await self._store.list_jobs(JobQuery(status=list(_ACTIVE), parent_id=parent_id, limit=1000))
        for part in unfinished:
            move = _Move("cancel", _ACTIVE, topics.JOB_CANCELLED, lambda job: {
                "status": S.CANCELLED, "finished_at": self._clock.now(), "lease_expires_at": None,
                "next_attempt_at": None, "waiting_for": None, "info": "Cancelled: its parent job ended."})
            try:
                _, added = await self._store.change_job(part.id, move.rule(self._clock.now(), self.actor))
            except (Conflict, NotFound):
                continue
            events += added
        return events

    def _plan(self, job: Job, ctx: EventContext, predecessors: dict[str, JobStatus | None], now: datetime) -> JobChange:
        """A job in planning once its predecessors stand as given: it starts, fails, or keeps waiting."""
        if job.status is not S.PLANNING:
            return JobChange(job, [])
        context = ctx.model_copy(update={"actor_id": self.actor}) if self.actor else ctx
        broken = [(p, st) for p, st in predecessors.items() if st in (S.FAILED, S.CANCELLED, None)]
        if broken:
            p, st = broken[0]
            reason = f"was {st.value}" if st is not None else "was deleted"
            error = JobError(message=f"Predecessor {p} {reason}.", kind="error")
            new = job.model_copy(update={"status": S.FAILED, "finished_at": now, "updated_at": now, "error": error})
            return JobChange(new, [NewEvent(topics.JOB_FAILED, context, {**job_payload(new), "willRetry": False}, now)])
        if all(st is S.COMPLETE for st in predecessors.values()):
            if job.trigger is JobTrigger.MANUAL:
                new = job.model_copy(update={"status": S.CREATED, "updated_at": now})
                return JobChange(new, [NewEvent(topics.JOB_UPDATED, context, job_payload(new), now)])
            new = job.model_copy(update={"status": S.READY, "updated_at": now})
            return JobChange(new, [NewEvent(topics.JOB_READY, context, job_payload(new), now)])
        return JobChange(job, [])

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
        _, events = await self._store.change_job(job_id, _DELETE.rule(self._clock.now(), self.actor))
        await self._follow(events)

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
def _admitted(job: Job) -> dict[str, Any]:
    if job.waiting_for is None:
        raise Conflict(f"Job {job.id} is not waiting for a slot.", details={"jobId": job.id, "move": "start"})
    return {"status": S.READY, "waiting_for": None, "info": None}


_ADMIT = _Move("start", {S.SCHEDULED}, topics.JOB_READY, _admitted)
_ANNOUNCE = _Move("announce", {S.READY}, topics.JOB_READY, lambda job: {}, touch=False)
_DELETE = _Move("delete", _ACTIVE - {S.EXECUTING} | {S.COMPLETE, S.FAILED, S.CANCELLED}, topics.JOB_DELETED,
                lambda job: {}, hint=" Cancel it first.")
