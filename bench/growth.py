"""Growth: listing jobs with 1,000,000 in the store, and a 100,000-job soak whose memory should stay flat.

* list: a fresh database (SQLite file, or a fresh PostgreSQL schema) made by the platform's own migrations, one
  real job created through the Api as a template, then `--rows` jobs (default 1,000,000) inserted with one
  `INSERT ... SELECT` in the store's own tables: every column copied from the template, with its id, status,
  type and operation (in the documents too) varied: 80 % complete, 10 % failed, 5 % cancelled, 2 % executing,
  2 % ready, 1 % scheduled, over the 5 job types and 4 operations. The jobs table's indexes are dropped for the
  insert and made again after it (what they would hold either way; it is only faster), and PostgreSQL is
  VACUUM ANALYZEd as its autovacuum would have done; SQLite is left as the store leaves it. Then the platform is
  opened on it and `platform.api.jobs.list(status=..., type=...)` (the first page, 50 jobs, and the total) is
  timed, rotating over four (status, type) pairs from rare to common; p50/p99 per run.
* soak: job_handler in-process on SQLite, as bench/lifecycle.py, for `--soak-jobs` jobs (default 100,000) kept
  64 at a time in the system (a new job is created as one ends), or until `--soak-seconds`; the process's RSS
  (resident now, not peak) after 10 % of the jobs and at the end, and its growth between them. (The SQLite
  store keeps the last 10,000 jobs it wrote in memory, so RSS rises over the first 10,000 jobs by design.)

    .venv/bin/python bench/growth.py                                   # both, SQLite
    .venv/bin/python bench/growth.py --only list --db postgresql://127.0.0.1/test
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import asyncpg

from listener import Event, Listener, Platform
from listener.process import loop_options
from listener.topics import JOB_CANCELLED, JOB_COMPLETED, JOB_FAILED
from plugins.job_handler import Tick, job_handler

# (share in 100, status), the rest of the statuses a store of finished work holds.
STATUSES = [(80, "complete"), (10, "failed"), (5, "cancelled"), (2, "executing"), (2, "ready"), (1, "scheduled")]
TERMINAL = ("complete", "failed", "cancelled")
TYPES = ["space", "workbook", "sheet", "file", "document"]
OPERATIONS = ["export", "import", "extract", "findReplace"]
# From rare to common: ~0.4 %, 2 %, 16 % of the rows match.
QUERIES = [("ready", "workbook"), ("failed", "sheet"), ("complete", "file"), ("executing", "document")]



def _index_name(sql: str) -> str:
    """The name a `CREATE [UNIQUE] INDEX name ON ...` statement gives its index."""
    found = re.search(r"INDEX\s+(\w+)", sql)
    assert found is not None, sql
    return found.group(1)

def _status_of(m: int) -> str:
    bound = 0
    for share, status in STATUSES:
        bound += share
        if m < bound:
            return status
    raise AssertionError(m)


# Row n of the seed is variant n % VARIANTS: status by n % 100, type by n / 100 % 5, operation by n / 500 % 4.
VARIANTS = 100 * len(TYPES) * len(OPERATIONS)
VARIANT_OF = f"((n % 100) * {len(TYPES) * len(OPERATIONS)} + (n / 100 % {len(TYPES)}) * {len(OPERATIONS)}" \
             f" + (n / 500 % {len(OPERATIONS)}))"


def _variants(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The template job's row as each (status, type, operation) seeded, documents included; by variant number."""
    doc, ctx = json.loads(template["doc"]), json.loads(template["ctx"])
    finished = datetime.now(UTC)
    out = []
    for m in range(100):
        status = _status_of(m)
        for kind in TYPES:
            for op in OPERATIONS:
                ended = status in TERMINAL
                d = {**doc, "status": status, "type": kind, "operation": op, "job": f"{kind}:{op}",
                     "finishedAt": finished.isoformat().replace("+00:00", "Z") if ended else None}
                c = {**ctx, "job": f"{kind}:{op}", "domain": kind, "operation": op}
                out.append({"status": status, "type": kind, "operation": op,
                            "doc": json.dumps(d, separators=(",", ":")), "ctx": json.dumps(c, separators=(",", ":")),
                            "ended": ended, "finished": finished})
    return out


async def _template(url: str) -> str:
    async with Platform.open(url, system_jobs=False) as platform:
        job = await platform.api.jobs.create(type="workbook", operation="export")
        return job.id


# -- SQLite ---------------------------------------------------------------------------------


