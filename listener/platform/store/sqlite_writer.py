"""The SQLite writer: one connection, group commit, a savepoint per write, and the jobs it last committed.

Writes from many coroutines are queued and run by one writer connection: a
batch is one `BEGIN IMMEDIATE ... COMMIT` in which each write has its own
SAVEPOINT (when it needs one), so a write that fails rolls back alone while the
others commit together. One commit serves the whole batch, which is what makes
thousands of small transactions a second cheap.

With `synchronous=NORMAL` a commit appends to the WAL without waiting for the
disk, so a batch takes about as long as its statements: it runs on the event
loop's thread. Handing it to a worker thread instead costs more than it saves:
the two threads pass the GIL back and forth at every statement. What could
block is done elsewhere: checkpoints (which fsync) run in a worker thread on a
connection of their own, and when another process holds the write lock the
batch goes to a worker thread to wait for it there. With `FULL` every commit
waits for fsync, so batches always run in a worker thread.

The part of SqliteStore (sqlite.py) that runs its writes; it declares the state of the store it uses.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import anyio
import anyio.to_thread

from listener.models import Event, EventContext, Job
from listener.platform.store.base import NewEvent, Publisher, job_not_found, publish, settled

__all__ = ["BUSY_TIMEOUT_MS", "WAL_SIZE_LIMIT", "CachedJob", "SqliteWriter", "Synchronous", "Tx"]

T = TypeVar("T")

Synchronous = Literal["NORMAL", "FULL"]


@dataclass(slots=True)
class _Write(Generic[T]):
    fn: Callable[[Tx], T]
    # A lazy write checks everything before it changes anything, and calls `tx.begin()` first
    # only if it could still fail after its first change: most job moves need no savepoint.
    lazy: bool = False
    result: T | None = None
    error: BaseException | None = None
    events: list[Event] = field(default_factory=list)


_CACHE_SIZE = 10_000
BUSY_TIMEOUT_MS = 10_000
# A checkpoint fsyncs the WAL and the database, and commits made meanwhile wait on the disk (5 to 30 ms here),
# so they come every few seconds rather than at SQLite's default of every 1,000 pages (a few hundred commits):
# the WAL then holds a few seconds of writes.
_CHECKPOINT_COMMITS = 5_000
_CHECKPOINT_SECONDS = 5.0
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # what the WAL file is cut back to when it restarts
_GATHER_ROUNDS = 8

CachedJob = tuple[Job, EventContext] | None
"""A job as the writer last committed it (None: deleted)."""


class Tx:
    """One write's view of the open transaction (runs in the writer thread)."""

    def __init__(self, conn: sqlite3.Connection, seq: int, jobs: dict[str, CachedJob]) -> None:
        self.conn = conn
        self.seq = seq
        self.events: list[Event] = []
        self.began = False
        self.jobs = jobs  # what earlier writes of the batch, then earlier batches, left each job as
        self.changed: dict[str, CachedJob] = {}

    def begin(self) -> None:
        """Make what follows undoable on its own (a savepoint), before the write's first change."""
        if not self.began:
            self.conn.execute("SAVEPOINT w")
            self.began = True

    def append(self, new: Sequence[NewEvent]) -> list[Event]:
        added = []
        for n in new:
            self.seq += 1
            event = n.at(self.seq)
            self.conn.execute(
                "INSERT INTO events (seq, topic, job_id, doc) VALUES (?, ?, ?, ?)",
                (event.seq, event.topic, event.context.job_id, event.to_json()),
            )
            added.append(event)
        self.events.extend(added)
        return added


