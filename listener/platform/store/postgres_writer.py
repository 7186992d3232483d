"""PostgreSQL's writer: the writes queued together run in one transaction, a batch, whose events append gap-free.

A batch changes state and appends the events that report it; each write in it has its own
savepoint (or changes only the batch's copies), so one that fails rolls back alone. The event
log stays gap-free and in commit order across replicas because every appending transaction
bumps one counter row (`event_head`) as its last step and holds that row lock until it
commits: seq N+1 cannot commit before seq N. Claims use row locks: a batch locks every job it
changes (`SELECT ... FOR UPDATE`), so of 100 concurrent acks spread over replicas exactly one
wins, and works on copies of them, written back in three statements at its end.

The part of PostgresStore (postgres.py) that runs its writes; it declares the state of the store it uses.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import asyncpg

from listener.models import Event, EventContext, Job
from listener.platform.store.base import (
    NewEvent,
    dedupe_slot,
    due_at,
    duration,
    job_exists,
    settled,
    status_detail,
    waits_for_slot,
)

__all__ = ["CHANNEL", "TRANSIENT", "PostgresWriter", "WriteFn"]

log = logging.getLogger("listener.store")

T = TypeVar("T")

CHANNEL = "listener_events"
"""What each batch that appends events notifies at its commit, with its last seq (see postgres_tail.py)."""

# Errors after which a write is retried on a fresh connection: the server went away or
# restarted the backend before the transaction committed, or a deadlock was broken.
TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # what BEGIN raises on a connection the server just terminated
    ConnectionError,
    OSError,
)


# One round trip appends a batch: bump the head (taking its lock until commit), insert the events with
# their seq and id written into their JSON, and notify the other replicas (delivered at commit).
_APPEND = """
WITH head AS (UPDATE event_head SET seq = seq + $1 WHERE id = 1 RETURNING seq),
rows AS (
    SELECT (SELECT seq FROM head) - $1 + n AS seq, topic, job_id, doc
    FROM unnest($2::text[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS u(topic, job_id, doc, n)
),
inserted AS (
    INSERT INTO events (seq, topic, job_id, doc)
    SELECT seq, topic, job_id,
           doc || jsonb_build_object('seq', seq, 'id', 'ev_' || lpad(seq::text, 12, '0'))
    FROM rows
    RETURNING seq
)
SELECT max(seq) AS head, pg_notify('""" + CHANNEL + """', max(seq)::text) FROM inserted
"""


async def _append(conn: asyncpg.Connection, new: list[NewEvent]) -> list[Event]:
    """Append events as the transaction's last step: the head row lock orders commits by seq."""
    if not new:
        return []
    docs = [n.at(0) for n in new]
    head = await conn.fetchval(_APPEND, len(new), [e.topic for e in docs], [e.context.job_id for e in docs],
                               [e.model_dump_json() for e in docs])
    return [n.at(head - len(new) + 1 + i) for i, n in enumerate(new)]


WriteFn = Callable[[asyncpg.Connection], Awaitable[tuple[T, list[NewEvent]]]]
"""A write: runs inside the batch transaction, returns its result and the events to append."""


@dataclass(slots=True)
class _Write(Generic[T]):
    fn: WriteFn[T]
    # A write that changes one job names it, so the batch can lock and read all such rows at once;
    # it changes only the batch's cached copy, so it needs no savepoint of its own.
    job_id: str | None = None
    savepoint: bool = True
    result: T | None = None
    error: BaseException | None = None
    new: list[NewEvent] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


_NO_SLOT = (None, None)


def _slot(job: Job) -> tuple[str | None, str | None]:
    """The dedupe_scope and dedupe_key columns of a job (dedupe_slot): NULLs unless it waits with a key."""
    if job.dedupe_key is None:
        return _NO_SLOT
    return dedupe_slot(job) or _NO_SLOT


class PostgresWriter:
    """PostgresStore's writer: `_write` queues a write for the next batch transaction."""

    _pending: list[_Write[Any]]
    _pending_done: anyio.Event
    _flush_wake: anyio.Event
    _jobs: dict[str, tuple[Job, EventContext]]
    """The batch's copies of the jobs it locked or inserted, as its writes have left them so far."""
    _changed: dict[str, Job | None]
    _inserted: dict[str, tuple[Job, EventContext]]
    _batch_head: int | None
    _committed: dict[int, Event]
    _own_heads: set[int]
    _wake: anyio.Event

    if TYPE_CHECKING:
        def _ready(self) -> asyncpg.Pool: ...

    async def _write(self, fn: WriteFn[T], *, job_id: str | None = None,
                     savepoint: bool = True) -> tuple[T, list[Event]]:
        """Run `fn` in the next batch transaction; returns its result and the events it appended.

        Concurrent writes share one transaction (each in its own savepoint, so one that fails rolls
        back alone) and one commit: the commit's flush to disk and the log head's lock are paid once
        per batch, not once per write.
        """
        self._ready()
        write: _Write[T] = _Write(fn, job_id, savepoint and job_id is None)
        self._pending.append(write)
        done = self._pending_done
        self._flush_wake.set()
        return await settled(write, done)

    async def _flush_forever(self) -> None:
        while True:
            await self._flush_wake.wait()
            self._flush_wake = anyio.Event()
            batch, done = self._pending, self._pending_done
            if not batch:
                continue
            self._pending, self._pending_done = [], anyio.Event()
            with anyio.CancelScope(shield=True):
                try:
                    await self._commit(batch)
                    self._committed.update((e.seq, e) for w in batch if w.error is None for e in w.events)
                finally:
                    done.set()
                self._wake.set()

    async def _drain(self) -> None:
        while self._pending:
            self._flush_wake.set()
            await self._pending_done.wait()

    async def _commit(self, batch: list[_Write[Any]]) -> None:
        for attempt in range(4):
            for write in batch:
                write.error, write.events, write.new = None, [], []
            try:
                try:
                    await self._batch_transaction(batch)
                except BaseException:
                    self._own_heads.discard(self._batch_head or 0)  # not committed: no notification will come
                    raise
                return
            except TRANSIENT as exc:
                if attempt == 3:
                    for write in batch:
                        write.error = exc
                    return
                log.warning("Retrying a batch of %d write(s) after a lost connection: %s", len(batch), exc)
                await anyio.sleep(0.05 * 2**attempt)
            except Exception as exc:  # the commit itself failed: nothing of the batch happened
                for write in batch:
                    write.error = exc
                return

    async def _batch_transaction(self, batch: list[_Write[Any]]) -> None:
        self._batch_head = None
        async with self._ready().acquire() as conn, conn.transaction():
            # Lock and read every job the batch changes in one query, in id order so that two
            # replicas' batches lock rows in the same order and cannot deadlock on them.
            ids = sorted({w.job_id for w in batch if w.job_id is not None})
            self._jobs, self._changed, self._inserted = {}, {}, {}
            if ids:
                rows = await conn.fetch("SELECT id, doc, ctx FROM jobs WHERE id = ANY($1::text[]) ORDER BY id"
                                        " FOR UPDATE", ids)
                self._jobs = {r["id"]: (Job.model_validate_json(r["doc"]), EventContext.model_validate_json(r["ctx"]))
                              for r in rows}
            for write in batch:
                try:
                    if write.savepoint:
                        async with conn.transaction():
                            write.result, write.new = await write.fn(conn)
                    else:
                        write.result, write.new = await write.fn(conn)
                except TRANSIENT:
                    raise  # the transaction is lost: the whole batch goes again
                except Exception as exc:
                    if isinstance(exc, asyncpg.PostgresError) and not write.savepoint:
                        raise  # without a savepoint the database error aborted the whole transaction
                    write.error = exc
            await self._save_jobs(conn)
            new = [n for w in batch if w.error is None for n in w.new]
            events = await _append(conn, new)
            if events:  # its notification is ours: the tail has these events from memory once we commit
                self._batch_head = events[-1].seq
                self._own_heads.add(self._batch_head)
            for write in batch:
                if write.error is None:
                    write.events, events = events[:len(write.new)], events[len(write.new):]

    async def _save_jobs(self, conn: asyncpg.Connection) -> None:
        """Write the batch's new and changed jobs back, in three statements whatever their number."""
        # A job created and changed in the same batch is inserted as it ends up.
        inserted = [(self._jobs[i][0] if i in self._jobs else job, ctx) for i, (job, ctx) in self._inserted.items()
                    if self._changed.get(i, job) is not None]
        if inserted:
            slots = [_slot(j) for j, _ in inserted]
            await conn.execute(
                "INSERT INTO jobs (id, status, type, operation, created_by, created_at, due_at, finished_at, parent_id,"
                " part, waiting, doc, ctx, status_detail, started_at, duration, dedupe_scope, dedupe_key, priority,"
                " concurrency_key)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::text[], $10::int[], $11::bool[],"
                " $12::jsonb[], $13::jsonb[], $14::text[], $15::timestamptz[], $16::float8[], $17::text[],"
                " $18::text[], $19::int[], $20::text[])",
                [j.id for j, _ in inserted], [j.status.value for j, _ in inserted], [j.type for j, _ in inserted],
                [j.operation for j, _ in inserted], [j.created_by for j, _ in inserted],
                [j.created_at for j, _ in inserted], [due_at(j) for j, _ in inserted],
                [j.finished_at for j, _ in inserted], [j.parent_id for j, _ in inserted],
                [j.part for j, _ in inserted], [waits_for_slot(j) for j, _ in inserted],
                [j.model_dump_json() for j, _ in inserted], [c.model_dump_json() for _, c in inserted],
                [status_detail(j) for j, _ in inserted], [j.started_at for j, _ in inserted],
                [duration(j) for j, _ in inserted], [s[0] for s in slots], [s[1] for s in slots],
                [j.priority for j, _ in inserted], [j.concurrency_key for j, _ in inserted])
        changed = {i: job for i, job in self._changed.items() if i not in self._inserted}
        updated = [(i, job) for i, job in changed.items() if job is not None]
        deleted = [i for i, job in changed.items() if job is None]
        if updated:
            slots = [_slot(j) for _, j in updated]
            await conn.execute(
                "UPDATE jobs SET status = u.status, due_at = u.due_at, finished_at = u.finished_at,"
                " waiting = u.waiting, doc = u.doc, status_detail = u.status_detail, started_at = u.started_at,"
                " duration = u.duration, dedupe_scope = u.dedupe_scope, dedupe_key = u.dedupe_key,"
                " priority = u.priority"
                " FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bool[], $6::jsonb[],"
                " $7::text[], $8::timestamptz[], $9::float8[], $10::text[], $11::text[], $12::int[])"
                " AS u(id, status, due_at, finished_at, waiting, doc, status_detail, started_at, duration,"
                " dedupe_scope, dedupe_key, priority)"
                " WHERE jobs.id = u.id",
                [i for i, _ in updated], [j.status.value for _, j in updated], [due_at(j) for _, j in updated],
                [j.finished_at for _, j in updated], [waits_for_slot(j) for _, j in updated],
                [j.model_dump_json() for _, j in updated], [status_detail(j) for _, j in updated],
                [j.started_at for _, j in updated], [duration(j) for _, j in updated],
                [s[0] for s in slots], [s[1] for s in slots], [j.priority for _, j in updated])
        if deleted:
            await conn.execute("DELETE FROM jobs WHERE id = ANY($1::text[])", deleted)

    def _stage_insert(self, job: Job, context: EventContext) -> None:
        if job.id in self._jobs or job.id in self._inserted:
            raise job_exists(job.id)
        # Inserted with the batch's other new jobs in one statement at the end.
        self._inserted[job.id] = (job, context)
        self._jobs[job.id] = (job, context)