def seed_sqlite(path: Path, rows: int, template: str) -> float:
    """Fill the jobs table to `rows` rows from the template job; returns the seconds it took."""
    t0 = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # Seeding only, with the platform closed (nothing measured depends on it): no journal, no syncs; the
        # store's WAL mode is set back afterwards.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (template,)).fetchone()
        conn.row_factory = None
        columns = list(row.keys())
        indexes = [r[0] for r in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL")]
        conn.execute("CREATE TEMP TABLE variants (k INTEGER PRIMARY KEY, status, type, operation, doc, ctx,"
                     " due_at, finished_at)")
        conn.executemany("INSERT INTO temp.variants VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
            (k, v["status"], v["type"], v["operation"], v["doc"], v["ctx"], None if v["ended"] else row["due_at"],
             v["finished"].timestamp() if v["ended"] else None)
            for k, v in enumerate(_variants(dict(row)))])
        job_id = "('jb_seed' || printf('%018d', n))"
        overrides = {"id": job_id, "status": "v.status", "type": "v.type", "operation": "v.operation",
                     "doc": f"replace(v.doc, '{template}', {job_id})", "ctx": f"replace(v.ctx, '{template}', {job_id})",
                     "due_at": "v.due_at", "finished_at": "v.finished_at"}
        select = ", ".join(overrides.get(c, f"t.{c}") for c in columns)
        conn.execute("BEGIN")
        for sql in indexes:
            conn.execute(f"DROP INDEX {_index_name(sql)}")
        conn.execute(
            f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) "
            f"INSERT INTO jobs ({', '.join(columns)}) SELECT {select} FROM s"
            f" JOIN temp.variants v ON v.k = {VARIANT_OF}, (SELECT * FROM jobs WHERE id = ?) t",
            (rows - 1, template))
        for sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    return time.perf_counter() - t0


# -- PostgreSQL -----------------------------------------------------------------------------


async def seed_postgres(url: str, schema: str, rows: int, template: str) -> float:
    t0 = time.perf_counter()
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        await conn.execute("SET synchronous_commit = off")  # seeding only
        await conn.execute("SET maintenance_work_mem = '256MB'")
        row = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", template)
        serial = {r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'jobs'"
            " AND column_default LIKE 'nextval%'", schema)}
        columns = [c for c in row.keys() if c not in serial]
        indexes = [(r["indexname"], r["indexdef"]) for r in await conn.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = $1 AND i.tablename = 'jobs'"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname"
            " AND c.connamespace = $1::regnamespace)", schema)]
        template_row = {**dict(row), "doc": row["doc"], "ctx": row["ctx"]}
        await conn.execute("CREATE TEMP TABLE variants (k int PRIMARY KEY, status text, type text, operation text,"
                           " doc text, ctx text, due_at timestamptz, finished_at timestamptz)")
        await conn.executemany("INSERT INTO variants VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", [
            (k, v["status"], v["type"], v["operation"], v["doc"], v["ctx"], None if v["ended"] else row["due_at"],
             v["finished"] if v["ended"] else None)
            for k, v in enumerate(_variants(template_row))])
        job_id = "('jb_seed' || lpad(n::text, 18, '0'))"
        overrides = {"id": job_id, "status": "v.status", "type": "v.type", "operation": "v.operation",
                     "doc": f"replace(v.doc, '{template}', {job_id})::jsonb",
                     "ctx": f"replace(v.ctx, '{template}', {job_id})::jsonb",
                     "due_at": "v.due_at", "finished_at": "v.finished_at"}
        select = ", ".join(overrides.get(c, f"t.{c}") for c in columns)
        async with conn.transaction():
            for name, _ in indexes:
                await conn.execute(f"DROP INDEX {name}")
            await conn.execute(
                f"INSERT INTO jobs ({', '.join(columns)}) SELECT {select} FROM generate_series(1, $1) s(n)"
                f" JOIN variants v ON v.k = {VARIANT_OF}, (SELECT * FROM jobs WHERE id = $2) t", rows - 1, template)
            for _, sql in indexes:
                await conn.execute(sql)
        await conn.execute("VACUUM ANALYZE jobs")  # as autovacuum does after many inserts
    finally:
        await conn.close()
    return time.perf_counter() - t0


# -- the list queries -----------------------------------------------------------------------


async def time_queries(url: str, runs: int, queries: int, seconds: float) -> list[dict[str, float]]:
    out = []
    async with Platform.open(url, system_jobs=False) as platform:
        jobs = platform.api.jobs
        page = await jobs.list(status=QUERIES[0][0], type=QUERIES[0][1])  # warm: connections, caches
        for _ in range(runs):
            took: list[float] = []
            t0 = time.perf_counter()
            while len(took) < queries and time.perf_counter() - t0 < seconds:
                status, kind = QUERIES[len(took) % len(QUERIES)]
                start = time.perf_counter()
                page = await jobs.list(status=status, type=kind)
                took.append((time.perf_counter() - start) * 1000)
                assert page.items, f"no {status} {kind} job in the seeded store"
            out.append({"p50_ms": _pct(took, 50), "p99_ms": _pct(took, 99), "queries": len(took)})
    return out


