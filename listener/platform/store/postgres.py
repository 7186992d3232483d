"""The PostgreSQL store: several `listener serve` replicas on one database.

Each write is one transaction that changes state and appends its events. The
event log stays gap-free and in commit order across replicas because every
appending transaction bumps one counter row (`event_head`) as its last step and
holds that row lock until it commits: seq N+1 cannot commit before seq N.
Claims use row locks (`SELECT ... FOR UPDATE`), so of 100 concurrent acks spread
over replicas exactly one wins.

Each replica publishes the log to its own subscribers from one "tail" task that
reads new events in order. It is woken by its own commits, by LISTEN/NOTIFY for
other replicas' commits, and by a slow timer that covers notifications missed
while the listening connection was being re-established. Events this replica
committed itself are published from memory when they are next in order; the
table is read (and its rows parsed) only for other replicas' events: when one
of their notifications comes, when ours leave a gap before them, and on the
timer.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import asyncpg

from listener.errors import Invalid
from listener.models import Event, EventContext, Job, JobItemError, JobSettings
from listener.platform.store.base import (
    Idempotency,
    IdempotentReplay,
    JobRule,
    NewEvent,
    ObjectChange,
    PartStats,
    Publisher,
    RecordChanges,
    RecordCounts,
    RestoreMake,
    SnapshotMake,
    StoredObject,
    StoredUser,
    admission,
    due_at,
    job_exists,
    job_not_found,
    object_not_found,
    occupies,
    plan_restore,
    publish,
    record_not_found,
    settled,
    status_detail,
    user_exists,
    waits_for_slot,
)
from listener.platform.store.reads import Statement, StoreReads, numbered, part_stats_of
from listener.platform.store.schema import STEPS
from listener.tasks import task_scope

__all__ = ["PostgresStore"]

log = logging.getLogger("listener.store")

T = TypeVar("T")
CHANNEL = "listener_events"

MIGRATIONS: list[str] = [step.postgres for step in STEPS]
"""This store's scripts of the schema's steps, in order."""

# Errors after which a write is retried on a fresh connection: the server went away or
# restarted the backend before the transaction committed, or a deadlock was broken.
_TRANSIENT: tuple[type[BaseException], ...] = (
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


def parse_url(url: str) -> tuple[str, str]:
    """The asyncpg DSN and the schema of a `postgresql://user@host/db?schema=name` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise Invalid(f"Not a PostgreSQL URL: {url!r}.")
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", "public")
    if not schema.replace("_", "").isalnum():
        raise Invalid(f"schema: {schema!r} must be letters, digits and underscores.")
    return urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query))), schema


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


def _ids(rows: list[Any]) -> list[str]:
    return [r[0] for r in rows]


