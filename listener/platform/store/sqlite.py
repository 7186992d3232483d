"""The embedded SQLite store: one file in WAL mode, no server to start.

SqliteStore is the Store's writes in SQLite's SQL, run by its writer (sqlite_writer.py: one connection,
group commit), and its reads (reads.py), which run on a small pool of connections of their own, in worker
threads (WAL lets them run beside the writer).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.to_thread

from listener.models import Event, EventContext, Job, JobItemError, JobSettings
from listener.platform.store.base import (
    DedupeHit,
    Idempotency,
    IdempotentReplay,
    JobChange,
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
    due_at,
    duration,
    job_exists,
    job_not_found,
    key_admission,
    object_not_found,
    occupies,
    plan_restore,
    record_not_found,
    schedule_doc,
    schedule_not_found,
    status_detail,
    user_exists,
    user_not_found,
    waits_for_slot,
    webhook_not_found,
)
from listener.platform.store.reads import (
    USER_COLUMNS,
    Statement,
    StoreReads,
    like_pattern,
    number,
    part_stats_of,
    stored_user,
)
from listener.platform.store.schema import STEPS
from listener.platform.store.sqlite_writer import BUSY_TIMEOUT_MS, WAL_SIZE_LIMIT, SqliteWriter, Synchronous, Tx
from listener.schedules import Schedule
from listener.tasks import task_scope

__all__ = ["SqliteStore", "Synchronous"]

T = TypeVar("T")

MIGRATIONS: list[str] = [step.sqlite for step in STEPS]
"""This store's scripts of the schema's steps, in order."""

_JOB_COLUMNS = ("status, type, operation, created_by, created_at, due_at, finished_at, parent_id, part, waiting,"
                " status_detail, started_at, duration, dedupe_scope, dedupe_key, priority, concurrency_key")
_JOB_COLUMN_NAMES = _JOB_COLUMNS.split(", ")
_JOB_MARKS = ", ".join("?" * len(_JOB_COLUMN_NAMES))


_ROWS_KEPT = 10_000  # jobs not ended, whose next move is likely; as many as the writer's job cache


def _job_row(job: Job) -> tuple[Any, ...]:
    due = due_at(job)
    slot = dedupe_slot(job) if job.dedupe_key is not None else None
    return (job.status._value_, job.type, job.operation, job.created_by, job.created_at.isoformat(),
            due.timestamp() if due else None, job.finished_at.timestamp() if job.finished_at else None,
            job.parent_id, job.part, int(waits_for_slot(job)), status_detail(job),
            job.started_at.timestamp() if job.started_at else None, duration(job),
            *(slot if slot is not None else (None, None)), job.priority, job.concurrency_key)


def _insert_job(tx: Tx, job: Job, context: EventContext) -> tuple[Any, ...]:
    """Insert the job; its row (_job_row)."""
    row = _job_row(job)
    try:
        tx.conn.execute(f"INSERT INTO jobs (id, {_JOB_COLUMNS}, doc, ctx) VALUES (?, {_JOB_MARKS}, ?, ?)",
                        (job.id, *row, job.model_dump_json(), context.model_dump_json()))
    except sqlite3.IntegrityError:
        raise job_exists(job.id) from None
    return row


def _epoch(instant: datetime | None) -> float | None:
    return None if instant is None else instant.timestamp()


def _update_job(tx: Tx, job_id: str, row: tuple[Any, ...], old: tuple[Any, ...] | None, doc: str) -> None:
    """Write the job's new row, setting only the columns that changed from `old` (None: all of them).

    SQLite rewrites the entries of every index on a column an UPDATE sets, changed or not. A progress
    update changes only due_at (its lease): committed alone with its event, it wrote 7.6 WAL pages
    with every column set and 5.7 with only its own (about 100 → 85 µs here).
    """
    changed = [i for i, value in enumerate(row) if old is None or value != old[i]]
    sets = "".join(f"{_JOB_COLUMN_NAMES[i]} = ?, " for i in changed)
    tx.conn.execute(f"UPDATE jobs SET {sets}doc = ? WHERE id = ?", (*(row[i] for i in changed), doc, job_id))


class SqliteStore(SqliteWriter, StoreReads):
    """The Store on one SQLite file. Open it with `async with SqliteStore.open(path):`."""

    _position = "rowid"
    _waiting = "waiting = 1"
    _id_column = "id"
    _minute = "CAST((finished_at - ?) / 60 AS INTEGER)"  # finished_at in epoch seconds; never before `?`

    def __init__(self, path: Path, *, synchronous: Synchronous = "NORMAL", readers: int = 4) -> None:
        self.path = path
        self._synchronous = synchronous
        self._publishers: list[Publisher] = []
        self._pending = []
        self._pending_done = anyio.Event()
        self._wake = anyio.Event()
        self._writer: sqlite3.Connection | None = None
        self._writer_lock = anyio.Lock()
        self._checkpointer: sqlite3.Connection | None = None
        self._commits = 0  # since the last checkpoint
        self._checkpoint_due = anyio.Event()
        self._readers: list[sqlite3.Connection] = []
        self._reader_count = readers
        self._reader_slots: anyio.Semaphore | None = None
        self._closed = False
        self._limits: dict[str, JobSettings] = {}
        self._limited: dict[str, JobSettings] = {}
        # Jobs as last committed, so a move does not read and parse the row it just wrote. Only the
        # writer touches it; another process's commit (PRAGMA data_version) clears it. So with the log's head.
        self._jobs: OrderedDict[str, tuple[Job, EventContext]] = OrderedDict()
        # The row each job object last written makes (_job_row), by job id: a move sets only the columns that
        # changed from its job's row, and computing that row again was 6 µs of every move. Keyed to the object,
        # so it is right whether or not that write committed.
        self._rows: dict[str, tuple[Job, tuple[Any, ...]]] = {}
        self._data_version: int | None = None
        self._seq: int | None = None

    @classmethod
    @asynccontextmanager
    async def open(
        cls, path: str | Path, *, synchronous: Synchronous = "NORMAL", readers: int = 4
    ) -> AsyncIterator[SqliteStore]:
        """Open (creating and migrating if needed) the database at `path`."""
        store = cls(Path(path), synchronous=synchronous, readers=readers)
        await anyio.to_thread.run_sync(store._connect)
        try:
            async with task_scope() as tg:
                tg.start_soon(store._flush_forever)
                tg.start_soon(store._checkpoint_forever)
                await store.job_settings()
                try:
                    yield store
                finally:
                    await store._drain()
        finally:
            store._closed = True
            await anyio.to_thread.run_sync(store._disconnect)

    def add_publisher(self, publisher: Publisher) -> None:
        self._publishers.append(publisher)

    # -- connections ----------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        return conn

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = self._connection()
        writer.execute("PRAGMA journal_mode = WAL")
        self._migrate(writer)
        # The writer never waits for the lock or checkpoints inside a batch: see sqlite_writer.py.
        writer.execute("PRAGMA busy_timeout = 0")
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        self._writer = writer
        self._checkpointer = self._connection()
        self._readers = [self._connection() for _ in range(self._reader_count)]
        self._reader_slots = anyio.Semaphore(self._reader_count)

    def _disconnect(self) -> None:
        for conn in [self._writer, self._checkpointer, *self._readers]:
            if conn is not None:
                conn.close()
        self._writer, self._checkpointer, self._readers = None, None, []

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- reads ----------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._reader_slots is not None, "The store is not open."
        async with self._reader_slots:
            conn = self._readers.pop()
            try:
                return await anyio.to_thread.run_sync(fn, conn)
            finally:
                self._readers.append(conn)

    async def _query(self, decode: Callable[..., T], *statements: Statement) -> T:
        def run(conn: sqlite3.Connection) -> T:
            return decode(*[conn.execute(sql, params).fetchall() for sql, params in statements])

        return await self._read(run)

    @staticmethod
    def _any_of(column: str, values: Sequence[str], params: list[Any]) -> str:
        params.extend(values)
        return f"{column} IN ({', '.join('?' * len(values))})"

    @staticmethod
    def _instant(instant: datetime) -> float:
        return instant.timestamp()

    @staticmethod
    def _text_match(text: str, params: list[Any]) -> str:
        # SQLite parses a document once for both (it keeps the last few parses of a statement). LIKE is SQLite's:
        # ASCII letters in any case.
        pattern = like_pattern(text)
        params += [pattern, pattern]
        return "(doc ->> '$.info' LIKE ? ESCAPE '\\' OR doc ->> '$.error.message' LIKE ? ESCAPE '\\')"

    @staticmethod
    def _metadata_match(key: str, value: str, params: list[Any]) -> str:
        # `->` gives the value's JSON text: a string quoted, a number, true or false as written.
        params += [f'$.metadata."{key}"', json.dumps(value, ensure_ascii=False), value]
        return "doc -> ? IN (?, ?)"

    # -- jobs -----------------------------------------------------------------

    async def insert_job(self, job: Job, context: EventContext, events: list[NewEvent],
                         idempotency: Idempotency | None = None) -> list[Event]:
        def insert(tx: Tx) -> None:
            slot = dedupe_slot(job) if job.dedupe_key is not None else None
            if slot is not None:
                # One writer at a time (BEGIN IMMEDIATE, across processes too): what this reads stays so until commit.
                held = tx.conn.execute("SELECT id FROM jobs WHERE type = ? AND operation = ? AND dedupe_scope = ?"
                                       " AND dedupe_key = ?", (job.type, job.operation, *slot)).fetchone()
                if held is not None:
                    raise DedupeHit(self._job(tx, held[0])[0])
            if idempotency is not None:
                i = idempotency
                cur = tx.conn.execute("INSERT INTO idempotency_keys (caller, key, body_hash, job_id)"
                                      " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                      (i.caller, i.key, i.body_hash, job.id))
                if cur.rowcount == 0:
                    row = tx.conn.execute("SELECT body_hash, job_id FROM idempotency_keys WHERE caller = ? AND key = ?",
                                          (i.caller, i.key)).fetchone()
                    raise IdempotentReplay(row[1], row[0] == i.body_hash)
            if occupies(job):
                self._admit(tx, job)
            self._remember_row(job, _insert_job(tx, job, context))
            tx.changed[job.id] = (job, context)
            tx.append(events)

        _, added = await self._write(insert)
        return added

    async def change_job(self, job_id: str, rule: JobRule) -> tuple[Job | None, list[Event]]:
        def change(tx: Tx) -> Job | None:
            # A job this writer wrote has exactly its _job_row in its row; one read from the file may not (a
            # column added by a migration is filled in by the job's next update).
            known = job_id in tx.jobs or job_id in self._jobs
            job, ctx = self._job(tx, job_id)
            outcome: JobChange = rule(job, ctx)
            if outcome.job is job and not outcome.events and not outcome.inserts:
                return job  # nothing to do
            if outcome.inserts:
                tx.begin()  # a part's insert can still fail after the parent's update
            tx.changed[job_id] = None if outcome.job is None else (outcome.job, ctx)
            if outcome.job is None:
                tx.conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                self._rows.pop(job_id, None)
                tx.conn.execute("DELETE FROM job_data WHERE job_id = ?", (job_id,))
            else:
                new = outcome.job
                if occupies(new) and not occupies(job):
                    self._admit(tx, new)
                memo = self._rows.get(job_id)
                old = memo[1] if memo is not None and memo[0] is job else _job_row(job) if known else None
                row = _job_row(new)
                _update_job(tx, job_id, row, old, new.model_dump_json())
                if new.status.is_terminal:
                    self._rows.pop(job_id, None)  # moves of an ended job are rare: kept, it would hold the job
                else:
                    self._remember_row(new, row)
            if outcome.data:
                tx.conn.executemany("INSERT INTO job_data (job_id, row) VALUES (?, ?)",
                                    [(job_id, json.dumps(row)) for row in outcome.data])
            tx.append(outcome.events)
            for child, child_ctx, child_events in outcome.inserts:
                self._remember_row(child, _insert_job(tx, child, child_ctx))
                tx.changed[child.id] = (child, child_ctx)
                tx.append(child_events)
            return outcome.job

        return await self._write(change, lazy=True)

    def _remember_row(self, job: Job, row: tuple[Any, ...]) -> None:
        if len(self._rows) >= _ROWS_KEPT:
            self._rows.clear()  # a move then computes its old row once more: cheaper than keeping an order
        self._rows[job.id] = (job, row)

    def _admit(self, tx: Tx, job: Job) -> None:
        """Take a running slot (and a start, if rate-limited) for a job about to become ready, or NoSlot."""
        settings = self._limited.get(job.job)
        if settings is None:
            return
        running = 0
        if settings.max_running is not None:
            running = tx.conn.execute(
                "SELECT count(*) FROM jobs WHERE type = ? AND operation = ? AND status IN ('ready', 'executing')"
                " AND id != ?", (job.type, job.operation, job.id)).fetchone()[0]
        bucket = tx.conn.execute("SELECT tokens, refilled_at FROM job_settings WHERE job = ?", (job.job,)).fetchone()
        now = job.updated_at.timestamp()
        tokens = admission(settings, running, bucket, now)
        key = job.concurrency_key
        if settings.per_key and key is not None:
            key_running = 0
            if settings.max_running_per_key is not None:
                key_running = tx.conn.execute(
                    "SELECT count(*) FROM jobs WHERE type = ? AND operation = ? AND concurrency_key = ?"
                    " AND status IN ('ready', 'executing') AND id != ?",
                    (job.type, job.operation, key, job.id)).fetchone()[0]
            key_bucket = None
            if settings.starts_per_second_per_key is not None:
                key_bucket = tx.conn.execute("SELECT tokens, refilled_at FROM job_keys WHERE job = ? AND key = ?",
                                             (job.job, key)).fetchone()
            key_tokens = key_admission(settings, key, key_running, key_bucket, now)
            turn = tx.conn.execute("UPDATE job_settings SET starts = starts + 1 WHERE job = ? RETURNING starts",
                                   (job.job,)).fetchone()[0]
            tx.conn.execute("INSERT INTO job_keys (job, key, tokens, refilled_at, last_start) VALUES (?, ?, ?, ?, ?)"
                            " ON CONFLICT (job, key) DO UPDATE SET tokens = excluded.tokens,"
                            " refilled_at = excluded.refilled_at, last_start = excluded.last_start",
                            (job.job, key, key_tokens, now if key_tokens is not None else None, turn))
        if tokens is not None:  # written once the key admitted it too
            tx.conn.execute("UPDATE job_settings SET tokens = ?, refilled_at = ? WHERE job = ?", (tokens, now, job.job))

    async def set_job_settings(self, settings: JobSettings) -> None:
        def put(tx: Tx) -> None:
            tx.conn.execute("INSERT INTO job_settings (job, doc) VALUES (?, ?)"
                            " ON CONFLICT (job) DO UPDATE SET doc = excluded.doc",
                            (settings.job, settings.model_dump_json()))

        await self._write(put)
        self._remember(settings)

    async def part_stats(self, parent_id: str) -> PartStats:
        return await self._query(part_stats_of, ("SELECT status, count(*), sum(json_extract(doc, '$.progress'))"
                                                 " FROM jobs WHERE parent_id = ? GROUP BY status", (parent_id,)),
                                 ("SELECT part FROM jobs WHERE parent_id = ? AND status IN ('failed', 'cancelled')"
                                  " ORDER BY part", (parent_id,)))

    async def add_job_errors(self, job_id: str, errors: list[JobItemError]) -> int:
        def add(tx: Tx) -> int:
            if tx.conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise job_not_found(job_id)
            tx.conn.executemany("INSERT INTO job_errors (job_id, item, message, created_at) VALUES (?, ?, ?, ?)",
                                [(job_id, e.item, e.message, e.created_at.isoformat() if e.created_at else "")
                                 for e in errors])
            return int(tx.conn.execute("SELECT count(*) FROM job_errors WHERE job_id = ?", (job_id,)).fetchone()[0])

        count, _ = await self._write(add)
        return count

    async def secret(self, name: str) -> str:
        def get(tx: Tx) -> str:
            tx.conn.execute("INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                            (name, secrets.token_hex(32)))
            return str(tx.conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()[0])

        value, _ = await self._write(get)
        return value

    async def prune_job_data(self, finished_before: datetime) -> int:
        def prune(tx: Tx) -> int:
            cur = tx.conn.execute("DELETE FROM job_data WHERE job_id IN (SELECT id FROM jobs WHERE finished_at <= ?)",
                                  (finished_before.timestamp(),))
            return cur.rowcount

        pruned, _ = await self._write(prune)
        return pruned

    async def prune_jobs(self, finished_before: datetime, limit: int) -> int:
        def prune(tx: Tx) -> int:
            ids = [r[0] for r in tx.conn.execute("SELECT id FROM jobs WHERE finished_at < ? LIMIT ?",
                                                 (finished_before.timestamp(), limit))]
            tables = (("events", "job_id"), ("job_errors", "job_id"), ("job_data", "job_id"), ("jobs", "id"))
            tx.changed.update(dict.fromkeys(ids))
            for table, column in tables:
                tx.conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i in ids])
            return len(ids)

        pruned, _ = await self._write(prune)
        return pruned

    # -- domain objects -------------------------------------------------------

    async def put_objects(self, objects: list[StoredObject], events: list[NewEvent]) -> list[Event]:
        def put(tx: Tx) -> None:
            tx.conn.executemany(
                "INSERT OR REPLACE INTO objects (id, kind, parent_id, doc) VALUES (?, ?, ?, ?)",
                [(o.id, o.kind, o.parent_id, json.dumps(o.doc)) for o in objects],
            )
            tx.append(events)

        _, added = await self._write(put)
        return added

    async def delete_objects(self, object_ids: list[str], events: list[NewEvent]) -> list[Event]:
        def delete(tx: Tx) -> None:
            ids = [(i,) for i in object_ids]
            tx.conn.executemany("DELETE FROM snapshot_records WHERE snapshot_id IN"
                                " (SELECT id FROM objects WHERE kind = 'snapshot' AND parent_id = ?)", ids)
            tx.conn.executemany("DELETE FROM objects WHERE kind = 'snapshot' AND parent_id = ?", ids)
            tx.conn.executemany("DELETE FROM objects WHERE id = ?", ids)
            tx.conn.executemany("DELETE FROM records WHERE sheet_id = ?", ids)
            tx.append(events)

        _, added = await self._write(delete)
        return added

    async def change_object(self, object_id: str, kind: str,
                            change: ObjectChange) -> tuple[StoredObject | None, list[Event]]:
        def change_(tx: Tx) -> StoredObject | None:
            row = tx.conn.execute("SELECT parent_id, doc FROM objects WHERE id = ? AND kind = ?",
                                  (object_id, kind)).fetchone()
            if row is None:
                raise object_not_found(kind, object_id)
            doc, events = change(StoredObject(object_id, kind, row[0], json.loads(row[1])))
            if doc is None:
                tx.conn.execute("DELETE FROM objects WHERE id = ?", (object_id,))
            else:  # an UPDATE, not a REPLACE: the object keeps its place in listings
                tx.conn.execute("UPDATE objects SET doc = ? WHERE id = ?", (json.dumps(doc), object_id))
            tx.append(events)
            return None if doc is None else StoredObject(object_id, kind, row[0], doc)

        return await self._write(change_)

    # -- records --------------------------------------------------------------

    async def change_records(self, changes: RecordChanges, events: list[NewEvent]) -> list[Event]:
        def change(tx: Tx) -> None:
            conn = tx.conn
            conn.executemany(
                "INSERT INTO records (id, sheet_id, vals, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                [
                    (r.id, r.sheet_id, json.dumps(r.values), r.created_at.isoformat(), r.updated_at.isoformat())
                    for r in changes.insert
                ],
            )
            stamp = changes.updated_at.isoformat() if changes.updated_at else None
            for record_id, values in changes.update.items():
                row = conn.execute(
                    "SELECT vals FROM records WHERE id = ? AND sheet_id = ?", (record_id, changes.sheet_id)
                ).fetchone()
                if row is None:
                    raise record_not_found(record_id, changes.sheet_id)
                merged = {**json.loads(row[0]), **values}
                conn.execute("UPDATE records SET vals = ?, updated_at = ? WHERE id = ?",
                             (json.dumps(merged), stamp, record_id))
            for record_id in changes.delete:
                cur = conn.execute("DELETE FROM records WHERE id = ? AND sheet_id = ?", (record_id, changes.sheet_id))
                if cur.rowcount == 0:
                    raise record_not_found(record_id, changes.sheet_id)
            tx.append(events)

        _, added = await self._write(change)
        return added

    # -- snapshots ------------------------------------------------------------

    async def create_snapshot(self, snapshot_id: str, sheet_id: str,
                              make: SnapshotMake) -> tuple[StoredObject, list[Event]]:
        def create(tx: Tx) -> StoredObject:
            conn = tx.conn
            if conn.execute("SELECT 1 FROM objects WHERE id = ? AND kind = 'sheet'", (sheet_id,)).fetchone() is None:
                raise object_not_found("sheet", sheet_id)
            count = conn.execute(
                "INSERT INTO snapshot_records (snapshot_id, pos, id, vals, created_at, updated_at)"
                " SELECT ?, row_number() OVER (ORDER BY pos), id, vals, created_at, updated_at"
                " FROM records WHERE sheet_id = ?", (snapshot_id, sheet_id)).rowcount
            doc, events = make(count)
            conn.execute("INSERT INTO objects (id, kind, parent_id, doc) VALUES (?, 'snapshot', ?, ?)",
                         (snapshot_id, sheet_id, json.dumps(doc)))
            tx.append(events)
            return StoredObject(snapshot_id, "snapshot", sheet_id, doc)

        return await self._write(create)

    async def restore_snapshot(self, snapshot_id: str, sheet_id: str, now: datetime,
                               make: RestoreMake) -> tuple[RecordCounts, list[Event]]:
        def restore(tx: Tx) -> RecordCounts:
            conn = tx.conn
            if conn.execute("SELECT 1 FROM objects WHERE id = ? AND kind = 'snapshot'",
                            (snapshot_id,)).fetchone() is None:
                raise object_not_found("snapshot", snapshot_id)
            saved = conn.execute("SELECT id, vals, created_at, updated_at FROM snapshot_records WHERE snapshot_id = ?"
                                 " ORDER BY pos", (snapshot_id,)).fetchall()
            current = conn.execute("SELECT id, vals, updated_at FROM records WHERE sheet_id = ?",
                                   (sheet_id,)).fetchall()
            rows, counts = plan_restore(saved, current, sheet_id, now.isoformat())
            # Every row again, in the snapshot's order: the sheet reads back as it did when it was taken.
            conn.execute("DELETE FROM records WHERE sheet_id = ?", (sheet_id,))
            conn.executemany("INSERT INTO records (id, sheet_id, vals, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                             rows)
            tx.append(make(counts))
            return counts

        return await self._write(restore)

    async def delete_snapshot(self, snapshot_id: str, events: list[NewEvent]) -> list[Event]:
        def delete(tx: Tx) -> None:
            if tx.conn.execute("DELETE FROM objects WHERE id = ? AND kind = 'snapshot'", (snapshot_id,)).rowcount == 0:
                raise object_not_found("snapshot", snapshot_id)
            tx.conn.execute("DELETE FROM snapshot_records WHERE snapshot_id = ?", (snapshot_id,))
            tx.append(events)

        _, added = await self._write(delete)
        return added

    # -- schedules ------------------------------------------------------------

    async def insert_schedule(self, schedule: Schedule, events: list[NewEvent]) -> list[Event]:
        def insert(tx: Tx) -> None:
            tx.conn.execute("INSERT INTO schedules (id, next_run_at, doc) VALUES (?, ?, ?)",
                            (schedule.id, _epoch(schedule.next_run_at), schedule_doc(schedule)))
            tx.append(events)

        _, added = await self._write(insert)
        return added

    async def change_schedule(self, schedule_id: str, rule: ScheduleRule) -> tuple[Schedule | None, list[Event]]:
        def change(tx: Tx) -> Schedule | None:
            row = tx.conn.execute("SELECT doc FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
            if row is None:
                raise schedule_not_found(schedule_id)
            current = Schedule.model_validate_json(row[0])
            new, events = rule(current)
            if new is None:
                tx.conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
            elif new is not current:
                tx.conn.execute("UPDATE schedules SET next_run_at = ?, doc = ? WHERE id = ?",
                                (_epoch(new.next_run_at), schedule_doc(new), schedule_id))
            tx.append(events)
            return new

        return await self._write(change)

    # -- the event log --------------------------------------------------------

    async def append_events(self, events: list[NewEvent]) -> list[Event]:
        _, added = await self._write(lambda tx: tx.append(events))
        return added

    async def head(self) -> int:
        return await self._query(number, ("SELECT coalesce(max(seq), 0) FROM events", ()))

    # -- cursors --------------------------------------------------------------

    async def set_cursor(self, name: str, seq: int) -> None:
        def set_(tx: Tx) -> None:
            # A cursor only moves forward: a late, slower writer must not rewind it.
            tx.conn.execute(
                "INSERT INTO cursors (name, seq) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET seq = max(seq, excluded.seq)",
                (name, seq),
            )

        await self._write(set_)

    # -- users ----------------------------------------------------------------

    async def insert_user(self, user: StoredUser) -> None:
        def insert(tx: Tx) -> None:
            try:
                tx.conn.execute("INSERT INTO users (id, name, role, token_hash, doc) VALUES (?, ?, ?, ?, ?)",
                                (user.id, user.name, user.role, user.token_hash, json.dumps(user.doc)))
            except sqlite3.IntegrityError:
                raise user_exists(user.name) from None

        await self._write(insert)

    async def change_user(self, name: str, change: UserChange) -> StoredUser:
        def change_(tx: Tx) -> StoredUser:
            # The writer's transaction is the only one writing (BEGIN IMMEDIATE): the admins read here stay as read.
            row = tx.conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise user_not_found(name)
            admins = tx.conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE role = 'admin' ORDER BY name").fetchall()
            new = change(stored_user(row), [stored_user(a) for a in admins])
            tx.conn.execute("UPDATE users SET role = ?, token_hash = ?, doc = ? WHERE id = ?",
                            (new.role, new.token_hash, json.dumps(new.doc), new.id))
            return new

        return (await self._write(change_))[0]

    # -- webhooks -------------------------------------------------------------

    async def insert_webhook(self, webhook: StoredWebhook, cursor: str) -> None:
        def insert(tx: Tx) -> None:
            tx.conn.execute("INSERT INTO webhooks (id, secret, doc) VALUES (?, ?, ?)",
                            (webhook.id, webhook.secret, json.dumps(webhook.doc)))
            tx.conn.execute("INSERT INTO cursors (name, seq) SELECT ?, coalesce(max(seq), 0) FROM events WHERE true"
                            " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq", (cursor,))

        await self._write(insert)

    async def put_webhook(self, webhook_id: str, doc: dict[str, Any]) -> None:
        def put(tx: Tx) -> None:
            if tx.conn.execute("UPDATE webhooks SET doc = ? WHERE id = ?", (json.dumps(doc), webhook_id)).rowcount == 0:
                raise webhook_not_found(webhook_id)

        await self._write(put)

    async def delete_webhook(self, webhook_id: str, cursor: str) -> bool:
        def delete(tx: Tx) -> bool:
            there = tx.conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount > 0
            tx.conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,))
            tx.conn.execute("DELETE FROM cursors WHERE name = ?", (cursor,))
            return there

        there, _ = await self._write(delete)
        return there

    async def lease_webhook(self, webhook_id: str, owner: str, now: float, until: float) -> bool:
        def lease(tx: Tx) -> bool:
            return bool(tx.conn.execute(
                "UPDATE webhooks SET lease_owner = ?, lease_until = ? WHERE id = ?"
                " AND (lease_owner IS NULL OR lease_owner = ? OR lease_until <= ?)",
                (owner, until, webhook_id, owner, now)).rowcount)

        held, _ = await self._write(lease)
        return held

    async def release_webhook(self, webhook_id: str, owner: str) -> None:
        def release(tx: Tx) -> None:
            tx.conn.execute("UPDATE webhooks SET lease_owner = NULL, lease_until = NULL"
                            " WHERE id = ? AND lease_owner = ?", (webhook_id, owner))

        await self._write(release)

    async def add_webhook_delivery(self, webhook_id: str, doc: dict[str, Any], keep: int) -> int:
        def add(tx: Tx) -> int:
            pos = tx.conn.execute("INSERT INTO webhook_deliveries (webhook_id, doc) VALUES (?, ?)",
                                  (webhook_id, json.dumps(doc))).lastrowid
            tx.conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ? AND pos <= (SELECT pos FROM"
                            " webhook_deliveries WHERE webhook_id = ? ORDER BY pos DESC LIMIT 1 OFFSET ?)",
                            (webhook_id, webhook_id, keep))
            return int(pos or 0)

        pos, _ = await self._write(add)
        return pos
