"""JobService, the jobs part of the in-process Api: creating jobs and moving them through their life.

The moves' rules are pure (moves.py); the store runs each inside one transaction. Split jobs
(parts.py), per-type limits (limits.py), priorities (priorities.py), ready jobs announced again
(ready_queue.py), a job's error log and data (job_data.py), the grid's counts (listing.py), bulk moves (bulk.py)
and dedupe keys and debounce (dedupe.py) are the parts of JobService kept in modules of their own.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    JobFail,
    JobHeartbeat,
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
from listener.platform.bulk import BulkMixin
from listener.platform.dedupe import DedupeMixin
from listener.platform.eventlog import EventLog
from listener.platform.job_data import JobDataMixin
from listener.platform.limits import LimitsMixin
from listener.platform.listing import ListingMixin, metadata_terms, store_query
from listener.platform.moves import (
    ACTIVE,
    DELETE,
    ENDED_TOPICS,
    EXECUTE,
    PART_TOPICS,
    Events,
    Move,
    S,
    as_list,
    eta,
    failure,
    fence,
    fields_set,
    given,
    hold,
    job_context,
    job_payload,
    lease_end,
    lease_lost,
    plan,
    unknown_predecessor,
)
from listener.platform.parts import PartsMixin
from listener.platform.priorities import PrioritiesMixin
from listener.platform.ready_queue import ReadyQueueMixin
from listener.platform.retry_items import RetryItemsMixin
from listener.platform.store.base import (
    Idempotency,
    IdempotentReplay,
    JobChange,
    JobRule,
    NewEvent,
    NoSlot,
    Store,
    deadline,
)
from listener.types import UNSET, Clock

__all__ = ["DEFAULT_DATA_TTL", "JobService", "unknown_predecessor"]

DEFAULT_DATA_TTL = timedelta(hours=24)

log = logging.getLogger("listener.jobs")

# Retry jitter draws from its own generator: the scheduler runs beside whatever else uses `random`.
_jitter = random.Random()

ContextResolver = Callable[[str], Awaitable[EventContext]]
"""Given a job's source id, the ids of what it belongs to (workbook, space, sheet...)."""


