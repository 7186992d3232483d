"""The Store protocol: what the platform asks of a database, whichever backend.

Every write is one transaction that changes state and appends the events that
report it, so an event is never lost and never announced for a change that
rolled back. After the commit the store hands the committed events, in `seq`
order, to its publishers (the event log's in-process fan-out).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import anyio

from listener import status_words
from listener.errors import Conflict, NotFound
from listener.models import Event, EventContext, Job, JobItemError, JobSettings, JobStatus, Record
from listener.schedules import Schedule

__all__ = [
    "DEDUPE_WAITING",
    "DedupeHit",
    "Idempotency",
    "IdempotentReplay",
    "JobChange",
    "JobQuery",
    "JobRule",
    "NewEvent",
    "NoSlot",
    "ObjectChange",
    "PartStats",
    "Publisher",
    "RecordChanges",
    "RecordCounts",
    "RestoreMake",
    "ScheduleRule",
    "SnapshotMake",
    "Store",
    "StoredObject",
    "StoredUser",
    "StoredWebhook",
    "UserChange",
    "Write",
    "admission",
    "deadline",
    "dedupe_slot",
    "due_at",
    "duration",
    "job_exists",
    "job_not_found",
    "key_admission",
    "object_not_found",
    "occupies",
    "plan_restore",
    "publish",
    "record_not_found",
    "schedule_doc",
    "schedule_not_found",
    "settled",
    "status_detail",
    "user_exists",
    "user_not_found",
    "waits_for_slot",
    "webhook_not_found",
]

log = logging.getLogger("listener.store")


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended; the store gives it its id and `seq`."""

    topic: str
    context: EventContext
    payload: dict[str, Any]
    created_at: datetime

    def at(self, seq: int) -> Event:
        """The event as appended at `seq` (its id derives from the seq, which is unique per store)."""
        # Built from what the platform itself made, so not validated again (a hot path: every event).
        return Event.trusted(id=f"ev_{seq:012d}", seq=seq, topic=self.topic, context=self.context,
                             payload=self.payload, created_at=self.created_at)


@dataclass(slots=True)
class JobChange:
    """What a rule decided: the job's new state (None deletes it), the events to append, and new
    jobs to insert in the same transaction (a split's parts), each with its context and events."""

    job: Job | None
    events: list[NewEvent]
    inserts: list[tuple[Job, EventContext, list[NewEvent]]] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    """Result rows to append to the job's data (jobs.write_data)."""