def _first(rows: list[Any]) -> int:
    return int(rows[0][0])


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Connections go back to the pool as they are: nothing here sets, listens or locks beyond a transaction."""


class PostgresStore(StoreReads):
    """The Store on PostgreSQL. Open it with `async with PostgresStore.open(url):`."""

    _position = "pos"

    def __init__(self, dsn: str, schema: str, *, pool_size: int, poll_interval: float) -> None:
        self.dsn = dsn
        self.schema = schema
        self.pool_size = pool_size
        self.poll_interval = poll_interval
        self._pool: asyncpg.Pool | None = None
        self._publishers: list[Publisher] = []
        self._tail = 0
        self._wake = anyio.Event()
        self._committed: dict[int, Event] = {}  # by seq: our own events, not yet published
        self._own_heads: set[int] = set()  # the last seq of each of our batches, to tell our notifications apart
        self._foreign = False  # another replica may have committed: the tail reads the table
        self._batch_head: int | None = None
        self._pending: list[_Write[Any]] = []
        self._pending_done = anyio.Event()
        self._flush_wake = anyio.Event()
        self._jobs: dict[str, tuple[Job, EventContext]] = {}
        self._changed: dict[str, Job | None] = {}
        self._inserted: dict[str, tuple[Job, EventContext]] = {}
        self._limits: dict[str, JobSettings] = {}
        self._limited: dict[str, JobSettings] = {}

    @property
    def settings(self) -> dict[str, str]:
        """Session settings of every connection; the application name shows in pg_stat_activity."""
        return {"search_path": self.schema, "application_name": f"listener:{self.schema}"}

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, pool_size: int = 10, poll_interval: float = 2.0) -> AsyncIterator[PostgresStore]:
        """Connect (creating the schema and applying migrations if needed) to `postgresql://...[?schema=name]`."""
        if pool_size < 1:
            raise Invalid(f"pool_size: must be at least 1, not {pool_size}.")
        dsn, schema = parse_url(url)
        store = cls(dsn, schema, pool_size=pool_size, poll_interval=poll_interval)
        await store._migrate()
        store._pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size, reset=_no_reset,
                                                server_settings=store.settings)
        try:
            store._tail = await store.head()
            await store.job_settings()
            async with task_scope() as tg:
                tg.start_soon(store._flush_forever)
                tg.start_soon(store._tail_forever)
                tg.start_soon(store._listen_forever)
                try:
                    yield store
                finally:
                    with anyio.CancelScope(shield=True):
                        await store._drain()
        finally:
            pool, store._pool = store._pool, None
            with anyio.CancelScope(shield=True):
                await pool.close()

    def add_publisher(self, publisher: Publisher) -> None:
        self._publishers.append(publisher)

    # -- schema ---------------------------------------------------------------

    async def _migrate(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            async with conn.transaction():
                # Replicas starting together take turns; the second finds the work done.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"listener:{self.schema}")
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await conn.execute(f'SET LOCAL search_path TO "{self.schema}"')
                await conn.execute("CREATE TABLE IF NOT EXISTS listener_migrations"
                                   " (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
                version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM listener_migrations")
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    await conn.execute(script)
                    await conn.execute("INSERT INTO listener_migrations (version) VALUES ($1)", number)
        finally:
            await conn.close()

    # -- transactions -----------------------------------------------------------

    def _ready(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("The store is closed.")
        return self._pool

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
            except _TRANSIENT as exc:
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
                except _TRANSIENT:
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
            await conn.execute(
                "INSERT INTO jobs (id, status, type, operation, created_by, created_at, due_at, finished_at, parent_id,"
                " part, waiting, doc, ctx, status_detail)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::text[], $10::int[], $11::bool[],"
                " $12::jsonb[], $13::jsonb[], $14::text[])",
                [j.id for j, _ in inserted], [j.status.value for j, _ in inserted], [j.type for j, _ in inserted],
                [j.operation for j, _ in inserted], [j.created_by for j, _ in inserted],
                [j.created_at for j, _ in inserted], [due_at(j) for j, _ in inserted],
                [j.finished_at for j, _ in inserted], [j.parent_id for j, _ in inserted],
                [j.part for j, _ in inserted], [waits_for_slot(j) for j, _ in inserted],
                [j.model_dump_json() for j, _ in inserted], [c.model_dump_json() for _, c in inserted],
                [status_detail(j) for j, _ in inserted])
        changed = {i: job for i, job in self._changed.items() if i not in self._inserted}
        updated = [(i, job) for i, job in changed.items() if job is not None]
        deleted = [i for i, job in changed.items() if job is None]
        if updated:
            await conn.execute(
                "UPDATE jobs SET status = u.status, due_at = u.due_at, finished_at = u.finished_at,"
                " waiting = u.waiting, doc = u.doc, status_detail = u.status_detail"
                " FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bool[], $6::jsonb[],"
                " $7::text[]) AS u(id, status, due_at, finished_at, waiting, doc, status_detail) WHERE jobs.id = u.id",
                [i for i, _ in updated], [j.status.value for _, j in updated], [due_at(j) for _, j in updated],
                [j.finished_at for _, j in updated], [waits_for_slot(j) for _, j in updated],
                [j.model_dump_json() for _, j in updated], [status_detail(j) for _, j in updated])
        if deleted:
            await conn.execute("DELETE FROM jobs WHERE id = ANY($1::text[])", deleted)

    async def _read(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        for attempt in range(4):
            try:
                async with self._ready().acquire() as conn:
                    return await fn(conn)
            except _TRANSIENT:
                if attempt == 3:
                    raise
                await anyio.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _query(self, decode: Callable[..., T], *statements: Statement) -> T:
        async def run(conn: asyncpg.Connection) -> list[list[Any]]:
            return [await conn.fetch(numbered(sql), *params) for sql, params in statements]

        return decode(*await self._read(run))

    @staticmethod
    def _any_of(column: str, values: Sequence[str], params: list[Any]) -> str:
        if len(values) == 1:  # `=`, not `= ANY`: before 17, PostgreSQL reads an index in order only for `=`
            params.append(str(values[0]))
            return f"{column} = ?"
        params.append([str(v) for v in values])
        return f"{column} = ANY(?::text[])"

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the pool (on the store's schema) for what is not a store write: file bytes.

        What runs on it is not in the batch transactions and appends no events.
        """
        async with self._ready().acquire() as conn:
            yield conn

    # -- publishing -------------------------------------------------------------

    async def _tail_forever(self) -> None:
        while True:
            with anyio.move_on_after(self.poll_interval) as timer:
                await self._wake.wait()
            if timer.cancelled_caught:
                self._foreign = True  # in case a notification was missed
            self._wake = anyio.Event()
            try:
                while events := self._take_committed() or await self._read_foreign():
                    self._tail = events[-1].seq
                    publish(self._publishers, events)
            except _TRANSIENT as exc:
                log.warning("Could not read new events (%s); trying again.", exc)
                await anyio.sleep(0.2)

    def _notified(self, payload: str) -> None:
        """A commit's notification (its last seq): ours wake the tail by themselves; another replica's must."""
        try:
            head = int(payload)
        except ValueError:
            head = -1
        if head in self._own_heads or head <= self._tail:
            self._own_heads.discard(head)
            return
        self._foreign = True
        self._wake.set()

    def _take_committed(self) -> list[Event]:
        """Our own committed events that come next after the tail, in order."""
        run: list[Event] = []
        while (event := self._committed.pop(self._tail + 1 + len(run), None)) is not None:
            run.append(event)
        return run

    async def _read_foreign(self) -> list[Event]:
        """The next events from the table, if another replica's may come next (else none)."""
        if not self._foreign and not self._committed:
            return []  # nothing but our own commits since the last read, and they are all published
        # A notification came, or our next event is not next: another replica's commit is in between.
        self._foreign = False
        events = await self.read_events(self._tail, 1000)
        if events:
            last = events[-1].seq
            if self._committed:
                self._committed = {seq: e for seq, e in self._committed.items() if seq > last}
            if self._own_heads:  # a notification of ours that never came (the listening connection was down)
                self._own_heads = {head for head in self._own_heads if head > last}
        return events

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, server_settings=self.settings)
            except _TRANSIENT as exc:
                log.warning("Cannot listen for other replicas' events (%s); retrying in %.1fs.", exc, delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            lost = anyio.Event()
            try:
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, lambda _c, _p, _ch, payload: self._notified(payload))
                delay = 0.1
                self._foreign = True  # catch up on what was committed while we were not listening
                self._wake.set()
                await lost.wait()
                log.warning("The listening connection was lost; reconnecting.")
            finally:
                with anyio.CancelScope(shield=True):
                    if not conn.is_closed():
                        await conn.close()

    # -- jobs ---------------------------------------------------------------------

    async def insert_job(self, job: Job, context: EventContext, events: list[NewEvent],
                         idempotency: Idempotency | None = None) -> list[Event]:
        async def insert(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            if idempotency is not None:
                i = idempotency
                # DO NOTHING waits for a concurrent insert of the same key to commit, without aborting ours.
                added = await conn.fetchval("INSERT INTO idempotency_keys (caller, key, body_hash, job_id)"
                                            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
                                            i.caller, i.key, i.body_hash, job.id)
                if added is None:
                    row = await conn.fetchrow("SELECT body_hash, job_id FROM idempotency_keys"
                                              " WHERE caller = $1 AND key = $2", i.caller, i.key)
                    raise IdempotentReplay(row["job_id"], row["body_hash"] == i.body_hash)
            if occupies(job):
                await self._admit(conn, job)
            self._stage_insert(job, context)
            return None, events

        _, added = await self._write(insert, job_id=job.id)
        return added

    async def change_job(self, job_id: str, rule: JobRule) -> tuple[Job | None, list[Event]]:
        async def change(conn: asyncpg.Connection) -> tuple[Job | None, list[NewEvent]]:
            current = self._jobs.get(job_id)
            if current is None and job_id not in self._changed:
                # Not there when the batch started: perhaps inserted by an earlier write of this batch.
                row = await conn.fetchrow("SELECT doc, ctx FROM jobs WHERE id = $1 FOR UPDATE", job_id)
                if row is not None:
                    current = Job.model_validate_json(row["doc"]), EventContext.model_validate_json(row["ctx"])
            if current is None:
                raise job_not_found(job_id)
            job, ctx = current
            outcome = rule(job, ctx)
            if outcome.job is job and not outcome.events and not outcome.inserts:
                return job, []  # nothing to do
            if occupies(outcome.job) and not occupies(job):
                assert outcome.job is not None
                await self._admit(conn, outcome.job)
            for child, _, _ in outcome.inserts:
                if child.id in self._jobs or child.id in self._inserted:
                    raise job_exists(child.id)
            if outcome.data:
                await conn.executemany("INSERT INTO job_data (job_id, row) VALUES ($1, $2)",
                                       [(job_id, json.dumps(row)) for row in outcome.data])
            if outcome.job is None:
                await conn.execute("DELETE FROM job_data WHERE job_id = $1", job_id)
            # Only a rule that succeeded changes the batch's copy; the rows are written once, at the end.
            self._changed[job_id] = outcome.job
            if outcome.job is None:
                self._jobs.pop(job_id, None)
            else:
                self._jobs[job_id] = (outcome.job, ctx)
            events = list(outcome.events)
            for child, child_ctx, child_events in outcome.inserts:
                self._stage_insert(child, child_ctx)
                events.extend(child_events)
            return outcome.job, events

        return await self._write(change, job_id=job_id)

    def _stage_insert(self, job: Job, context: EventContext) -> None:
        if job.id in self._jobs or job.id in self._inserted:
            raise job_exists(job.id)
        # Inserted with the batch's other new jobs in one statement at the end.
        self._inserted[job.id] = (job, context)
        self._jobs[job.id] = (job, context)

    async def _admit(self, conn: asyncpg.Connection, job: Job) -> None:
        """Take a running slot (and a start, if rate-limited) for a job about to become ready, or NoSlot.

        The type's settings row is locked first, so replicas admit the jobs of one type one at a
        time; the count then sees every other replica's committed admissions, and this batch's
        own changes, which are not written yet, are counted from its copies.
        """
        settings = self._limited.get(job.job)
        if settings is None:
            return
        bucket = await conn.fetchrow("SELECT tokens, refilled_at FROM job_settings WHERE job = $1 FOR UPDATE", job.job)
        running = 0
        if settings.max_running is not None:
            staged = [*self._jobs, *self._changed]
            running = await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE type = $1 AND operation = $2 AND status IN ('ready', 'executing')"
                " AND NOT (id = ANY($3::text[]))", job.type, job.operation, staged)
            running += sum(1 for other, _ in self._jobs.values() if other.id != job.id and other.job == job.job
                           and occupies(other))
        now = job.updated_at.timestamp()
        tokens = admission(settings, running, bucket, now)
        if tokens is not None:
            await conn.execute("UPDATE job_settings SET tokens = $2, refilled_at = $3 WHERE job = $1",
                               job.job, tokens, now)

    async def set_job_settings(self, settings: JobSettings) -> None:
        async def put(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            await conn.execute("INSERT INTO job_settings (job, doc) VALUES ($1, $2)"
                               " ON CONFLICT (job) DO UPDATE SET doc = excluded.doc",
                               settings.job, settings.model_dump_json())
            return None, []

        await self._write(put)
        self._remember(settings)

    async def waiting_jobs(self, job: str, limit: int) -> list[str]:
        kind, _, operation = job.partition(":")
        return await self._query(_ids, ("SELECT id FROM jobs WHERE type = ? AND operation = ? AND waiting"
                                        " ORDER BY created_at, pos LIMIT ?", (kind, operation, limit)))

    async def part_stats(self, parent_id: str) -> PartStats:
        return await self._query(
            part_stats_of,
            ("SELECT status, count(*) AS n, sum((doc->>'progress')::int) AS progress FROM jobs WHERE parent_id = ?"
             " GROUP BY status", (parent_id,)),
            ("SELECT part FROM jobs WHERE parent_id = ? AND status IN ('failed', 'cancelled') ORDER BY part",
             (parent_id,)))

    async def add_job_errors(self, job_id: str, errors: list[JobItemError]) -> int:
        async def add(conn: asyncpg.Connection) -> tuple[int, list[NewEvent]]:
            if await conn.fetchval("SELECT 1 FROM jobs WHERE id = $1", job_id) is None and job_id not in self._jobs:
                raise job_not_found(job_id)
            await conn.executemany("INSERT INTO job_errors (job_id, item, message, created_at) VALUES ($1, $2, $3, $4)",
                                   [(job_id, e.item, e.message, e.created_at) for e in errors])
            return int(await conn.fetchval("SELECT count(*) FROM job_errors WHERE job_id = $1", job_id)), []

        count, _ = await self._write(add)
        return count

    async def secret(self, name: str) -> str:
        async def get(conn: asyncpg.Connection) -> tuple[str, list[NewEvent]]:
            # The first replica to ask makes it; every other one reads that one.
            await conn.execute("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                               name, secrets.token_hex(32))
            return str(await conn.fetchval("SELECT value FROM secrets WHERE name = $1", name)), []

        value, _ = await self._write(get)
        return value

    async def prune_job_data(self, finished_before: datetime) -> int:
        async def prune(conn: asyncpg.Connection) -> tuple[int, list[NewEvent]]:
            status = await conn.execute("DELETE FROM job_data WHERE job_id IN"
                                        " (SELECT id FROM jobs WHERE finished_at <= $1)", finished_before)
            return int(status.split()[-1]), []

        pruned, _ = await self._write(prune)
        return pruned

    async def prune_jobs(self, finished_before: datetime, limit: int) -> int:
        async def prune(conn: asyncpg.Connection) -> tuple[int, list[NewEvent]]:
            ids = [r["id"] for r in await conn.fetch(
                "SELECT id FROM jobs WHERE finished_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED", finished_before, limit)]
            await conn.execute("DELETE FROM events WHERE job_id = ANY($1::text[])", ids)
            await conn.execute("DELETE FROM job_errors WHERE job_id = ANY($1::text[])", ids)
            await conn.execute("DELETE FROM job_data WHERE job_id = ANY($1::text[])", ids)
            await conn.execute("DELETE FROM jobs WHERE id = ANY($1::text[])", ids)
            return len(ids), []

        pruned, _ = await self._write(prune)
        return pruned

    async def due_jobs(self, now: datetime, limit: int) -> list[str]:
        return await self._query(_ids, ("SELECT id FROM jobs WHERE due_at <= ? ORDER BY due_at LIMIT ?", (now, limit)))

    # -- domain objects -----------------------------------------------------------

    async def put_objects(self, objects: list[StoredObject], events: list[NewEvent]) -> list[Event]:
        async def put(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            await conn.executemany(
                "INSERT INTO objects (id, kind, parent_id, doc) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, parent_id = excluded.parent_id,"
                " doc = excluded.doc",
                [(o.id, o.kind, o.parent_id, json.dumps(o.doc)) for o in objects])
            return None, events

        _, added = await self._write(put)
        return added

    async def delete_objects(self, object_ids: list[str], events: list[NewEvent]) -> list[Event]:
        async def delete(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            await conn.execute("DELETE FROM snapshot_records WHERE snapshot_id IN (SELECT id FROM objects"
                               " WHERE kind = 'snapshot' AND parent_id = ANY($1::text[]))", object_ids)
            await conn.execute("DELETE FROM objects WHERE id = ANY($1::text[])"
                               " OR (kind = 'snapshot' AND parent_id = ANY($1::text[]))", object_ids)
            await conn.execute("DELETE FROM records WHERE sheet_id = ANY($1::text[])", object_ids)
            return None, events

        _, added = await self._write(delete)
        return added

    async def change_object(self, object_id: str, kind: str,
                            change: ObjectChange) -> tuple[StoredObject | None, list[Event]]:
        async def change_(conn: asyncpg.Connection) -> tuple[StoredObject | None, list[NewEvent]]:
            row = await conn.fetchrow("SELECT parent_id, doc FROM objects WHERE id = $1 AND kind = $2 FOR UPDATE",
                                      object_id, kind)
            if row is None:
                raise object_not_found(kind, object_id)
            doc, events = change(StoredObject(object_id, kind, row["parent_id"], json.loads(row["doc"])))
            if doc is None:
                await conn.execute("DELETE FROM objects WHERE id = $1", object_id)
                return None, events
            await conn.execute("UPDATE objects SET doc = $2 WHERE id = $1", object_id, json.dumps(doc))
            return StoredObject(object_id, kind, row["parent_id"], doc), events

        return await self._write(change_)

    # -- records ------------------------------------------------------------------

    async def change_records(self, changes: RecordChanges, events: list[NewEvent]) -> list[Event]:
        async def change(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            if changes.insert:
                await conn.executemany(
                    "INSERT INTO records (id, sheet_id, vals, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
                    [(r.id, r.sheet_id, json.dumps(r.values), r.created_at, r.updated_at) for r in changes.insert])
            for record_id, values in changes.update.items():
                done = await conn.fetchval(
                    "UPDATE records SET vals = vals || $3::jsonb, updated_at = $4 WHERE id = $1 AND sheet_id = $2"
                    " RETURNING 1", record_id, changes.sheet_id, json.dumps(values), changes.updated_at)
                if done is None:
                    raise record_not_found(record_id, changes.sheet_id)
            for record_id in changes.delete:
                done = await conn.fetchval("DELETE FROM records WHERE id = $1 AND sheet_id = $2 RETURNING 1",
                                           record_id, changes.sheet_id)
                if done is None:
                    raise record_not_found(record_id, changes.sheet_id)
            return None, events

        _, added = await self._write(change)
        return added

    # -- snapshots ----------------------------------------------------------------

    async def create_snapshot(self, snapshot_id: str, sheet_id: str,
                              make: SnapshotMake) -> tuple[StoredObject, list[Event]]:
        async def create(conn: asyncpg.Connection) -> tuple[StoredObject, list[NewEvent]]:
            if await conn.fetchval("SELECT 1 FROM objects WHERE id = $1 AND kind = 'sheet'", sheet_id) is None:
                raise object_not_found("sheet", sheet_id)
            status = await conn.execute(
                "INSERT INTO snapshot_records (snapshot_id, pos, id, vals, created_at, updated_at)"
                " SELECT $1, row_number() OVER (ORDER BY pos), id, vals, created_at, updated_at"
                " FROM records WHERE sheet_id = $2", snapshot_id, sheet_id)
            doc, events = make(int(status.rsplit(" ", 1)[1]))  # "INSERT 0 <rows>"
            await conn.execute("INSERT INTO objects (id, kind, parent_id, doc) VALUES ($1, 'snapshot', $2, $3)",
                               snapshot_id, sheet_id, json.dumps(doc))
            return StoredObject(snapshot_id, "snapshot", sheet_id, doc), events

        return await self._write(create)

    async def restore_snapshot(self, snapshot_id: str, sheet_id: str, now: datetime,
                               make: RestoreMake) -> tuple[RecordCounts, list[Event]]:
        async def restore(conn: asyncpg.Connection) -> tuple[RecordCounts, list[NewEvent]]:
            # The snapshot's row is locked, so a concurrent delete of it waits until the restore has committed;
            # the sheet's rows too, so a concurrent update of one of them comes before the restore or after it.
            if await conn.fetchval("SELECT 1 FROM objects WHERE id = $1 AND kind = 'snapshot' FOR SHARE",
                                   snapshot_id) is None:
                raise object_not_found("snapshot", snapshot_id)
            saved = await conn.fetch("SELECT id, vals, created_at, updated_at FROM snapshot_records"
                                     " WHERE snapshot_id = $1 ORDER BY pos", snapshot_id)
            current = await conn.fetch("SELECT id, vals, updated_at FROM records WHERE sheet_id = $1 FOR UPDATE",
                                       sheet_id)
            rows, counts = plan_restore(saved, current, sheet_id, now)
            # Every row again, in the snapshot's order: the sheet reads back as it did when it was taken.
            await conn.execute("DELETE FROM records WHERE sheet_id = $1", sheet_id)
            await conn.executemany(
                "INSERT INTO records (id, sheet_id, vals, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)", rows)
            return counts, make(counts)

        return await self._write(restore)

    async def delete_snapshot(self, snapshot_id: str, events: list[NewEvent]) -> list[Event]:
        async def delete(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            if await conn.fetchval("DELETE FROM objects WHERE id = $1 AND kind = 'snapshot' RETURNING 1",
                                   snapshot_id) is None:
                raise object_not_found("snapshot", snapshot_id)
            await conn.execute("DELETE FROM snapshot_records WHERE snapshot_id = $1", snapshot_id)
            return None, events

        _, added = await self._write(delete)
        return added

    # -- the event log ------------------------------------------------------------

    async def append_events(self, events: list[NewEvent]) -> list[Event]:
        async def append(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            return None, events

        _, added = await self._write(append)
        return added

    async def head(self) -> int:
        return await self._query(_first, ("SELECT seq FROM event_head WHERE id = 1", ()))

    # -- cursors --------------------------------------------------------------------

    async def set_cursor(self, name: str, seq: int) -> None:
        # A cursor only moves forward, whichever of two processes of one agent writes last.
        async def set_(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            await conn.execute("INSERT INTO cursors (name, seq) VALUES ($1, $2)"
                               " ON CONFLICT (name) DO UPDATE SET seq = greatest(cursors.seq, excluded.seq)", name, seq)
            return None, []

        await self._write(set_, savepoint=False)

    # -- users ------------------------------------------------------------------------

    async def insert_user(self, user: StoredUser) -> None:
        async def insert(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            try:
                await conn.execute("INSERT INTO users (id, name, role, token_hash, doc) VALUES ($1, $2, $3, $4, $5)",
                                   user.id, user.name, user.role, user.token_hash, json.dumps(user.doc))
            except asyncpg.UniqueViolationError:
                raise user_exists(user.name) from None
            return None, []

        await self._write(insert)