class JobService(PartsMixin, LimitsMixin, PrioritiesMixin, ReadyQueueMixin, JobDataMixin, RetryItemsMixin,
                 ListingMixin, BulkMixin, DedupeMixin):
    """jobs.create / execute / ack / update / complete / fail / cancel / acknowledge_outcome / counts / bulk / ..."""

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

    async def _move(self, job_id: str, move: Move) -> Job:
        job, events = await self._change(job_id, move.rule(self._clock.now(), self.actor))
        await self._follow(events)
        assert job is not None
        return self._bind(job)

    async def _change(self, job_id: str, rule: JobRule) -> tuple[Job | None, Events]:
        """Run `rule` on the job; if it would start a job whose type is at its limit, the job waits instead."""
        try:
            return await self._store.change_job(job_id, rule)
        except NoSlot as slot:
            return await self._store.change_job(job_id, hold(rule, slot))

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
        if limits is not None and event.topic in ENDED_TOPICS and key is not None:
            more += await self._promote(key)
        parent_id = payload.get("parentId")
        if parent_id and event.topic in PART_TOPICS:
            more += await self._recount(parent_id)
            if event.topic in ENDED_TOPICS and event.topic != topics.JOB_DELETED:
                more += await self._start_next_part(parent_id)
        parts = payload.get("parts")
        if parts and event.topic in ENDED_TOPICS and parts["completed"] + parts["failed"] + parts["cancelled"] < \
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
        dedupe_key: str | None = None,
        debounce_seconds: float | None = None,
        priority: int | None = None,
        concurrency_key: str | None = None,
    ) -> Job:
        """Create a job. With trigger `immediate` (the default) it is ready at once and job:ready fires.

        A higher `priority` (-1000 to 1000; else its type's, else 0) is claimed first; `concurrency_key` is what
        its type's per-key limits count it by (a tenant, say).

        With a `dedupe_key`, while a job of this type:operation with the key waits to start (never acked),
        no job is added: the waiting job is returned, and with `debounce_seconds` it takes this input and
        starts that many seconds from now instead. `job.dedupe` says what happened (listener/platform/dedupe.py).
        """
        return await self.create_from(job_spec(
            type=type, operation=operation, source=source, destination=destination, trigger=trigger, mode=mode,
            managed=managed, info=info, metadata=metadata, input=input, retry=retry, timeout_seconds=timeout_seconds,
            lease_seconds=lease_seconds, max_lease_expirations=max_lease_expirations, run_at=run_at,
            predecessor_ids=predecessor_ids, dedupe_key=dedupe_key, debounce_seconds=debounce_seconds,
            priority=priority, concurrency_key=concurrency_key))

    async def create_from(self, spec: JobCreate, *, idempotency_key: str | None = None,
                          dedupe_scope: str | None = None) -> Job:
        """Create a job from a validated `JobCreate` (what `create` and actions use).

        With an `idempotency_key`, the same key and body from the same caller return the job created the
        first time; the same key with another body is Invalid (IETF idempotency-key draft). A `dedupe_key`
        is looked up among the jobs of `dedupe_scope` (None: the type's shared scope; REST gives a member's name).
        """
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 255:
                raise Invalid("Idempotency-Key: must be 1 to 255 characters.",
                              details=[{"field": "Idempotency-Key", "message": "length"}])
            digest = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()
            idempotency = Idempotency(self.actor or "", idempotency_key, digest)
            try:
                if spec.dedupe_key is not None:
                    return await self._create_deduped(spec, idempotency, dedupe_scope)
                return await self._create(spec, idempotency)
            except IdempotentReplay as replay:
                if not replay.same_body:
                    raise Invalid(f"Idempotency-Key: {idempotency_key!r} was used for another job with another body.",
                                  details=[{"field": "Idempotency-Key", "message": "reused"}]) from None
                return await self.get(replay.job_id)
        if spec.dedupe_key is not None:
            return await self._create_deduped(spec, None, dedupe_scope)
        return await self._create(spec, None)

    async def _create(self, spec: JobCreate, idempotency: Idempotency | None, *, retry_of: str | None = None,
                      dedupe_scope: str | None = None) -> Job:
        base = await self._resolve(spec.source) if spec.source else EventContext()
        now = self._clock.now()
        job = Job(id=new_id("jb"), created_by=self.actor, created_at=now, updated_at=now, **fields_set(spec))
        if retry_of is not None:
            job = job.model_copy(update={"retry_of": retry_of})
        if dedupe_scope is not None:
            job = job.model_copy(update={"dedupe_scope": dedupe_scope})
        if job.retry is not None:
            job = job.model_copy(update={"max_attempts": job.retry.max_attempts})
        settings = self._store.limits().get(job.job)
        if settings is not None:
            # A type's defaults, for what the job did not say itself.
            defaults = {name: value for name in ("timeout_seconds", "max_lease_expirations", "priority")
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
            # A type that limits its keys admits each job against its key (the keys take turns when slots free up).
            queued = settings is not None and not settings.per_key and await self._store.waiting_jobs(job.job, 1)
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
        search: str | None = None,
        metadata: Mapping[str, Any] | Sequence[str] | None = None,
        sort: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Job]:
        """Jobs, newest first, filtered by status, type, operation, creator, search and metadata.

        `status` takes our statuses and Cocoa Canvas's, Fiddler's and Zoltar's words, in any case
        (`SUCCESS`, `pending`, `RETRY`, `TIMEOUT`: listener.status_words); `type` any job type.
        `parent_id` lists a split job's parts, in part order; `is_part=False` leaves parts out.
        `search` is a job id or its start, else text of the info or error message; `metadata` a dict
        or `key=value` terms; `sort` a JobSort (`-ended`, `duration`, ...). See listener.jobcalls.JobFilter.
        """
        query = parse(
            JobListQuery,
            {"status": as_list(status), "type": as_list(type), "operation": as_list(operation),
             "created_by": created_by, "parent_id": parent_id, "is_part": is_part, "search": search,
             "metadata": metadata_terms(metadata), "sort": sort, "limit": limit, "offset": offset},
            what="job query",
        )
        return await self.list_from(query)

    async def list_from(self, query: JobListQuery) -> Page[Job]:
        """`list` for a validated query."""
        items, total = await self._store.list_jobs(store_query(query, sort=query.sort, limit=query.limit,
                                                               offset=query.offset))
        return Page[Job](items=[self._bind(j) for j in items], total=total, limit=query.limit, offset=query.offset)

    async def execute(self, job_id: str) -> Job:
        """Start a `manual` job: created → ready, and job:ready fires."""
        return await self._move(job_id, EXECUTE)

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
        body = parse(JobAck, given(info=info, progress=progress, estimated_completion_at=estimated_completion_at,
                                   retry=retry, lease_seconds=lease_seconds))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            changes = {k: v for k, v in fields_set(body).items() if k not in ("retry", "lease_seconds")}
            lease = body.lease_seconds if "lease_seconds" in body.model_fields_set else job.lease_seconds
            changes.update(status=S.EXECUTING, started_at=now, attempt=job.attempt + 1, next_attempt_at=None,
                           lease_seconds=lease, lease_expires_at=now + timedelta(seconds=lease))
            if body.retry is not None and job.retry is None:
                changes.update(retry=body.retry, max_attempts=body.retry.max_attempts)
            return changes

        return await self._move(job_id, Move("ack", {S.READY}, topics.JOB_UPDATED, apply))

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
        body = parse(JobUpdate, given(info=info, progress=progress, estimated_completion_at=estimated_completion_at,
                                      metadata=metadata, processed=processed, total=total, attempt=attempt))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            fence(job, body.attempt, "update")
            changes = {k: v for k, v in fields_set(body).items() if k != "attempt"}
            done, total_ = changes.get("processed", job.processed), changes.get("total", job.total)
            if done is not None and total_:
                changes.setdefault("progress", min(100, done * 100 // total_))
                elapsed = (now - job.started_at).total_seconds() if job.started_at else 0
                if done and elapsed > 0 and "estimated_completion_at" not in changes:
                    changes["estimated_completion_at"] = eta(now, elapsed * max(total_ - done, 0) / done)
            return {**changes, "lease_expires_at": lease_end(job, now)}

        return await self._move(job_id, Move("update", {S.EXECUTING}, topics.JOB_UPDATED, apply))

    async def heartbeat(self, job_id: str, *, attempt: int | None = None) -> Job:
        """The worker running the job is alive: renew its lease (no event). Conflict once the attempt is over."""
        body = parse(JobHeartbeat, given(attempt=attempt))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            fence(job, body.attempt, "heartbeat")
            return {"lease_expires_at": lease_end(job, now)}

        return await self._move(job_id, Move("heartbeat", {S.EXECUTING}, None, apply))

    async def checkpoint(self, job_id: str, state: dict[str, Any], *, attempt: int | None = None) -> Job:
        """Save a small JSON state of an executing job (renews its lease); a retried attempt resumes from it."""
        body = parse(JobCheckpoint, given(state=state, attempt=attempt))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            fence(job, body.attempt, "checkpoint")
            return {"checkpoint": body.state, "lease_expires_at": lease_end(job, now)}

        return await self._move(job_id, Move("checkpoint", {S.EXECUTING}, None, apply))

    async def complete(
        self,
        job_id: str,
        *,
        outcome: Outcome | dict[str, Any] | None = None,
        info: str | None = UNSET,  # type: ignore[assignment]
        attempt: int | None = None,
    ) -> Job:
        """Finish an executing job successfully, with an optional outcome for the person who started it."""
        body = parse(JobComplete, given(outcome=outcome, info=info, attempt=attempt))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            fence(job, body.attempt, "complete")
            changes = {k: v for k, v in fields_set(body).items() if k != "attempt"}
            # An earlier attempt's failure is history now (its job:failed event keeps it).
            return {"status": S.COMPLETE, "progress": 100, "finished_at": now, "lease_expires_at": None, "error": None,
                    **changes}

        return await self._move(job_id, Move("complete", {S.EXECUTING}, topics.JOB_COMPLETED, apply))

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
        body = parse(JobFail, given(outcome=outcome, info=info, error=error, kind=kind, retryable=retryable,
                                    attempt=attempt))
        now = self._clock.now()
        rand = _jitter.random()

        def apply(job: Job) -> dict[str, Any]:
            fence(job, body.attempt, "fail")
            message = body.error or (body.outcome and body.outcome.message) or body.info or "The job failed."
            changes = failure(job, JobError(message=message, kind=body.kind, retryable=body.retryable), now, rand)
            if body.outcome is not None:
                changes["outcome"] = body.outcome
            if "info" in body.model_fields_set:
                changes["info"] = body.info
            return changes

        return await self._move(job_id, Move("fail", {S.EXECUTING}, topics.JOB_FAILED, apply))

    async def retry(self, job_id: str) -> Job:
        """Run a failed job again by hand (the outcome's `retry` button): failed → ready, one more attempt allowed."""
        def apply(job: Job) -> dict[str, Any]:
            return {"status": S.READY, "finished_at": None, "next_attempt_at": None, "outcome": None,
                    "outcome_acknowledged_at": None, "max_attempts": max(job.max_attempts, job.attempt + 1)}

        return await self._move(job_id, Move("retry", {S.FAILED}, topics.JOB_READY, apply))

    async def cancel(self, job_id: str, *, info: str | None = UNSET) -> Job:  # type: ignore[assignment]
        """Cancel a job that has not ended; a handler running it should stop."""
        body = parse(JobCancel, given(info=info))
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            return {"status": S.CANCELLED, "finished_at": now, "lease_expires_at": None, "next_attempt_at": None,
                    "waiting_for": None, **fields_set(body)}

        return await self._move(job_id, Move("cancel", ACTIVE, topics.JOB_CANCELLED, apply))

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
                return plan(job, ctx, predecessors, now, self.actor)
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
                return lease_lost(job, context, now)
            return JobChange(job, [])

        _, events = await self._change(job_id, rule)
        if current.parts is not None and current.parts.completed_at is None:
            events += await self._recount(job_id)
        await self._follow(events)
        return bool(events)

    async def acknowledge_outcome(self, job_id: str) -> Job:
        """Record that the person saw the outcome of a finished job (job:outcome-acknowledged)."""
        now = self._clock.now()

        def apply(job: Job) -> dict[str, Any]:
            if job.outcome_acknowledged_at is not None:
                raise Conflict(f"The outcome of job {job.id} was already acknowledged.",
                               details={"jobId": job.id, "status": job.status.value, "move": "acknowledge_outcome"})
            return {"outcome_acknowledged_at": now}

        move = Move("acknowledge_outcome", {S.COMPLETE, S.FAILED}, topics.JOB_OUTCOME_ACKNOWLEDGED, apply)
        return await self._move(job_id, move)

    async def delete(self, job_id: str) -> None:
        """Delete a job that is not executing (cancel it first); job:deleted fires."""
        _, events = await self._store.change_job(job_id, DELETE.rule(self._clock.now(), self.actor))
        await self._follow(events)

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait until the job is complete, failed or cancelled and return it.

        Raises TimeoutError when `timeout` seconds pass first, NotFound if the job is deleted.
        """
        changed = anyio.Event()

        def on_batch(events: Sequence[Event]) -> None:
            if any(e.context.job_id == job_id and e.topic in ENDED_TOPICS for e in events):
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

