"""The PostgreSQL store: several `listener serve` replicas on one database.

PostgresStore is the Store's writes in PostgreSQL's SQL, run in the batch transactions of its
writer (postgres_writer.py: a gap-free log across replicas, claims by row locks), and its reads
(reads.py) on the connections of its pool. Each replica publishes the log to its subscribers
itself (postgres_tail.py).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import asyncpg

from listener.errors import Invalid
from listener.models import Event, EventContext, Job, JobItemError, JobSettings
from listener.platform.store.base import (
    DedupeHit,
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
    ScheduleRule,
    SnapshotMake,
    StoredObject,
    StoredUser,
    StoredWebhook,
    UserChange,
    admission,
    dedupe_slot,
    job_exists,
    job_not_found,
    key_admission,
    object_not_found,
    occupies,
    plan_restore,
    record_not_found,
    schedule_doc,
    schedule_not_found,
    user_exists,
    user_not_found,
    webhook_not_found,
)
from listener.platform.store.postgres_tail import PostgresTail
from listener.platform.store.postgres_writer import TRANSIENT, PostgresWriter
from listener.platform.store.reads import (
    USER_COLUMNS,
    Statement,
    StoreReads,
    like_pattern,
    number,
    numbered,
    part_stats_of,
    stored_user,
)
from listener.platform.store.schema import STEPS
from listener.schedules import Schedule
from listener.tasks import task_scope

__all__ = ["PostgresStore"]

T = TypeVar("T")

MIGRATIONS: list[str] = [step.postgres for step in STEPS]
"""This store's scripts of the schema's steps, in order."""


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


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Connections go back to the pool as they are: nothing here sets, listens or locks beyond a transaction."""


