"""The limits Listener's figures are measured against: the same writes without Listener, and raw pyee.

* SQLite: one job's writes as the SqliteStore makes them, on its own schema, with plain `sqlite3` in WAL mode
  and `synchronous=NORMAL` (DESIGN.md §4): 4 transactions per job (insert the job with job:created and
  job:ready; then ack, tick and complete, each reading the job, updating it and appending its event), the
  job and event documents being real ones of the same size, serialized once beforehand. Two ways: a commit
  per transaction, one after the other; and group commit, the same transaction of 64 jobs in one commit
  (as the store batches concurrent writers).
* PostgreSQL: the same on the PostgresStore's schema with asyncpg and `synchronous_commit` on (the server's
  setting, printed): a commit per transaction with a job in flight on each of 10 connections (the store's
  default pool), and group commit as above with 4 writers (one transaction of 64 jobs each at a time). Event seqs come
  from a sequence, without the store's gap-free head row: the limit is PostgreSQL's, not the design's.
* pyee: `EventEmitter.emit` to 100 handlers on 100 distinct event names, each event reaching the one whose
  name it has: the cheapest in-process fan-out to 100 listeners with distinct filters.

Each figure is jobs/s (events/s = 5 × jobs/s for the stores, emits/s for pyee) for a fixed time per run.

    .venv/bin/python bench/limits.py                     # all three, 3 runs each
    .venv/bin/python bench/limits.py --only sqlite --runs 1
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import asyncpg
from pyee import EventEmitter

from listener import Outcome, Platform
from listener.process import loop_options

GROUP = 64  # jobs per commit in the group-commit variants, and jobs in flight (as the in-process lifecycle)
PG_POOL = 10  # the PostgresStore's default pool size
GROUP_LANES = 4  # writers in the PostgreSQL group-commit variant, each committing GROUP jobs at a time


@dataclass
class Shape:
    """One job's rows as the store writes them: the jobs row's columns at each step, and the event documents."""

    columns: list[str]  # the jobs table's columns, `id` first
    insert: tuple[Any, ...]  # the created job's row (after `id`)
    updates: list[tuple[str, str, Any, Any]]  # per step: status, doc, due_at, finished_at
    created_events: list[tuple[str, str]]  # (topic, doc) appended with the job
    step_events: list[tuple[str, str]]  # one (topic, doc) per update

    @property
    def events_per_job(self) -> int:
        return len(self.created_events) + len(self.step_events)


async def _capture_shape() -> Shape:
    """Run one job through the real platform (SQLite) and keep its rows at each step."""
    with tempfile.TemporaryDirectory(prefix="listener-limits-") as tmp:
        path = Path(tmp) / "shape.db"
        async with Platform.open(str(path), system_jobs=False) as platform:
            jobs = platform.api.jobs
            conn = sqlite3.connect(path)
            try:
                columns = [r[1] for r in conn.execute("PRAGMA table_info(jobs)")]
                columns.remove("id")
                columns.insert(0, "id")
                select = f"SELECT {', '.join(columns)} FROM jobs WHERE id = ?"

                def last_event(job_id: str) -> tuple[str, str]:
                    topic, doc = conn.execute("SELECT topic, doc FROM events WHERE job_id = ? ORDER BY seq DESC"
                                              " LIMIT 1", (job_id,)).fetchone()
                    return str(topic), str(doc)

                job = await jobs.create(type="workbook", operation="bench")
                row = conn.execute(select, (job.id,)).fetchone()
                created = [(str(t), str(d)) for t, d in conn.execute(
                    "SELECT topic, doc FROM events WHERE job_id = ? ORDER BY seq", (job.id,))]
                updates, step_events = [], []
                for step in (lambda: jobs.ack(job.id, info="Accepted", progress=0),
                             lambda: jobs.update(job.id, progress=50, info="half"),
                             lambda: jobs.complete(job.id, outcome=Outcome(message="Job complete."))):
                    await step()
                    r = dict(zip(columns, conn.execute(select, (job.id,)).fetchone(), strict=True))
                    updates.append((r["status"], r["doc"], r.get("due_at"), r.get("finished_at")))
                    step_events.append(last_event(job.id))
            finally:
                conn.close()
    return Shape(columns, tuple(row[1:]), updates, created, step_events)


# -- SQLite -----------------------------------------------------------------------------


def _sqlite_run(shape: Shape, seconds: float, grouped: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="listener-limits-") as tmp:
        path = Path(tmp) / "raw.db"

        async def make_schema() -> None:
            async with Platform.open(str(path), system_jobs=False):
                pass

        anyio.run(make_schema)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        insert_job = (f"INSERT INTO jobs ({', '.join(shape.columns)}) "
                      f"VALUES ({', '.join('?' * len(shape.columns))})")
        insert_event = "INSERT INTO events (topic, job_id, doc) VALUES (?, ?, ?)"
        read = "SELECT doc, ctx FROM jobs WHERE id = ?"
        update = "UPDATE jobs SET status = ?, doc = ?, due_at = ?, finished_at = ? WHERE id = ?"
        batch = GROUP if grouped else 1
        done = 0
        t0 = time.perf_counter()
        try:
            while time.perf_counter() - t0 < seconds:
                ids = [f"jb_raw{uuid.uuid4().hex}" for _ in range(batch)]
                conn.execute("BEGIN IMMEDIATE")
                for job_id in ids:
                    conn.execute(insert_job, (job_id, *shape.insert))
                    for topic, doc in shape.created_events:
                        conn.execute(insert_event, (topic, job_id, doc))
                conn.execute("COMMIT")
                for (status, doc, due, finished), (topic, event_doc) in zip(shape.updates, shape.step_events,
                                                                           strict=True):
                    conn.execute("BEGIN IMMEDIATE")
                    for job_id in ids:
                        conn.execute(read, (job_id,)).fetchone()
                        conn.execute(update, (status, doc, due, finished, job_id))
                        conn.execute(insert_event, (topic, job_id, event_doc))
                    conn.execute("COMMIT")
                done += batch
            wall = time.perf_counter() - t0
        finally:
            conn.close()
    return {"jobs_per_s": done / wall, "events_per_s": done * shape.events_per_job / wall, "jobs": done}


# -- PostgreSQL -------------------------------------------------------------------------


async def _pg_schema(url: str) -> tuple[str, str]:
    """A fresh schema made by the PostgresStore's migrations: (its name, the URL that selects it)."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    scoped = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    async with Platform.open(scoped, system_jobs=False):
        pass
    return schema, scoped


