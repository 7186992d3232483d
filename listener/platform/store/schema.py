"""The one schema both stores keep, as the steps that build it: each step once, in SQLite's and PostgreSQL's SQL.

A database records how many steps it has taken (SQLite in `PRAGMA user_version`, PostgreSQL in the
`listener_migrations` table) and takes the rest in order when a store opens it. A step is never edited
once released: a change to the schema is a new step at the end, written for both stores at once, so
the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["STEPS", "Step"]


@dataclass(frozen=True, slots=True)
class Step:
    """One migration: SQLite's script (statements split on `;`) and PostgreSQL's (run whole)."""

    sqlite: str
    postgres: str


STEPS: list[Step] = [
    # 1: the initial schema
    Step(sqlite="""
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        type TEXT NOT NULL,
        operation TEXT NOT NULL,
        created_by TEXT,
        created_at TEXT NOT NULL,
        doc TEXT NOT NULL,
        ctx TEXT NOT NULL
    );
    CREATE INDEX jobs_status ON jobs (status);
    CREATE INDEX jobs_type_operation ON jobs (type, operation);
    CREATE INDEX jobs_created_by ON jobs (created_by);
    CREATE TABLE objects (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        parent_id TEXT,
        doc TEXT NOT NULL
    );
    CREATE INDEX objects_kind_parent ON objects (kind, parent_id);
    CREATE TABLE records (
        pos INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        sheet_id TEXT NOT NULL,
        vals TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX records_sheet ON records (sheet_id, pos);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        topic TEXT NOT NULL,
        job_id TEXT,
        doc TEXT NOT NULL
    );
    CREATE INDEX events_job ON events (job_id, seq) WHERE job_id IS NOT NULL;
    CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    );
    """, postgres="""
    CREATE TABLE jobs (
        id text PRIMARY KEY,
        status text NOT NULL,
        type text NOT NULL,
        operation text NOT NULL,
        created_by text,
        created_at timestamptz NOT NULL,
        pos bigserial,
        doc jsonb NOT NULL,
        ctx jsonb NOT NULL
    );
    CREATE INDEX jobs_status ON jobs (status, pos);
    CREATE INDEX jobs_type_operation ON jobs (type, operation, pos);
    CREATE INDEX jobs_created_by ON jobs (created_by, pos);
    CREATE INDEX jobs_pos ON jobs (pos);
    CREATE TABLE objects (
        id text PRIMARY KEY,
        kind text NOT NULL,
        parent_id text,
        pos bigserial,
        doc jsonb NOT NULL
    );
    CREATE INDEX objects_kind_parent ON objects (kind, parent_id, pos);
    CREATE TABLE records (
        pos bigserial PRIMARY KEY,
        id text NOT NULL UNIQUE,
        sheet_id text NOT NULL,
        vals jsonb NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
    );
    CREATE INDEX records_sheet ON records (sheet_id, pos);
    CREATE TABLE events (
        seq bigint PRIMARY KEY,
        topic text NOT NULL,
        job_id text,
        doc jsonb NOT NULL
    );
    CREATE INDEX events_job ON events (job_id, seq) WHERE job_id IS NOT NULL;
    CREATE TABLE event_head (
        id int PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL
    );
    INSERT INTO event_head VALUES (1, 0);
    CREATE TABLE cursors (
        name text PRIMARY KEY,
        seq bigint NOT NULL
    );
    """),
    # 2: users and their hashed bearer tokens
    Step(sqlite="""
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        doc TEXT NOT NULL
    );
    """, postgres="""
    CREATE TABLE users (
        id text PRIMARY KEY,
        name text NOT NULL UNIQUE,
        role text NOT NULL,
        token_hash text NOT NULL UNIQUE,
        doc jsonb NOT NULL
    );
    """),
    # 3: when something is due for a job without anyone asking (retry, lease end, timeout); in SQLite as epoch
    # seconds
    Step(sqlite="""
    ALTER TABLE jobs ADD COLUMN due_at REAL;
    CREATE INDEX jobs_due ON jobs (due_at) WHERE due_at IS NOT NULL;
    """, postgres="""
    ALTER TABLE jobs ADD COLUMN due_at timestamptz;
    CREATE INDEX jobs_due ON jobs (due_at) WHERE due_at IS NOT NULL;
    """),
    # 4: Idempotency-Key of job creations, per caller
    Step(sqlite="""
    CREATE TABLE idempotency_keys (
        caller TEXT NOT NULL,
        key TEXT NOT NULL,
        body_hash TEXT NOT NULL,
        job_id TEXT NOT NULL,
        PRIMARY KEY (caller, key)
    );
    """, postgres="""
    CREATE TABLE idempotency_keys (
        caller text NOT NULL,
        key text NOT NULL,
        body_hash text NOT NULL,
        job_id text NOT NULL,
        PRIMARY KEY (caller, key)
    );
    """),
    # 5: when a job ended, for retention; in SQLite as epoch seconds
    Step(sqlite="""
    ALTER TABLE jobs ADD COLUMN finished_at REAL;
    CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
    """, postgres="""
    ALTER TABLE jobs ADD COLUMN finished_at timestamptz;
    CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
    """),
    # 6: a per-job log of the items that failed
    Step(sqlite="""
    CREATE TABLE job_errors (
        pos INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL,
        item TEXT,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX job_errors_job ON job_errors (job_id, pos);
    """, postgres="""
    CREATE TABLE job_errors (
        pos bigserial PRIMARY KEY,
        job_id text NOT NULL,
        item text,
        message text NOT NULL,
        created_at timestamptz NOT NULL
    );
    CREATE INDEX job_errors_job ON job_errors (job_id, pos);
    """),
    # 7: per-type settings and limits (with each type's rate bucket), parts of split jobs, jobs waiting for a slot
    Step(sqlite="""
    CREATE TABLE job_settings (
        job TEXT PRIMARY KEY,
        doc TEXT NOT NULL,
        tokens REAL,
        refilled_at REAL
    );
    ALTER TABLE jobs ADD COLUMN parent_id TEXT;
    ALTER TABLE jobs ADD COLUMN part INTEGER;
    ALTER TABLE jobs ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;
    DROP INDEX jobs_type_operation;
    CREATE INDEX jobs_type_operation_status ON jobs (type, operation, status);
    CREATE INDEX jobs_parent ON jobs (parent_id, part) WHERE parent_id IS NOT NULL;
    CREATE INDEX jobs_waiting ON jobs (type, operation, created_at) WHERE waiting = 1;
    """, postgres="""
    CREATE TABLE job_settings (
        job text PRIMARY KEY,
        doc jsonb NOT NULL,
        tokens double precision,
        refilled_at double precision
    );
    ALTER TABLE jobs ADD COLUMN parent_id text;
    ALTER TABLE jobs ADD COLUMN part int;
    ALTER TABLE jobs ADD COLUMN waiting boolean NOT NULL DEFAULT false;
    CREATE INDEX jobs_type_operation_status ON jobs (type, operation, status);
    CREATE INDEX jobs_parent ON jobs (parent_id, part) WHERE parent_id IS NOT NULL;
    CREATE INDEX jobs_waiting ON jobs (type, operation, created_at) WHERE waiting;
    """),
    # 8: the result rows a job writes (jobs.write_data), downloadable as CSV until they expire
    Step(sqlite="""
    CREATE TABLE job_data (
        pos INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL,
        row TEXT NOT NULL
    );
    CREATE INDEX job_data_job ON job_data (job_id, pos);
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """, postgres="""
    CREATE TABLE job_data (
        pos bigserial PRIMARY KEY,
        job_id text NOT NULL,
        row json NOT NULL  -- json, not jsonb: it keeps the columns in the order the listener wrote them
    );
    CREATE INDEX job_data_job ON job_data (job_id, pos);
    CREATE TABLE secrets (
        name text PRIMARY KEY,
        value text NOT NULL
    );
    """),
    # 9: jobs.list by status and type.
    # SQLite: the index ends with the rowid, so one status and one type is a range read newest first (the page,
    # no sort) and its count reads that range of the index alone.
    # PostgreSQL: the page is a range of the first index in pos order, read newest first with no sort; the total
    # an index-only scan of the second, whose equal keys (no pos) deduplicate into posting lists, a sixth of the
    # size, counted in half the time of the first.
    Step(sqlite="""
    CREATE INDEX jobs_status_type ON jobs (status, type);
    """, postgres="""
    CREATE INDEX jobs_status_type ON jobs (status, type, pos);
    CREATE INDEX jobs_status_type_count ON jobs (status, type);
    """),
    # 10: the records of sheet snapshots (the snapshots themselves are objects of kind "snapshot"), in the
    # sheet's order when each was taken
    Step(sqlite="""
    CREATE TABLE snapshot_records (
        snapshot_id TEXT NOT NULL,
        pos INTEGER NOT NULL,
        id TEXT NOT NULL,
        vals TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (snapshot_id, pos)
    );
    """, postgres="""
    CREATE TABLE snapshot_records (
        snapshot_id text NOT NULL,
        pos bigint NOT NULL,
        id text NOT NULL,
        vals jsonb NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (snapshot_id, pos)
    );
    """),
    # 11: what other systems' status words need beside the status (status_words): `retry` (scheduled after an
    # attempt failed, Fiddler's RETRY) or `timeout` (failed by its timeout, Zoltar's TIMEOUT); only those rows
    # are in the index, so RETRY or TIMEOUT with one type is a range read newest first, like a status
    Step(sqlite="""
    ALTER TABLE jobs ADD COLUMN status_detail TEXT;
    UPDATE jobs SET status_detail = 'retry' WHERE status = 'scheduled' AND json_extract(doc, '$.attempt') >= 1;
    UPDATE jobs SET status_detail = 'timeout' WHERE status = 'failed' AND json_extract(doc, '$.error.kind') = 'timeout';
    CREATE INDEX jobs_status_detail ON jobs (status_detail, type) WHERE status_detail IS NOT NULL;
    """, postgres="""
    ALTER TABLE jobs ADD COLUMN status_detail text;
    UPDATE jobs SET status_detail = 'retry' WHERE status = 'scheduled' AND (doc->>'attempt')::int >= 1;
    UPDATE jobs SET status_detail = 'timeout' WHERE status = 'failed' AND doc->'error'->>'kind' = 'timeout';
    CREATE INDEX jobs_status_detail ON jobs (status_detail, type, pos) WHERE status_detail IS NOT NULL;
    """),
    # 12: schedules (listener/platform/schedules.py): the next tick of each that is not paused, in SQLite as epoch
    # seconds, so that a sweep reads the due ones as a range of the index; listed in id order, which is creation order
    Step(sqlite="""
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        next_run_at REAL,
        doc TEXT NOT NULL
    );
    CREATE INDEX schedules_due ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;
    """, postgres="""
    CREATE TABLE schedules (
        id text PRIMARY KEY,
        next_run_at timestamptz,
        doc jsonb NOT NULL
    );
    CREATE INDEX schedules_due ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;
    """),
    # 13: the jobs grid. When a job started and how long it took (ΔT: from its start, or its creation if it never
    # started, to its end), so that a listing sorted by start, end or duration is a range of an index read in order
    # (PostgreSQL's end index gains pos for that); the statuses of a creator's jobs and of parts, so that the grid's
    # counts are index-only scans (a member's own; the parts, taken away when the grid leaves them out); and, in
    # PostgreSQL, the ids as bytes, so that an id prefix is a range of an index whatever the database's collation.
    # (SQLite's index of parts holds parent_id too: its planner counts a partial index's own condition as a column
    # to read from the table.)
    Step(sqlite="""
    ALTER TABLE jobs ADD COLUMN started_at REAL;
    ALTER TABLE jobs ADD COLUMN duration REAL;
    UPDATE jobs SET started_at = (julianday(json_extract(doc, '$.startedAt')) - 2440587.5) * 86400.0
        WHERE json_extract(doc, '$.startedAt') IS NOT NULL;
    UPDATE jobs SET duration = finished_at - coalesce(started_at, (julianday(created_at) - 2440587.5) * 86400.0)
        WHERE finished_at IS NOT NULL;
    CREATE INDEX jobs_started ON jobs (started_at) WHERE started_at IS NOT NULL;
    CREATE INDEX jobs_duration ON jobs (duration) WHERE duration IS NOT NULL;
    CREATE INDEX jobs_created_by_status ON jobs (created_by, status);
    CREATE INDEX jobs_part_status ON jobs (status, type, parent_id) WHERE parent_id IS NOT NULL;
    """, postgres="""
    ALTER TABLE jobs ADD COLUMN started_at timestamptz, ADD COLUMN duration double precision;
    UPDATE jobs SET started_at = (doc->>'startedAt')::timestamptz WHERE doc->>'startedAt' IS NOT NULL;
    UPDATE jobs SET duration = extract(epoch FROM finished_at - coalesce(started_at, created_at))
        WHERE finished_at IS NOT NULL;
    CREATE INDEX jobs_started ON jobs (started_at, pos) WHERE started_at IS NOT NULL;
    CREATE INDEX jobs_duration ON jobs (duration, pos) WHERE duration IS NOT NULL;
    DROP INDEX jobs_finished;
    CREATE INDEX jobs_finished ON jobs (finished_at, pos) WHERE finished_at IS NOT NULL;
    CREATE INDEX jobs_created_by_status ON jobs (created_by, status);
    CREATE INDEX jobs_part_status ON jobs (status, type) WHERE parent_id IS NOT NULL;
    CREATE INDEX jobs_id_bytes ON jobs (id COLLATE "C");
    """),
    # 14: the queues page (store/queues.py). A queue's completed and failed jobs per minute over the last hour: one
    # type's jobs that ended since a time are a range of jobs_type_finished, read alone (status is in it). The ready
    # job first in a queue: SQLite's jobs_type_operation_status ends with the rowid, so it is one step into it;
    # PostgreSQL's indexes would read the type's ended jobs first, so it gets an index of the ready jobs only.
    Step(sqlite="""
    CREATE INDEX jobs_type_finished ON jobs (type, operation, finished_at, status) WHERE finished_at IS NOT NULL;
    """, postgres="""
    CREATE INDEX jobs_type_finished ON jobs (type, operation, finished_at, status) WHERE finished_at IS NOT NULL;
    CREATE INDEX jobs_ready ON jobs (type, operation, pos) WHERE status = 'ready';
    """),
    # 15: webhooks (their signing secrets, and the lease of the replica that delivers each one: their cursors are
    # agents' cursors, named `webhook:<id>`) and the latest delivery attempts of each
    Step(sqlite="""
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        doc TEXT NOT NULL,
        lease_owner TEXT,
        lease_until REAL
    );
    CREATE TABLE webhook_deliveries (
        pos INTEGER PRIMARY KEY,
        webhook_id TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, pos);
    """, postgres="""
    CREATE TABLE webhooks (
        id text PRIMARY KEY,
        secret text NOT NULL,
        doc jsonb NOT NULL,
        lease_owner text,
        lease_until double precision
    );
    CREATE TABLE webhook_deliveries (
        pos bigserial PRIMARY KEY,
        webhook_id text NOT NULL,
        doc jsonb NOT NULL
    );
    CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, pos);
    """),
    # 16: the dedupe key a job holds while it waits to start (jobs.create(dedupe_key=)): NULL otherwise, so the
    # unique index holds only waiting jobs, and one waiting job per type:operation, scope and key
    Step(sqlite="""
    ALTER TABLE jobs ADD COLUMN dedupe_scope TEXT;
    ALTER TABLE jobs ADD COLUMN dedupe_key TEXT;
    CREATE UNIQUE INDEX jobs_dedupe ON jobs (type, operation, dedupe_scope, dedupe_key) WHERE dedupe_key IS NOT NULL;
    """, postgres="""
    ALTER TABLE jobs ADD COLUMN dedupe_scope text;
    ALTER TABLE jobs ADD COLUMN dedupe_key text;
    CREATE UNIQUE INDEX jobs_dedupe ON jobs (type, operation, dedupe_scope, dedupe_key) WHERE dedupe_key IS NOT NULL;
    """),
    # 17: priorities and per-key limits (issue 17). A waiting job is promoted by priority, then age (jobs_waiting,
    # now with the priority); a ready job with a priority other than 0 is announced by it (jobs_ready_priority:
    # only those rows, so a job of priority 0, the hot path, writes no entry); the running jobs of one concurrency
    # key are counted by jobs_key (only jobs with a key that are ready or executing, so a count reads those alone);
    # job_keys holds each key's rate bucket and its turn (the number, counted in job_settings.starts, of the type's
    # last keyed start that was this key's: keys take turns by it)
    Step(sqlite="""
    ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN concurrency_key TEXT;
    DROP INDEX jobs_waiting;
    CREATE INDEX jobs_waiting ON jobs (type, operation, priority DESC, created_at) WHERE waiting = 1;
    CREATE INDEX jobs_ready_priority ON jobs (priority DESC) WHERE status = 'ready' AND priority != 0;
    CREATE INDEX jobs_key ON jobs (type, operation, concurrency_key)
        WHERE concurrency_key IS NOT NULL AND status IN ('ready', 'executing');
    CREATE TABLE job_keys (
        job TEXT NOT NULL,
        key TEXT NOT NULL,
        tokens REAL,
        refilled_at REAL,
        last_start INTEGER,
        PRIMARY KEY (job, key)
    );
    ALTER TABLE job_settings ADD COLUMN starts INTEGER NOT NULL DEFAULT 0;
    """, postgres="""
    ALTER TABLE jobs ADD COLUMN priority int NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN concurrency_key text;
    DROP INDEX jobs_waiting;
    CREATE INDEX jobs_waiting ON jobs (type, operation, priority DESC, created_at, pos) WHERE waiting;
    CREATE INDEX jobs_ready_priority ON jobs (priority DESC, pos) WHERE status = 'ready' AND priority <> 0;
    CREATE INDEX jobs_key ON jobs (type, operation, concurrency_key)
        WHERE concurrency_key IS NOT NULL AND status IN ('ready', 'executing');
    CREATE TABLE job_keys (
        job text NOT NULL,
        key text NOT NULL,
        tokens double precision,
        refilled_at double precision,
        last_start bigint,
        PRIMARY KEY (job, key)
    );
    ALTER TABLE job_settings ADD COLUMN starts bigint NOT NULL DEFAULT 0;
    """),
]