class NoSlot(Exception):
    """The job's type is at its limit: it may not become ready now (nothing was written).

    `reason` is `concurrency` (as many as allowed are running) or `rate` (too many started in
    the last second; a start is possible again at `retry_at`); `key_concurrency` and `key_rate` say
    the same of the limits per concurrency key (`key` names it): the type's other keys may still start.
    """

    def __init__(self, reason: str, message: str, retry_at: datetime | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_at = retry_at
        self.key = key


def status_detail(job: Job) -> str | None:
    """The detail kept beside the job's status, so that `RETRY` and `TIMEOUT` are indexed too (status_words)."""
    return status_words.status_detail(job.status.value, job.attempt, job.error.kind if job.error else None)


DEDUPE_WAITING = frozenset({JobStatus.CREATED, JobStatus.PLANNING, JobStatus.SCHEDULED, JobStatus.READY})
"""The statuses in which a job that was never acked still waits to start, and so holds its dedupe key."""


def dedupe_slot(job: Job) -> tuple[str, str] | None:
    """The (scope, key) a job holds while it waits to start (never acked), else None (the `dedupe_*` columns).

    At most one job of a type:operation holds a (scope, key) at a time (a unique index on both stores). A
    job leaves the set once acked (its attempt counts from then on, so a retry or a lease lost does not
    bring it back) or ended, and never enters it again, so only an insert can take a key.
    """
    if job.dedupe_key is None or job.attempt or job.status not in DEDUPE_WAITING:
        return None
    return job.dedupe_scope or "", job.dedupe_key


class DedupeHit(Exception):
    """A job of the same type:operation already waits with this dedupe key (and scope): `job`, as stored."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.id)
        self.job = job


def occupies(job: Job | None) -> bool:
    """Whether the job holds one of its type's running slots (ready counts: it is about to run)."""
    return job is not None and job.status in (JobStatus.READY, JobStatus.EXECUTING)


def admission(settings: JobSettings, running: int, bucket: Sequence[Any] | None, now: float) -> float | None:
    """Whether one more job of a limited type may start: the tokens left after it, or NoSlot.

    `running` counts the type's jobs that occupy a slot now; `bucket` is the type's rate bucket as
    stored, its row (tokens, refilled_at) (None or NULLs: never used, so full). Returns the bucket's
    new level (None when the type has no rate limit).
    """
    tokens, refilled_at = bucket if bucket is not None else (None, None)
    if settings.max_running is not None and running >= settings.max_running:
        many = "one job" if settings.max_running == 1 else f"{settings.max_running} jobs"
        raise NoSlot("concurrency", f"Waiting: {settings.job} runs {many} at a time and {running} "
                                    f"{'is' if running == 1 else 'are'} running.")
    rate = settings.starts_per_second
    if rate is None:
        return None
    return _take_token(rate, tokens, refilled_at, now, "rate",
                       f"Waiting: {settings.job} starts at most {rate:g} jobs per second.", None)


def key_admission(settings: JobSettings, key: str, running: int, bucket: Sequence[Any] | None,
                  now: float) -> float | None:
    """`admission` for the limits per concurrency key: whether one more job of `key` may start.

    `running` counts the key's jobs of the type that occupy a slot; `bucket` is the key's rate bucket
    (job_keys: tokens, refilled_at). Returns the key bucket's new level (None: no rate per key), or NoSlot
    with reason `key_concurrency` or `key_rate`, naming the key.
    """
    tokens, refilled_at = bucket if bucket is not None else (None, None)
    limit = settings.max_running_per_key
    if limit is not None and running >= limit:
        many = "one job" if limit == 1 else f"{limit} jobs"
        raise NoSlot("key_concurrency", f"Waiting: {settings.job} runs {many} at a time per key, and {running} of "
                                        f"key {key} {'is' if running == 1 else 'are'} running.", key=key)
    rate = settings.starts_per_second_per_key
    if rate is None:
        return None
    return _take_token(rate, tokens, refilled_at, now, "key_rate",
                       f"Waiting: {settings.job} starts at most {rate:g} jobs per second per key ({key}).", key)


def _take_token(rate: float, tokens: float | None, refilled_at: float | None, now: float, reason: str,
                message: str, key: str | None) -> float:
    """A token bucket holding up to one second's worth (at least one): its level after one start, or NoSlot."""
    burst = max(1.0, rate)
    level = burst if tokens is None or refilled_at is None else min(burst, tokens + max(0.0, now - refilled_at) * rate)
    if level < 1:
        wait = (1 - level) / rate
        raise NoSlot(reason, message, datetime.fromtimestamp(now + wait, tz=UTC), key)
    return level - 1


@dataclass(frozen=True, slots=True)
class PartStats:
    """How a split job's parts stand: how many in each status, and the progress of those not ended."""

    by_status: dict[JobStatus, int]
    progress: int
    """The sum of the progress of the parts that have not ended."""
    failed_parts: list[int]
    """The numbers of the parts that failed or were cancelled, in order."""

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def deadline(job: Job) -> datetime:
    """When the job times out: `timeout_seconds` after it was created, or after its `run_at`."""
    return (job.run_at or job.created_at) + timedelta(seconds=job.timeout_seconds)


def duration(job: Job) -> float | None:
    """Seconds from the job's start (or creation, if it never started) to its end (Zoltar's ΔT); None until it ends."""
    if job.finished_at is None:
        return None
    return (job.finished_at - (job.started_at or job.created_at)).total_seconds()


def waits_for_slot(job: Job) -> bool:
    """Whether the job waits in `scheduled` for its type's limit (the `waiting` column)."""
    return job.status is JobStatus.SCHEDULED and job.waiting_for is not None


def due_at(job: Job) -> datetime | None:
    """When something must happen to the job without anyone asking: its next attempt, lease end or timeout."""
    if job.status.is_terminal:
        return None
    end = deadline(job)
    if job.status is JobStatus.PLANNING:
        return job.created_at  # waiting on predecessors: looked at by every sweep
    if job.parts is not None and job.parts.completed_at is None:
        return job.created_at  # waiting on its parts: every sweep recounts them, in case a count was missed
    if waits_for_slot(job):
        return end  # waits for its type's limit: a slot freeing up, or every sweep, starts it
    if job.status is JobStatus.SCHEDULED and job.next_attempt_at is not None:
        return min(job.next_attempt_at, end)
    if job.status is JobStatus.EXECUTING and job.lease_expires_at is not None:
        return min(job.lease_expires_at, end)
    return end


_T = TypeVar("_T")


class Write(Protocol[_T]):
    """A write queued for a batch, as the batch leaves it: its result or its error, and the events it appended."""

    result: _T | None
    error: BaseException | None
    events: list[Event]


async def settled(write: Write[_T], done: anyio.Event) -> tuple[_T, list[Event]]:
    """The write's result and events once its batch has committed (`done`), or the error it failed with.

    The batch settles the write whatever happens to its caller, so a caller cancelled meanwhile still
    waits to know which way it went before it leaves.
    """
    try:
        await done.wait()
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await done.wait()
        raise
    if write.error is not None:
        raise write.error
    return write.result, write.events  # type: ignore[return-value]  # a write that did not fail has its result


JobRule = Callable[[Job, EventContext], JobChange]
"""A pure function run inside the transaction, on the job as it is now."""

Publisher = Callable[[Sequence[Event]], None]
"""Called after each commit with its events, in `seq` order."""


def publish(publishers: Sequence[Publisher], events: Sequence[Event]) -> None:
    """Hand committed events to every publisher, in order."""
    for publisher in publishers:
        try:
            publisher(events)
        except Exception:
            # A subscriber's bug must not hold up the writers, nor the other subscribers: the events are committed.
            log.exception("An event subscriber failed on events %d-%d", events[0].seq, events[-1].seq)


def job_not_found(job_id: str) -> NotFound:
    return NotFound(f"Job {job_id} not found.", details={"jobId": job_id})


def job_exists(job_id: str) -> Conflict:
    return Conflict(f"Job {job_id} already exists.", details={"jobId": job_id})


def object_not_found(kind: str, object_id: str) -> NotFound:
    """NotFound for an object of `kind` (a sheet, a snapshot, ...)."""
    return NotFound(f"{kind.capitalize()} {object_id} not found.", details={"id": object_id})


def record_not_found(record_id: str, sheet_id: str) -> NotFound:
    return NotFound(f"Record {record_id} not found in sheet {sheet_id}.", details={"recordId": record_id})


def schedule_not_found(schedule_id: str) -> NotFound:
    return NotFound(f"Schedule {schedule_id} not found.", details={"id": schedule_id})


def schedule_doc(schedule: Schedule) -> str:
    """A schedule as the store keeps it: its JSON, less its upcoming ticks (worked out when it is read)."""
    return schedule.model_dump_json(exclude={"upcoming"})


ScheduleRule = Callable[[Schedule], tuple[Schedule | None, list[NewEvent]]]
"""Given a schedule as stored, its new state (None deletes it; the same object changes nothing) and the events that
report the change. Run inside the transaction, with the schedule's row locked; it may run more than once."""


def user_exists(name: str) -> Conflict:
    return Conflict(f"A user named {name!r} already exists.", details={"name": name})


def user_not_found(name: str) -> NotFound:
    return NotFound(f"User {name!r} not found.", details={"name": name})


UserChange = Callable[["StoredUser", list["StoredUser"]], "StoredUser"]


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A domain object (space, workbook, sheet, ...) as the store keeps it: a JSON document."""

    id: str
    kind: str
    parent_id: str | None
    doc: dict[str, Any]


ObjectChange = Callable[[StoredObject], tuple[dict[str, Any] | None, list[NewEvent]]]
"""Given an object as stored, its new document (None deletes it) and the events that report the change."""


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A caller's Idempotency-Key for a job creation, and the hash of the body it came with."""

    caller: str
    key: str
    body_hash: str


class IdempotentReplay(Exception):
    """The caller already created a job with this key: `job_id`, and whether the body was the same."""

    def __init__(self, job_id: str, same_body: bool) -> None:
        super().__init__(job_id)
        self.job_id = job_id
        self.same_body = same_body


@dataclass(frozen=True, slots=True)
class StoredUser:
    """A user as the store keeps it: only the hash of the bearer token, never the token."""

    id: str
    name: str
    role: str
    token_hash: str
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredWebhook:
    """A webhook as the store keeps it: its signing secret beside its document (listener.webhooks.Webhook)."""

    id: str
    secret: str
    doc: dict[str, Any]


def webhook_not_found(webhook_id: str) -> NotFound:
    return NotFound(f"Webhook {webhook_id} not found.", details={"webhookId": webhook_id})


@dataclass(frozen=True, slots=True)
class JobQuery:
    """A listing's filters. A job matches the status filter if it is in `status`, has one of `status_details`
    (the `status_detail` column) or is in `undetailed` with no detail; with all three empty, any job does."""

    status: Sequence[JobStatus] = ()
    type: Sequence[str] = ()
    operation: Sequence[str] = ()
    created_by: str | None = None
    parent_id: str | None = None
    is_part: bool | None = None
    limit: int = 50
    offset: int = 0
    status_details: Sequence[str] = ()
    undetailed: Sequence[JobStatus] = ()
    id_prefix: str | None = None
    """Jobs whose id starts with this (a range of the primary key)."""
    text: str | None = None
    """Jobs whose info or error message holds this text, in any case (read from each job's document)."""
    metadata: Sequence[tuple[str, str]] = ()
    """(key, value): jobs whose metadata has each key with that value (read from each job's document)."""
    sort: str | None = None
    """A `JobSort` (`-ended`, ...); None: newest first, a job's parts in part order."""
    window: int = 10_000
    """How many of the newest jobs matching the indexed filters a text or metadata condition looks through."""

    @property
    def reads_documents(self) -> bool:
        """Whether a condition reads each job's document (so it is bounded by `window`)."""
        return self.text is not None or bool(self.metadata)


@dataclass(slots=True)
class RecordChanges:
    """One commit's worth of record changes to one sheet; `update` merges values."""

    sheet_id: str
    insert: list[Record] = field(default_factory=list)
    update: dict[str, dict[str, Any]] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RecordCounts:
    """How many records one commit inserted, updated and deleted."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0


SnapshotMake = Callable[[int], tuple[dict[str, Any], list[NewEvent]]]
"""Given how many records a new snapshot holds, its document and the events that report it."""

RestoreMake = Callable[[RecordCounts], list[NewEvent]]
"""Given what a restore changed, the events that report it (its commit's among them)."""

def plan_restore(saved: Sequence[Sequence[Any]], current: Sequence[Sequence[Any]], sheet_id: str,
                 now: Any) -> tuple[list[tuple[Any, ...]], RecordCounts]:
    """The rows a sheet holds once restored to a snapshot, ready to insert, and what that changes.

    `saved` is the snapshot's records in order as rows (id, vals, created_at, updated_at), `current` the
    sheet's records now as rows (id, vals, updated_at), each `vals` JSON text and each time in the store's
    own type (as is `now`). A record the restore leaves as it is keeps its updated time; one it brings
    back or changes is updated `now`; every record keeps the id and creation time the snapshot saw. What
    is not in `saved` is deleted. The rows returned are (id, sheet_id, vals, created_at, updated_at).
    """
    there = {r[0]: (json.loads(r[1]), r[2]) for r in current}
    rows: list[tuple[Any, ...]] = []
    inserted = updated = 0
    for record_id, vals, created_at, _ in saved:
        values = json.loads(vals)
        now_ = there.get(record_id)
        if now_ is None:
            inserted += 1
            updated_at = now
        elif now_[0] != values:
            updated += 1
            updated_at = now
        else:
            updated_at = now_[1]
        rows.append((record_id, sheet_id, json.dumps(values), created_at, updated_at))
    kept = len(saved) - inserted
    return rows, RecordCounts(inserted=inserted, updated=updated, deleted=len(there) - kept)


class Store(Protocol):
    """A transactional home for jobs, domain objects, records and the event log."""

    def add_publisher(self, publisher: Publisher) -> None:
        """Receive every batch of committed events, in order, after its commit."""
        ...

    # jobs
    async def insert_job(self, job: Job, context: EventContext, events: list[NewEvent],
                         idempotency: Idempotency | None = None) -> list[Event]:
        """Insert a new job; with `idempotency`, raises IdempotentReplay if the caller used the key before.

        A job with a dedupe key raises DedupeHit, and nothing is written, when another job of its type
        holds the key (dedupe_slot); the look-up is part of the insert's transaction, so of concurrent
        inserts with one key, on any replica, exactly one is written.
        """
        ...

    async def change_job(self, job_id: str, rule: JobRule) -> tuple[Job | None, list[Event]]:
        """Run `rule` on the job inside one transaction; raises NotFound for an unknown id."""
        ...

    async def get_job(self, job_id: str) -> Job: ...
    async def add_job_errors(self, job_id: str, errors: list[JobItemError]) -> int:
        """Append to a job's error log; returns the log's length. NotFound for an unknown job."""
        ...
    async def job_errors(self, job_id: str, limit: int, offset: int) -> tuple[list[JobItemError], int]: ...
    async def secret(self, name: str) -> str:
        """A random secret of this database (made on first use), the same for every replica."""
        ...
    async def job_data(self, job_id: str, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Up to `limit` of the job's data rows after position `after`, with their positions, in order."""
        ...
    async def prune_job_data(self, finished_before: datetime) -> int:
        """Delete the data rows of jobs that ended at or before `finished_before`; returns how many rows."""
        ...
    async def count_jobs(self) -> dict[tuple[str, str], int]:
        """How many jobs there are of each (status, type)."""
        ...
    async def cursors(self) -> dict[str, int]:
        """Every agent cursor."""
        ...
    async def prune_jobs(self, finished_before: datetime, limit: int) -> int:
        """Delete up to `limit` jobs that ended before `finished_before`, with their events; returns how many."""
        ...
    async def due_jobs(self, now: datetime, limit: int) -> list[str]:
        """Ids of unfinished jobs whose `due_at` (see jobs.due_at) has come, oldest first."""
        ...

    async def ready_jobs(self, after: int, limit: int, *, priority: int = 0,
                         band: int = 0) -> list[tuple[int, Job, EventContext]]:
        """Up to `limit` ready jobs after position `after`, oldest first, each with its position and context.

        Positions only grow, so paging by the last one seen neither skips nor repeats a job while others move.
        `band` 0 reads the jobs of priority 0; 1 those above it and -1 those below, the highest first and by
        position within one priority, after (`priority`, `after`).
        """
        ...

    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]:
        """Jobs matching the query in its order (newest first; a job's parts in part order), and how many match."""
        ...
    async def count_statuses(self, query: JobQuery) -> dict[JobStatus, int]:
        """How many jobs in each status match the query's type, operation, creator and `is_part` (the rest of it
        is not read), from the status indexes."""
        ...
    async def job_ids(self, query: JobQuery) -> tuple[list[str], int]:
        """The ids of the first `limit` jobs matching the query in its order, and how many match."""
        ...
    async def part_stats(self, parent_id: str) -> PartStats: ...
    async def waiting_jobs(self, job: str, limit: int, *, by_key: bool = False) -> list[tuple[str, str | None]]:
        """The jobs of `job` (type:operation) waiting for a running slot, in the order they start: the
        highest priority first, oldest first within one; each with its concurrency key.

        `by_key`: keys take turns, the key with the fewest jobs running (and before them waiting) first.
        """
        ...

    # queues (store/queues.py)
    async def queue_counts(self, job: str | None = None) -> dict[str, dict[JobStatus, int]]:
        """How many jobs of each `type:operation` (or of `job` alone) are in each status."""
        ...
    async def first_ready(self, job: str) -> tuple[Job, EventContext] | None:
        """The ready job of `job` (type:operation) first in the queue's order, with its context, or None."""
        ...
    async def jobs_with_context(self, job_ids: Sequence[str]) -> list[tuple[Job, EventContext]]:
        """The jobs of these ids that exist (in no particular order), each with its context."""
        ...
    async def finished_per_minute(self, job: str, since: datetime) -> dict[tuple[int, JobStatus], int]:
        """How many jobs of `job` ended in each minute from `since` on, by status: (minute, status) → count."""
        ...

    # per-type settings and limits
    async def set_job_settings(self, settings: JobSettings) -> None:
        """Save the settings of one type:operation (limits then hold on every write of this store)."""
        ...
    async def job_settings(self) -> dict[str, JobSettings]:
        """Every type's settings, read afresh (and remembered for `limits`), by `job`."""
        ...
    def limits(self) -> dict[str, JobSettings]:
        """The settings as last read or set: what this store enforces when a job would start."""
        ...

    # domain objects
    async def put_objects(self, objects: list[StoredObject], events: list[NewEvent]) -> list[Event]: ...
    async def get_object(self, object_id: str, kind: str | None = None) -> StoredObject: ...
    async def list_objects(self, kind: str, parent_id: str | None = None) -> list[StoredObject]: ...
    async def delete_objects(self, object_ids: list[str], events: list[NewEvent]) -> list[Event]:
        """Delete objects; a sheet's records and snapshots go with it."""
        ...
    async def change_object(self, object_id: str, kind: str,
                            change: ObjectChange) -> tuple[StoredObject | None, list[Event]]:
        """Read-modify-write one object of `kind` in one transaction (NotFound if there is none): its new state
        (None if deleted) and the events appended. `change` may run more than once; it must not have effects."""
        ...

    # records
    async def change_records(self, changes: RecordChanges, events: list[NewEvent]) -> list[Event]: ...
    async def list_records(self, sheet_id: str, limit: int, offset: int) -> tuple[list[Record], int]: ...

    # snapshots: objects of kind "snapshot" (parent: their sheet) with a copy of the sheet's records
    async def create_snapshot(self, snapshot_id: str, sheet_id: str,
                              make: SnapshotMake) -> tuple[StoredObject, list[Event]]:
        """In one transaction, copy the sheet's records as they are now (NotFound for an unknown sheet) and
        add the snapshot whose document `make(count)` returns, with its events. `make` may run more than once."""
        ...
    async def list_snapshot_records(self, snapshot_id: str, sheet_id: str, limit: int,
                                    offset: int) -> tuple[list[Record], int]:
        """A page of a snapshot's records in the sheet's order when it was taken, and how many it holds."""
        ...
    async def restore_snapshot(self, snapshot_id: str, sheet_id: str, now: datetime,
                               make: RestoreMake) -> tuple[RecordCounts, list[Event]]:
        """In one transaction, make the sheet's records the snapshot's again (see `plan_restore`), with the
        events `make(counts)` returns. NotFound if the snapshot is gone. `make` may run more than once."""
        ...
    async def delete_snapshot(self, snapshot_id: str, events: list[NewEvent]) -> list[Event]:
        """Delete a snapshot and its records (NotFound if there is none), with its events."""
        ...

    # event log
    async def append_events(self, events: list[NewEvent]) -> list[Event]: ...
    async def read_events(self, after: int, limit: int, job_id: str | None = None) -> list[Event]: ...
    async def head(self) -> int:
        """The `seq` of the newest event, 0 for an empty log."""
        ...

    # agent cursors
    async def get_cursor(self, name: str) -> int | None: ...
    async def set_cursor(self, name: str, seq: int) -> None: ...

    # schedules
    async def insert_schedule(self, schedule: Schedule, events: list[NewEvent]) -> list[Event]: ...
    async def change_schedule(self, schedule_id: str, rule: ScheduleRule) -> tuple[Schedule | None, list[Event]]:
        """Read-modify-write one schedule in one transaction (NotFound if there is none): its new state and the
        events appended. Two writers of one schedule (two replicas' sweeps) take turns, each seeing the other's."""
        ...
    async def get_schedule(self, schedule_id: str) -> Schedule: ...
    async def list_schedules(self) -> list[Schedule]:
        """Every schedule, oldest first."""
        ...
    async def due_schedules(self, now: datetime, limit: int) -> list[str]:
        """Ids of the schedules not paused whose next run has come, the earliest first."""
        ...

    # users
    async def insert_user(self, user: StoredUser) -> None: ...
    async def find_user(self, *, token_hash: str | None = None, name: str | None = None) -> StoredUser | None: ...
    async def count_users(self) -> int: ...
    async def list_users(self) -> list[StoredUser]:
        """Every user, by name."""
        ...
    async def change_user(self, name: str, change: UserChange) -> StoredUser:
        """Replace user `name`'s row with what `change(user, admins)` returns, in one write that holds the admins'
        rows (`admins`, every user with role admin, this one too) until it commits, so that two changes
        deciding on the admins (revoking the last one's token) cannot both pass. NotFound for an unknown
        name; what `change` raises is raised, and nothing is written."""
        ...

    # webhooks: their cursors are agents' cursors (`webhook:<id>`)
    async def insert_webhook(self, webhook: StoredWebhook, cursor: str) -> None:
        """Add a webhook and its cursor `cursor` at the log's head, in one transaction."""
        ...
    async def webhooks(self) -> list[StoredWebhook]:
        """Every webhook, oldest first."""
        ...
    async def get_webhook(self, webhook_id: str) -> StoredWebhook:
        """One webhook; NotFound for an unknown id."""
        ...
    async def put_webhook(self, webhook_id: str, doc: dict[str, Any]) -> None:
        """Replace a webhook's document (NotFound for an unknown id)."""
        ...
    async def delete_webhook(self, webhook_id: str, cursor: str) -> bool:
        """Delete a webhook with its deliveries and its cursor `cursor`; whether the webhook was there (what a
        delivery of it still under way wrote after is deleted again once it has stopped)."""
        ...
    async def lease_webhook(self, webhook_id: str, owner: str, now: float, until: float) -> bool:
        """Take or renew the right to deliver a webhook until `until` (epoch seconds): True if `owner` holds it
        now, False if another owner's lease has not run out at `now` (or the webhook is gone)."""
        ...
    async def release_webhook(self, webhook_id: str, owner: str) -> None:
        """Give up `owner`'s lease of a webhook, so another replica may take it at once."""
        ...
    async def add_webhook_delivery(self, webhook_id: str, doc: dict[str, Any], keep: int) -> int:
        """Record a delivery attempt (its id is returned), keeping only the webhook's latest `keep`."""
        ...
    async def webhook_deliveries(self, webhook_id: str, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """The webhook's latest delivery attempts, newest first, each with its id."""
        ...
