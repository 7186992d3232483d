"""The job state machine (DESIGN.md §2): its moves, as pure rules.

A rule is a function from the job as it is to the job as it becomes plus the events that report it;
the store runs each inside one transaction, so a move either happens whole, with its events, or not at
all. JobService (jobs.py) builds its moves from these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from listener import topics
from listener.errors import Conflict, Invalid
from listener.models import MAX_DATE, Event, EventContext, Job, JobError, JobStatus, JobTrigger, RetryPolicy
from listener.platform.store.base import JobChange, JobRule, NewEvent, NoSlot
from listener.types import UNSET

__all__ = [
    "ACTIVE",
    "ADMIT",
    "ANNOUNCE",
    "DELETE",
    "ENDED_TOPICS",
    "EXECUTE",
    "PART_TOPICS",
    "Events",
    "Inserts",
    "Move",
    "S",
    "as_list",
    "eta",
    "failure",
    "fence",
    "fields_set",
    "given",
    "hold",
    "job_context",
    "job_payload",
    "lease_end",
    "lease_lost",
    "plan",
    "unknown_predecessor",
]

S = JobStatus
ACTIVE = frozenset({S.CREATED, S.PLANNING, S.SCHEDULED, S.READY, S.EXECUTING})
ENDED_TOPICS = frozenset({topics.JOB_COMPLETED, topics.JOB_FAILED, topics.JOB_CANCELLED, topics.JOB_DELETED})
# What a part's parent recounts on: a part progressed, ended or went away.
PART_TOPICS = ENDED_TOPICS | {topics.JOB_UPDATED}

Events = list[Event]
Inserts = list[tuple[Job, EventContext, list[NewEvent]]]


def job_context(job: Job, base: EventContext | None = None) -> EventContext:
    """The context every event about `job` carries."""
    base = base or EventContext()
    return base.model_copy(
        update={"job_id": job.id, "job": job.job, "domain": job.type, "operation": job.operation}
    )


def job_payload(job: Job) -> dict[str, Any]:
    # `_value_`, not `.value`: on Python 3.11 an enum's `.value` is a descriptor call (0.8 µs), and every
    # event of every move builds a payload.
    payload: dict[str, Any] = {
        "status": job.status._value_,
        "progress": job.progress,
        "processed": job.processed,
        "total": job.total,
        "info": job.info,
        "mode": job.mode._value_,
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
    if job.priority:  # what a worker's Runner orders the job:ready events it holds by
        payload["priority"] = job.priority
    if job.concurrency_key is not None:
        payload["concurrencyKey"] = job.concurrency_key
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


def fence(job: Job, attempt: int | None, move: str) -> None:
    if attempt is not None and attempt != job.attempt:
        raise Conflict(f"Cannot {move} job {job.id}: attempt {attempt} is over (the job is on attempt "
                       f"{job.attempt}, {job.status.value}).",
                       details={"jobId": job.id, "status": job.status.value, "move": move, "attempt": attempt})


def failure(job: Job, error: JobError, now: datetime, rand: float) -> dict[str, Any]:
    """The changes of a failed attempt: a retry is scheduled while the policy has attempts left."""
    lease = {"lease_expires_at": None, "error": error.model_copy(update={"attempt": job.attempt})}
    if error.retryable and job.attempt < job.max_attempts:
        policy = job.retry or RetryPolicy()
        return {**lease, "status": S.SCHEDULED,
                "next_attempt_at": now + timedelta(seconds=policy.delay(job.attempt, rand))}
    return {**lease, "status": S.FAILED, "finished_at": now}


def lease_lost(job: Job, ctx: EventContext, now: datetime) -> JobChange:
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


def lease_end(job: Job, now: datetime) -> datetime | None:
    """When the job's lease ends if renewed now; a job waiting on its parts holds no lease (no one runs it)."""
    return None if job.parts is not None else now + timedelta(seconds=job.lease_seconds)


def eta(now: datetime, seconds: float) -> datetime | None:
    """`seconds` from now; None (no estimate) past the last date there is (1 of 10**15 items done in a second)."""
    return now + timedelta(seconds=seconds) if seconds <= (MAX_DATE - now).total_seconds() else None


def hold(rule: JobRule, slot: NoSlot) -> JobRule:
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


def fields_set(model: Any) -> dict[str, Any]:
    """The fields given to a body (its `model_fields_set`), with their values."""
    return {name: getattr(model, name) for name in model.model_fields_set}


class Move:
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



def plan(job: Job, ctx: EventContext, predecessors: dict[str, JobStatus | None], now: datetime,
         actor: str | None) -> JobChange:
    """A job in planning once its predecessors stand as given: it starts, fails, or keeps waiting."""
    if job.status is not S.PLANNING:
        return JobChange(job, [])
    context = ctx.model_copy(update={"actor_id": actor}) if actor else ctx
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


def as_list(value: Any) -> list[Any]:
    """A filter's value as a list: None is none, a string is one."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def given(**values: Any) -> dict[str, Any]:
    """The keyword arguments given, leaving out those left UNSET (STYLE.md rule 5)."""
    return {k: v for k, v in values.items() if v is not UNSET}


EXECUTE = Move("execute", {S.CREATED}, topics.JOB_READY, lambda job: {"status": S.READY},
               hint=" Only a manual job that has not started can be executed.")


def _admitted(job: Job) -> dict[str, Any]:
    if job.waiting_for is None:
        raise Conflict(f"Job {job.id} is not waiting for a slot.", details={"jobId": job.id, "move": "start"})
    return {"status": S.READY, "waiting_for": None, "info": None}


ADMIT = Move("start", {S.SCHEDULED}, topics.JOB_READY, _admitted)
ANNOUNCE = Move("announce", {S.READY}, topics.JOB_READY, lambda job: {}, touch=False)
DELETE = Move("delete", ACTIVE - {S.EXECUTING} | {S.COMPLETE, S.FAILED, S.CANCELLED}, topics.JOB_DELETED,
              lambda job: {}, hint=" Cancel it first.")