class SqliteWriter:
    """SqliteStore's writer: `_write` queues a write for the next batch, which one connection commits."""

    _synchronous: Synchronous
    _publishers: list[Publisher]
    _pending: list[_Write[Any]]
    _pending_done: anyio.Event
    _wake: anyio.Event
    _writer: sqlite3.Connection | None
    _writer_lock: anyio.Lock
    _checkpointer: sqlite3.Connection | None
    _commits: int
    _checkpoint_due: anyio.Event
    _closed: bool
    _jobs: OrderedDict[str, tuple[Job, EventContext]]
    _data_version: int | None
    _seq: int | None

    async def _write(self, fn: Callable[[Tx], T], *, lazy: bool = False) -> tuple[T, list[Event]]:
        if self._closed:
            raise RuntimeError("The store is closed.")
        write: _Write[T] = _Write(fn, lazy)
        self._pending.append(write)
        done = self._pending_done
        self._wake.set()
        return await settled(write, done)

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            # Let the tasks that are ready to run queue their writes too, so that one commit serves them all:
            # yield to them while that adds writes.
            queued = 0
            for _ in range(_GATHER_ROUNDS):
                if len(self._pending) == queued:
                    break
                queued = len(self._pending)
                await anyio.sleep(0)
            await self._flush()

    async def _flush(self) -> None:
        self._wake = anyio.Event()
        batch, done = self._pending, self._pending_done
        if not batch:
            return
        self._pending, self._pending_done = [], anyio.Event()
        with anyio.CancelScope(shield=True):
            try:
                async with self._writer_lock:
                    if self._synchronous != "NORMAL" or not self._run_batch(batch, wait=False):
                        await anyio.to_thread.run_sync(self._run_batch, batch, True)
                self._commits += 1
                if self._commits >= _CHECKPOINT_COMMITS:
                    self._checkpoint_due.set()
                committed = [e for w in batch if w.error is None for e in w.events]
                if committed:
                    publish(self._publishers, committed)
            finally:
                done.set()

    async def _drain(self) -> None:
        while self._pending:
            await self._flush()

    def _run_batch(self, batch: list[_Write[Any]], wait: bool) -> bool:
        """Run the batch in one transaction; False (and nothing done) if it would have to wait for the lock."""
        conn = self._writer
        assert conn is not None
        changed: dict[str, CachedJob] = {}
        try:
            if not self._begin(conn, wait):
                return False
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version or self._seq is None:
                # Another connection committed (or our last batch failed): our copies may be stale.
                self._jobs.clear()
                self._data_version = version
                self._seq = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
            seq = self._seq
            for write in batch:
                tx = Tx(conn, seq, changed)
                if not write.lazy:
                    tx.begin()
                try:
                    write.result = write.fn(tx)
                except Exception as exc:
                    if tx.began:
                        conn.execute("ROLLBACK TO w")
                        conn.execute("RELEASE w")
                    elif isinstance(exc, sqlite3.Error):
                        raise  # a lazy write that failed in the database may have changed something
                    write.error = exc
                else:
                    if tx.began:
                        conn.execute("RELEASE w")
                    seq = tx.seq
                    write.events = tx.events
                    changed.update(tx.changed)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._jobs.clear()
            self._seq = None
            for write in batch:
                if write.error is None:
                    write.error = exc
                    write.events = []
            return True
        self._seq = seq
        for job_id, entry in changed.items():
            if entry is None:
                self._jobs.pop(job_id, None)
            else:
                self._jobs[job_id] = entry
                self._jobs.move_to_end(job_id)
        while len(self._jobs) > _CACHE_SIZE:
            self._jobs.popitem(last=False)
        return True

    @staticmethod
    def _begin(conn: sqlite3.Connection, wait: bool) -> bool:
        """BEGIN IMMEDIATE: at once, or False if another connection holds the write lock; or waiting for it."""
        if not wait:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                    return False
                raise
            return True
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        finally:
            conn.execute("PRAGMA busy_timeout = 0")
        return True

    async def _checkpoint_forever(self) -> None:
        """Copy the WAL back into the database now and then, off the event loop (a checkpoint fsyncs)."""
        while True:
            with anyio.move_on_after(_CHECKPOINT_SECONDS):
                await self._checkpoint_due.wait()
            if self._commits:
                self._commits = 0
                self._checkpoint_due = anyio.Event()
                await anyio.to_thread.run_sync(self._checkpoint)

    def _checkpoint(self) -> tuple[int, int, int]:
        """(1 if it could not finish, frames in the WAL, frames now in the database)."""
        assert self._checkpointer is not None
        # PASSIVE: copies what no reader still needs, without waiting for or blocking anyone.
        busy, frames, copied = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return busy, frames, copied

    def _job(self, tx: Tx, job_id: str) -> tuple[Job, EventContext]:
        """The job as this batch has it so far, from memory when it can be."""
        entry = tx.jobs[job_id] if job_id in tx.jobs else self._jobs.get(job_id)
        if entry is None and job_id not in tx.jobs:
            row = tx.conn.execute("SELECT doc, ctx FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is not None:
                entry = Job.model_validate_json(row[0]), EventContext.model_validate_json(row[1])
        if entry is None:
            raise job_not_found(job_id)
        return entry