class PostgresStore(PostgresTail, PostgresWriter, StoreReads):
    """The Store on PostgreSQL. Open it with `async with PostgresStore.open(url):`."""

    _position = "pos"
    _waiting = "waiting"
    _id_column = 'id COLLATE "C"'
    _minute = "floor((extract(epoch FROM finished_at) - ?::float8) / 60)::int"

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
        self._pending = []
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

    async def _read(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        for attempt in range(4):
            try:
                async with self._ready().acquire() as conn:
                    return await fn(conn)
            except TRANSIENT:
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

    @staticmethod
    def _instant(instant: datetime) -> datetime:
        return instant

    @staticmethod
    def _text_match(text: str, params: list[Any]) -> str:
        pattern = like_pattern(text)
        params += [pattern, pattern]
        return "(doc->>'info' ILIKE ? OR doc->'error'->>'message' ILIKE ?)"

    @staticmethod
    def _metadata_match(key: str, value: str, params: list[Any]) -> str:
        # `->>` gives a string as it is, and a number, true or false as JSON writes it.
        params += [key, value]
        return "doc->'metadata'->>? = ?"

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the pool (on the store's schema) for what is not a store write: file bytes.

        What runs on it is not in the batch transactions and appends no events.
        """
        async with self._ready().acquire() as conn:
            yield conn

    # -- jobs ---------------------------------------------------------------------

    async def insert_job(self, job: Job, context: EventContext, events: list[NewEvent],
                         idempotency: Idempotency | None = None) -> list[Event]:
        async def insert(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            if job.dedupe_key is not None:
                await self._check_dedupe(conn, job)
            # Admitted before its key is written: a write of a batch has no savepoint of its own, so a NoSlot
            # raised after the key's row would leave it in the batch, and the create's second try as a waiting
            # job would find the key taken by a job that was never inserted (NotFound over the worker channel).
            if occupies(job):
                await self._admit(conn, job)
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
            self._stage_insert(job, context)
            return None, events

        _, added = await self._write(insert, job_id=job.id)
        return added

    async def _check_dedupe(self, conn: asyncpg.Connection, job: Job) -> None:
        """DedupeHit if another job of the type holds the (scope, key) `job` would take (dedupe_slot).

        A lock on the key, held until the batch commits, makes the creates of one key on every replica take
        turns: the one that waited then reads the job the first committed. This batch's own jobs are its
        copies, as its earlier writes left them (not written yet). So the unique index jobs_dedupe, which
        would fail the whole batch, is never what refuses a second job.
        """
        slot = dedupe_slot(job)
        if slot is None:
            return
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", json.dumps([job.job, *slot]))
        for other, _ in self._jobs.values():
            if other.job == job.job and dedupe_slot(other) == slot:
                raise DedupeHit(other)
        row = await conn.fetchrow("SELECT id, doc FROM jobs WHERE type = $1 AND operation = $2 AND dedupe_scope = $3"
                                  " AND dedupe_key = $4", job.type, job.operation, *slot)
        if row is not None and row["id"] not in self._changed:  # a copy changed by this batch was looked at above
            raise DedupeHit(Job.model_validate_json(row["doc"]))

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
        if settings.per_key and job.concurrency_key is not None:
            await self._admit_key(conn, job, settings, now)
        if tokens is not None:  # written once the key admitted it too
            await conn.execute("UPDATE job_settings SET tokens = $2, refilled_at = $3 WHERE job = $1",
                               job.job, tokens, now)

    async def _admit_key(self, conn: asyncpg.Connection, job: Job, settings: JobSettings, now: float) -> None:
        """The per-key half of _admit, under the type's row lock that _admit took first (so replicas admit the
        jobs of a type, and so of each of its keys, one at a time): the key's running jobs are counted as the
        type's are; its bucket and turn are written only once the job is admitted."""
        key = job.concurrency_key
        assert key is not None
        bucket = await conn.fetchrow("SELECT tokens, refilled_at FROM job_keys WHERE job = $1 AND key = $2",
                                     job.job, key)
        running = 0
        if settings.max_running_per_key is not None:
            staged = [*self._jobs, *self._changed]
            running = await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE type = $1 AND operation = $2 AND concurrency_key = $3"
                " AND status IN ('ready', 'executing') AND NOT (id = ANY($4::text[]))",
                job.type, job.operation, key, staged)
            running += sum(1 for other, _ in self._jobs.values() if other.id != job.id and other.job == job.job
                           and other.concurrency_key == key and occupies(other))
        tokens = key_admission(settings, key, running, bucket, now)
        turn = await conn.fetchval("UPDATE job_settings SET starts = starts + 1 WHERE job = $1 RETURNING starts",
                                   job.job)
        await conn.execute("INSERT INTO job_keys (job, key, tokens, refilled_at, last_start)"
                           " VALUES ($1, $2, $3, $4, $5)"
                           " ON CONFLICT (job, key) DO UPDATE SET tokens = excluded.tokens,"
                           " refilled_at = excluded.refilled_at, last_start = excluded.last_start",
                           job.job, key, tokens, now if tokens is not None else None, turn)

    async def set_job_settings(self, settings: JobSettings) -> None:
        async def put(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            await conn.execute("INSERT INTO job_settings (job, doc) VALUES ($1, $2)"
                               " ON CONFLICT (job) DO UPDATE SET doc = excluded.doc",
                               settings.job, settings.model_dump_json())
            return None, []

        await self._write(put)
        self._remember(settings)

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

    # -- schedules ----------------------------------------------------------------

    async def insert_schedule(self, schedule: Schedule, events: list[NewEvent]) -> list[Event]:
        async def insert(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            await conn.execute("INSERT INTO schedules (id, next_run_at, doc) VALUES ($1, $2, $3)",
                               schedule.id, schedule.next_run_at, schedule_doc(schedule))
            return None, events

        _, added = await self._write(insert)
        return added

    async def change_schedule(self, schedule_id: str, rule: ScheduleRule) -> tuple[Schedule | None, list[Event]]:
        async def change(conn: asyncpg.Connection) -> tuple[Schedule | None, list[NewEvent]]:
            # Locked until the batch commits: another replica's sweep of the same tick waits, then reads what this
            # one wrote (READ COMMITTED reads a row it waited for afresh) and finds the tick already taken.
            doc = await conn.fetchval("SELECT doc FROM schedules WHERE id = $1 FOR UPDATE", schedule_id)
            if doc is None:
                raise schedule_not_found(schedule_id)
            current = Schedule.model_validate_json(doc)
            new, events = rule(current)
            if new is None:
                await conn.execute("DELETE FROM schedules WHERE id = $1", schedule_id)
            elif new is not current:
                await conn.execute("UPDATE schedules SET next_run_at = $2, doc = $3 WHERE id = $1",
                                   schedule_id, new.next_run_at, schedule_doc(new))
            return new, events

        return await self._write(change)

    # -- the event log ------------------------------------------------------------

    async def append_events(self, events: list[NewEvent]) -> list[Event]:
        async def append(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            return None, events

        _, added = await self._write(append)
        return added

    async def head(self) -> int:
        return await self._query(number, ("SELECT seq FROM event_head WHERE id = 1", ()))

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

    async def change_user(self, name: str, change: UserChange) -> StoredUser:
        async def change_(conn: asyncpg.Connection) -> tuple[StoredUser, list[NewEvent]]:
            # FOR UPDATE holds the admins' rows until the commit: a replica deciding on them at the same time
            # waits, then reads them as this change left them.
            admins = await conn.fetch(f"SELECT {USER_COLUMNS} FROM users WHERE role = 'admin' ORDER BY name FOR UPDATE")
            row = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE name = $1 FOR UPDATE", name)
            if row is None:
                raise user_not_found(name)
            new = change(stored_user(row), [stored_user(a) for a in admins])
            await conn.execute("UPDATE users SET role = $1, token_hash = $2, doc = $3 WHERE id = $4",
                               new.role, new.token_hash, json.dumps(new.doc), new.id)
            return new, []

        return (await self._write(change_))[0]

    # -- webhooks ---------------------------------------------------------------------

    async def insert_webhook(self, webhook: StoredWebhook, cursor: str) -> None:
        async def insert(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            await conn.execute("INSERT INTO webhooks (id, secret, doc) VALUES ($1, $2, $3)",
                               webhook.id, webhook.secret, json.dumps(webhook.doc))
            await conn.execute("INSERT INTO cursors (name, seq) SELECT $1, seq FROM event_head WHERE id = 1"
                               " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq", cursor)
            return None, []

        await self._write(insert)

    async def put_webhook(self, webhook_id: str, doc: dict[str, Any]) -> None:
        async def put(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            if await conn.execute("UPDATE webhooks SET doc = $1 WHERE id = $2", json.dumps(doc),
                                  webhook_id) == "UPDATE 0":
                raise webhook_not_found(webhook_id)
            return None, []

        await self._write(put)

    async def delete_webhook(self, webhook_id: str, cursor: str) -> bool:
        async def delete(conn: asyncpg.Connection) -> tuple[bool, list[NewEvent]]:
            there = await conn.execute("DELETE FROM webhooks WHERE id = $1", webhook_id) != "DELETE 0"
            await conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id = $1", webhook_id)
            await conn.execute("DELETE FROM cursors WHERE name = $1", cursor)
            return there, []

        there, _ = await self._write(delete)
        return there

    async def lease_webhook(self, webhook_id: str, owner: str, now: float, until: float) -> bool:
        # One UPDATE: its row lock makes two replicas asking at once take turns, and the second sees the first's lease.
        async def lease(conn: asyncpg.Connection) -> tuple[bool, list[NewEvent]]:
            status = await conn.execute("UPDATE webhooks SET lease_owner = $1, lease_until = $2 WHERE id = $3"
                                        " AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until <= $4)",
                                        owner, until, webhook_id, now)
            return status != "UPDATE 0", []

        held, _ = await self._write(lease)
        return held

    async def release_webhook(self, webhook_id: str, owner: str) -> None:
        async def release(conn: asyncpg.Connection) -> tuple[None, list[NewEvent]]:
            await conn.execute("UPDATE webhooks SET lease_owner = NULL, lease_until = NULL"
                               " WHERE id = $1 AND lease_owner = $2", webhook_id, owner)
            return None, []

        await self._write(release)

    async def add_webhook_delivery(self, webhook_id: str, doc: dict[str, Any], keep: int) -> int:
        async def add(conn: asyncpg.Connection) -> tuple[int, list[NewEvent]]:
            pos = await conn.fetchval("INSERT INTO webhook_deliveries (webhook_id, doc) VALUES ($1, $2) RETURNING pos",
                                      webhook_id, json.dumps(doc))
            await conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND pos <= (SELECT pos FROM"
                               " webhook_deliveries WHERE webhook_id = $1 ORDER BY pos DESC LIMIT 1 OFFSET $2)",
                               webhook_id, keep)
            return int(pos), []

        pos, _ = await self._write(add)
        return pos