def _pct(values: Sequence[float], p: int) -> float:
    return values[0] if len(values) == 1 else statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def measure_list(backend: str, rows: int, runs: int, queries: int, seconds: float,
                 pg_url: str | None = None) -> dict[str, Any]:
    """Seed a fresh store with `rows` jobs and time the list queries: {"seed_s", "rows", "runs": [...]}."""
    with tempfile.TemporaryDirectory(prefix="listener-growth-") as tmp:
        if backend == "sqlite":
            path = Path(tmp) / "growth.db"
            template = anyio.run(_template, str(path))
            # Seeded in a process of its own, so that SQLite's memory for the big insert is not this process's
            # peak RSS, which is the listing's.
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                seed_s = pool.submit(seed_sqlite, path, rows, template).result()
            results = anyio.run(time_queries, str(path), runs, queries, seconds, backend_options=loop_options())
            return {"seed_s": seed_s, "rows": rows, "runs": results}
        assert pg_url is not None
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        scoped = f"{pg_url}{'&' if '?' in pg_url else '?'}schema={schema}"
        try:
            template = anyio.run(_template, scoped)
            seed_s = anyio.run(seed_postgres, pg_url, schema, rows, template)
            results = anyio.run(time_queries, scoped, runs, queries, seconds, backend_options=loop_options())
        finally:
            subprocess.run(["psql", pg_url, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"], check=False,
                           capture_output=True)
        return {"seed_s": seed_s, "rows": rows, "runs": results}


# -- the soak -------------------------------------------------------------------------------


def rss_mib() -> float:
    """Resident memory now (not the peak), from /proc; 0 where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def soak(jobs_total: int, max_seconds: float, in_system: int = 64) -> dict[str, float]:
    """job_handler in-process on SQLite with `in_system` jobs at a time; RSS at 10 % of the jobs and at the end.

    RSS is read every 1 % of `jobs_total`; the "10 %" figure is the one at 10 % of `jobs_total`, or, when the time
    cap stopped the soak before that, at 10 % of the jobs it did.
    """
    ended = 0
    created = 0
    failed = 0
    slots = anyio.Semaphore(in_system)
    done = anyio.Event()
    step = max(1, jobs_total // 100)
    samples: list[tuple[int, float]] = []  # (jobs ended, RSS MiB)

    async def handler(event: Event, tick: Tick) -> None:
        await tick(50, "half")

    def on_batch(events: Sequence[Event]) -> None:
        nonlocal ended, failed
        before = ended
        for e in events:
            if e.topic in (JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED) and e.context.job == "workbook:soak":
                ended += 1
                failed += e.topic != JOB_COMPLETED
                slots.release()
        if ended // step > before // step:
            samples.append((ended, rss_mib()))
        if ended >= created and stopped:
            done.set()

    stopped = False
    listener = Listener("soak").use(job_handler("workbook:soak", handler))
    with tempfile.TemporaryDirectory(prefix="listener-soak-") as tmp:
        async with Platform.open(str(Path(tmp) / "soak.db"), system_jobs=False) as platform:
            platform.eventlog.on_batch(on_batch)
            jobs = platform.api.jobs
            async with platform.running(listener, agent="soak", concurrency=in_system):
                t0 = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    while created < jobs_total and time.perf_counter() - t0 < max_seconds:
                        await slots.acquire()
                        created += 1
                        tg.start_soon(functools.partial(jobs.create, type="workbook", operation="soak"))
                stopped = True
                if ended >= created:
                    done.set()
                with anyio.fail_after(60):
                    await done.wait()
                wall = time.perf_counter() - t0
                rss_end = rss_mib()
            platform.eventlog.off_batch(on_batch)
    mark = jobs_total // 10 if ended >= jobs_total // 10 else ended // 10
    at_10, rss_10 = next(((n, rss) for n, rss in samples if n >= mark), (ended, rss_end))
    return {"jobs_per_s": ended / wall, "jobs": ended, "planned": jobs_total, "failed": failed, "wall_s": wall,
            "rss_10_mib": rss_10, "rss_10_jobs": at_10, "rss_end_mib": rss_end,
            "rss_growth": (rss_end - rss_10) / rss_10 if rss_10 else 0.0}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["list", "soak"], default=None, help="one of the two (default: both)")
    parser.add_argument("--db", default=None, help="postgresql://... to list on PostgreSQL (default: SQLite)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs in the store for list (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the list queries (default 3)")
    parser.add_argument("--queries", type=int, default=200, help="list queries per run, at most (default 200)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per run of queries, at most (default 5)")
    parser.add_argument("--soak-jobs", type=int, default=100_000, help="jobs in the soak (default 100,000)")
    parser.add_argument("--soak-seconds", type=float, default=120.0, help="the soak's time cap (default 120)")
    args = parser.parse_args(argv)
    if args.only in (None, "list"):
        backend = "postgres" if args.db else "sqlite"
        out = measure_list(backend, args.rows, args.runs, args.queries, args.seconds, args.db)
        print(f"list ({backend}, {out['rows']:,} jobs, seeded in {out['seed_s']:.1f}s):")
        for i, r in enumerate(out["runs"], 1):
            print(f"  run {i}: {r['queries']:.0f} queries, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
    if args.only in (None, "soak"):
        r = anyio.run(soak, args.soak_jobs, args.soak_seconds, backend_options=loop_options())
        print(f"soak: {r['jobs']:,.0f} jobs in {r['wall_s']:.1f}s ({r['jobs_per_s']:,.0f} jobs/s), RSS "
              f"{r['rss_10_mib']:.0f} MiB after {r['rss_10_jobs']:,.0f} jobs → {r['rss_end_mib']:.0f} MiB at the end "
              f"({r['rss_growth']:+.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