async def _pg_run(url: str, shape: Shape, seconds: float, grouped: bool) -> dict[str, float]:
    schema, _ = await _pg_schema(url)
    try:
        return await _pg_measure(url, schema, shape, seconds, grouped)
    finally:
        subprocess.run(["psql", url, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"], check=False,
                       capture_output=True)


async def _pg_measure(url: str, schema: str, shape: Shape, seconds: float, grouped: bool) -> dict[str, float]:
    pool = await asyncpg.create_pool(url, min_size=PG_POOL, max_size=PG_POOL,
                                     server_settings={"search_path": schema})
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE SEQUENCE raw_seq")
            types = {r["column_name"]: r["data_type"] for r in await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = $1 AND table_name = 'jobs'", schema)}
        # The SQLite row, converted to the PostgreSQL columns the store has (timestamps, jsonb).
        columns = [c for c in shape.columns if c in types]
        values = dict(zip(shape.columns[1:], shape.insert, strict=True))
        row = tuple(_pg_value(values[c], types[c]) for c in columns[1:])
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        insert_job = f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({placeholders})"
        insert_event = "INSERT INTO events (seq, topic, job_id, doc) VALUES (nextval('raw_seq'), $1, $2, $3)"
        read = "SELECT doc, ctx FROM jobs WHERE id = $1 FOR UPDATE"
        has_due = "due_at" in types and "finished_at" in types
        update = ("UPDATE jobs SET status = $1, doc = $2, due_at = $3, finished_at = $4 WHERE id = $5" if has_due
                  else "UPDATE jobs SET status = $1, doc = $2 WHERE id = $3")

        def update_args(step: tuple[str, str, Any, Any], job_id: str) -> tuple[Any, ...]:
            status, doc, due, finished = step
            if has_due:
                return status, doc, _pg_value(due, types["due_at"]), _pg_value(finished, types["finished_at"]), job_id
            return status, doc, job_id

        steps = list(zip(shape.updates, shape.step_events, strict=True))
        done = 0
        deadline = time.perf_counter() + seconds

        async def one_job(conn: asyncpg.Connection) -> None:
            job_id = f"jb_raw{uuid.uuid4().hex}"
            async with conn.transaction():
                await conn.execute(insert_job, job_id, *row)
                for topic, doc in shape.created_events:
                    await conn.execute(insert_event, topic, job_id, doc)
            for step, (topic, event_doc) in steps:
                async with conn.transaction():
                    await conn.fetchrow(read, job_id)
                    await conn.execute(update, *update_args(step, job_id))
                    await conn.execute(insert_event, topic, job_id, event_doc)

        async def one_group(conn: asyncpg.Connection) -> None:
            ids = [f"jb_raw{uuid.uuid4().hex}" for _ in range(GROUP)]
            async with conn.transaction():
                await conn.executemany(insert_job, [(job_id, *row) for job_id in ids])
                await conn.executemany(insert_event, [(topic, job_id, doc) for job_id in ids
                                                      for topic, doc in shape.created_events])
            for step, (topic, event_doc) in steps:
                async with conn.transaction():
                    await conn.fetch("SELECT doc, ctx FROM jobs WHERE id = ANY($1::text[]) FOR UPDATE", ids)
                    await conn.executemany(update, [update_args(step, job_id) for job_id in ids])
                    await conn.executemany(insert_event, [(topic, job_id, event_doc) for job_id in ids])

        async def lane() -> None:
            nonlocal done
            async with pool.acquire() as conn:
                while time.perf_counter() < deadline:
                    if grouped:
                        await one_group(conn)
                        done += GROUP
                    else:
                        await one_job(conn)
                        done += 1

        t0 = time.perf_counter()
        # Group commit: a few writers, each committing GROUP jobs at a time; else a job in flight per connection.
        await asyncio.gather(*(lane() for _ in range(GROUP_LANES if grouped else PG_POOL)))
        wall = time.perf_counter() - t0
    finally:
        await pool.close()
    return {"jobs_per_s": done / wall, "events_per_s": done * shape.events_per_job / wall, "jobs": done}


def _pg_value(value: Any, data_type: str) -> Any:
    if value is None:
        return None
    if data_type.startswith("timestamp"):
        from datetime import UTC, datetime

        return datetime.fromisoformat(value) if isinstance(value, str) else datetime.fromtimestamp(value, UTC)
    if data_type == "boolean":
        return bool(value)
    if data_type in ("double precision", "real") and isinstance(value, str):
        from datetime import datetime

        return datetime.fromisoformat(value).timestamp()
    return value


async def pg_settings(url: str) -> dict[str, str]:
    """The server's durability settings and version, for the table's header."""
    conn = await asyncpg.connect(url)
    try:
        out = {}
        for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method", "full_page_writes"):
            out[name] = str(await conn.fetchval(f"SHOW {name}"))
        return out
    finally:
        await conn.close()


# -- pyee -------------------------------------------------------------------------------


def _pyee_run(seconds: float, handlers: int = 100) -> dict[str, float]:
    emitter = EventEmitter()
    counts = [0] * handlers

    def make(i: int) -> Callable[[Any], None]:
        def handler(event: Any) -> None:
            counts[i] += 1

        return handler

    names = [f"workbook:op{i:03d}" for i in range(handlers)]
    for i, name in enumerate(names):
        emitter.on(name, make(i))
    event = {"topic": "job:updated", "seq": 0}
    emitted = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for name in names:
            emitter.emit(name, event)
        emitted += handlers
    wall = time.perf_counter() - t0
    assert sum(counts) == emitted
    return {"events_per_s": emitted / wall, "events": emitted}


# -- the scenarios ----------------------------------------------------------------------


@dataclass
class Limits:
    """Per-run figures of each limit, by key."""

    runs: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    pg: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


KEYS = {
    "sqlite": ("sqlite_commit", "sqlite_group"),
    "postgres": ("pg_commit", "pg_group"),
    "pyee": ("pyee",),
}


def measure(only: Sequence[str], runs: int, seconds: float, pg_url: str | None) -> Limits:
    out = Limits()
    shape = anyio.run(_capture_shape) if {"sqlite", "postgres"} & set(only) else None
    if "postgres" in only:
        if pg_url is None:
            out.skipped["postgres"] = "no PostgreSQL URL given"
        else:
            try:
                out.pg = anyio.run(pg_settings, pg_url)
            except (OSError, asyncpg.PostgresError) as exc:
                out.skipped["postgres"] = f"PostgreSQL unreachable: {exc}"
    for _ in range(runs):
        if "sqlite" in only and shape is not None:
            out.runs.setdefault("sqlite_commit", []).append(_sqlite_run(shape, seconds, grouped=False))
            out.runs.setdefault("sqlite_group", []).append(_sqlite_run(shape, seconds, grouped=True))
        if "postgres" in only and pg_url is not None and "postgres" not in out.skipped and shape is not None:
            for key, grouped in (("pg_commit", False), ("pg_group", True)):
                out.runs.setdefault(key, []).append(
                    anyio.run(_pg_run, pg_url, shape, seconds, grouped, backend_options=loop_options()))
        if "pyee" in only:
            out.runs.setdefault("pyee", []).append(_pyee_run(min(seconds, 1.0)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=list(KEYS), help="which limits (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="runs; figures are the median (default 3)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per run and limit (default 2)")
    parser.add_argument("--db", default="postgresql://127.0.0.1/test",
                        help="PostgreSQL database for the PostgreSQL limit (a fresh schema per run)")
    args = parser.parse_args(argv)
    limits = measure(args.only or list(KEYS), args.runs, args.seconds, args.db)
    for key, runs in limits.runs.items():
        jobs = [r["jobs_per_s"] for r in runs if "jobs_per_s" in r]
        events = [r["events_per_s"] for r in runs]
        line = f"{key:<14} events/s {statistics.median(events):>12,.0f}"
        if jobs:
            line += f"   jobs/s {statistics.median(jobs):>10,.0f}"
        print(line)
    for key, why in limits.skipped.items():
        print(f"{key}: skipped ({why})")
    if limits.pg:
        print("PostgreSQL", ", ".join(f"{k}={v}" for k, v in limits.pg.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
