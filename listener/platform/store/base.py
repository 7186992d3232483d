"""The Store protocol: what the platform asks of a database, whichever backend.

Every write is one transaction that changes state and appends the events that
report it, so an event is never lost and never announced for a change that
rolled back. After the commit the store hands the committed events, in `seq`
order, to its publishers (the event log's in-process fan-out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import anyio

from listener.models import Event, EventContext, Job, JobItemError, JobStatus, JobType, Record

__all__ = [
    "Idempotency",
    "IdempotentReplay",
    "JobChange",
    "JobQuery",
    "JobRule",
    "NewEvent",
    "Publisher",
    "RecordChanges",
    "Store",
    "StoredObject",
    "StoredUser",
    "deadline",
    "due_at",
    "settled",
]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended; the store gives it its id and `seq`."""

    topic: str
    context: EventContext
    payload: dict[str, Any]
    created_at: datetime

    def at(self, seq: int) -> Event:
        """The event as appended at `seq` (its id derives from the seq, which is unique per store)."""
        return Event(id=f"ev_{seq:012d}", seq=seq, topic=self.topic, context=self.context, payload=self.payload,
                     created_at=self.created_at)


@dataclass(slots=True)
class JobChange:
    """What a rule decided: the job's new state (None deletes it) and the events to append."""

    job: Job | None
    events: list[NewEvent]


def deadline(job: Job) -> datetime:
    """When the job times out: `timeout_seconds` after it was created, or after its `run_at`."""
    return (job.run_at or job.created_at) + timedelta(seconds=job.timeout_seconds)


def due_at(job: Job) -> datetime | None:
    """When something must happen to the job without anyone asking: its next attempt, lease end or timeout."""
    if job.status.is_terminal:
        return None
    end = deadline(job)
    if job.status is JobStatus.PLANNING:
        return job.created_at  # waiting on predecessors: looked at by every sweep
    if job.status is JobStatus.SCHEDULED and job.next_attempt_at is not None:
        return min(job.next_attempt_at, end)
    if job.status is JobStatus.EXECUTING and job.lease_expires_at is not None:
        return min(job.lease_expires_at, end)
    return end


async def settled(done: anyio.Event) -> None:
    """Wait until a write's batch has committed or rolled back, even if the caller is cancelled meanwhile.

    The batch settles the write whatever happens to its caller, so the caller must not leave before
    knowing which way it went.
    """
    try:
        await done.wait()
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await done.wait()
        raise


JobRule = Callable[[Job, EventContext], JobChange]
"""A pure function run inside the transaction, on the job as it is now."""

Publisher = Callable[[Sequence[Event]], None]
"""Called after each commit with its events, in `seq` order."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A domain object (space, workbook, sheet, ...) as the store keeps it: a JSON document."""

    id: str
    kind: str
    parent_id: str | None
    doc: dict[str, Any]


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
class JobQuery:
    status: Sequence[JobStatus] = ()
    type: Sequence[JobType] = ()
    operation: Sequence[str] = ()
    created_by: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(slots=True)
class RecordChanges:
    """One commit's worth of record changes to one sheet; `update` merges values."""

    sheet_id: str
    insert: list[Record] = field(default_factory=list)
    update: dict[str, dict[str, Any]] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    updated_at: datetime | None = None


class Store(Protocol):
    """A transactional home for jobs, domain objects, records and the event log."""

    def add_publisher(self, publisher: Publisher) -> None:
        """Receive every batch of committed events, in order, after its commit."""
        ...

    # jobs
    async def insert_job(self, job: Job, context: EventContext, events: list[NewEvent],
                         idempotency: Idempotency | None = None) -> list[Event]:
        """Insert a new job; with `idempotency`, raises IdempotentReplay if the caller used the key before."""
        ...

    async def change_job(self, job_id: str, rule: JobRule) -> tuple[Job | None, list[Event]]:
        """Run `rule` on the job inside one transaction; raises NotFound for an unknown id."""
        ...

    async def get_job(self, job_id: str) -> Job: ...
    async def add_job_errors(self, job_id: str, errors: list[JobItemError]) -> int:
        """Append to a job's error log; returns the log's length. NotFound for an unknown job."""
        ...
    async def job_errors(self, job_id: str, limit: int, offset: int) -> tuple[list[JobItemError], int]: ...
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

    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]: ...

    # domain objects
    async def put_objects(self, objects: list[StoredObject], events: list[NewEvent]) -> list[Event]: ...
    async def get_object(self, object_id: str, kind: str | None = None) -> StoredObject: ...
    async def list_objects(self, kind: str, parent_id: str | None = None) -> list[StoredObject]: ...
    async def delete_objects(self, object_ids: list[str], events: list[NewEvent]) -> list[Event]: ...

    # records
    async def change_records(self, changes: RecordChanges, events: list[NewEvent]) -> list[Event]: ...
    async def list_records(self, sheet_id: str, limit: int, offset: int) -> tuple[list[Record], int]: ...

    # event log
    async def append_events(self, events: list[NewEvent]) -> list[Event]: ...
    async def read_events(self, after: int, limit: int, job_id: str | None = None) -> list[Event]: ...
    async def head(self) -> int:
        """The `seq` of the newest event, 0 for an empty log."""
        ...

    # agent cursors
    async def get_cursor(self, name: str) -> int | None: ...
    async def set_cursor(self, name: str, seq: int) -> None: ...

    # users
    async def insert_user(self, user: StoredUser) -> None: ...
    async def find_user(self, *, token_hash: str | None = None, name: str | None = None) -> StoredUser | None: ...
    async def count_users(self) -> int: ...
