"""The SQLite store: WAL, one transaction per change, a gap-free log, and state that survives a reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from listener import Conflict, JobStatus, Platform
from listener.platform.store.sqlite import MIGRATIONS, SqliteStore

pytestmark = pytest.mark.anyio


async def test_wal_mode_and_schema_version(db_path: Path) -> None:
    async with SqliteStore.open(db_path):
        pass
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
    async with SqliteStore.open(db_path):  # migrating again is a no-op
        pass


async def test_a_list_by_status_and_type_reads_one_index_range_in_order(db_path: Path) -> None:
    """The page and its total come from the range of jobs_status_type: no table scan, no sort, no table read
    for the count (what keeps the listing fast with a million jobs)."""
    # No deliverer of webhooks: its look for them would take a reader meanwhile, one the trace would miss.
    async with Platform.open(f"sqlite:///{db_path}", sweep_interval=None, webhooks=None) as platform:
        await platform.api.jobs.create(type="workbook", operation="export")
        store = platform.store
        assert isinstance(store, SqliteStore)
        ran: list[str] = []
        for conn in store._readers:
            conn.set_trace_callback(ran.append)
        try:
            page = await platform.api.jobs.list(status="ready", type="workbook")
        finally:
            for conn in store._readers:
                conn.set_trace_callback(None)
    assert page.total == 1
    conn = sqlite3.connect(db_path)
    plans = [[r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}")] for sql in ran]
    conn.close()
    assert plans == [["SEARCH jobs USING COVERING INDEX jobs_status_type (status=? AND type=?)"],
                     ["SEARCH jobs USING INDEX jobs_status_type (status=? AND type=?)"]], ran


async def test_store_refuses_use_after_close(db_path: Path) -> None:
    async with SqliteStore.open(db_path) as store:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await store.append_events([])



async def test_another_process_changing_a_job_is_seen_by_the_next_move(db_path: Path) -> None:
    async with Platform.open(f"sqlite:///{db_path}", sweep_interval=None) as platform:
        job = await platform.api.jobs.create(type="workbook", operation="export")
        await platform.api.jobs.ack(job.id)  # the writer now holds this job in memory
        # Another process (say `listener prune`, or a second platform on the file) cancels it.
        other = sqlite3.connect(db_path)
        doc = other.execute("SELECT doc FROM jobs WHERE id = ?", (job.id,)).fetchone()[0]
        other.execute("UPDATE jobs SET status = 'cancelled', doc = ? WHERE id = ?",
                      (doc.replace('"status":"executing"', '"status":"cancelled"'), job.id))
        other.commit()
        other.close()
        with pytest.raises(Conflict, match="it is cancelled"):
            await platform.api.jobs.complete(job.id)
        assert (await platform.api.jobs.get(job.id)).status is JobStatus.CANCELLED


async def test_a_failed_move_leaves_nothing_behind_in_memory(db_path: Path) -> None:
    async with Platform.open(f"sqlite:///{db_path}", sweep_interval=None) as platform:
        job = await platform.api.jobs.create(type="workbook", operation="export")
        with pytest.raises(Conflict):
            await platform.api.jobs.complete(job.id)  # not acked: refused before anything changed
        acked = await platform.api.jobs.ack(job.id)
        assert acked.status is JobStatus.EXECUTING and acked.attempt == 1
        done = await platform.api.jobs.complete(job.id)
        assert done.status is JobStatus.COMPLETE
        assert [e.topic for e in await platform.store.read_events(0, 10, job.id)] == [
            "job:created", "job:ready", "job:updated", "job:completed"]


def _rows_disagreeing_with_their_documents(db_path: Path) -> dict[str, tuple[object, ...]]:
    """Jobs whose indexed columns are not what their documents say (what the list filters and sweeps read)."""
    from listener.models import Job
    from listener.platform.store.sqlite import _JOB_COLUMNS, _job_row

    conn = sqlite3.connect(db_path)
    rows = conn.execute(f"SELECT id, {_JOB_COLUMNS}, doc FROM jobs").fetchall()
    conn.close()
    return {r[0]: r[1:-1] for r in rows if tuple(r[1:-1]) != _job_row(Job.model_validate_json(r[-1]))}


async def test_every_row_keeps_the_columns_its_document_implies_through_every_kind_of_move(db_path: Path) -> None:
    """An update sets only the columns that changed: whatever the move, the row still agrees with the job."""
    async with Platform.open(f"sqlite:///{db_path}", sweep_interval=None) as platform:
        jobs = platform.api.jobs
        done = await jobs.create(type="workbook", operation="export")
        await jobs.ack(done.id)
        await jobs.update(done.id, progress=50, info="half")
        await jobs.complete(done.id, outcome={"message": "Done."})
        await jobs.acknowledge_outcome(done.id)
        retried = await jobs.create(type="sheet", operation="import", retry={"maxAttempts": 3})
        await jobs.ack(retried.id)
        await jobs.fail(retried.id, error="boom", retryable=True)
        failed = await jobs.create(type="file", operation="extract")
        await jobs.ack(failed.id)
        await jobs.fail(failed.id, error="no", retryable=False)
        await jobs.retry(failed.id)
        cancelled = await jobs.create(type="space", operation="export")
        await jobs.cancel(cancelled.id)
        parent = await jobs.create(type="workbook", operation="import")
        await jobs.ack(parent.id)
        await jobs.split(parent.id, parts=2)
        statuses = {j.status for j in (await jobs.list(limit=100)).items}
        assert _rows_disagreeing_with_their_documents(db_path) == {}
    assert {JobStatus.COMPLETE, JobStatus.SCHEDULED, JobStatus.READY, JobStatus.CANCELLED} <= statuses


async def test_a_row_another_version_left_behind_is_written_whole_on_the_jobs_next_move(db_path: Path) -> None:
    """A row read from the file (not written by this process) may lack a column a migration added: the next
    update sets every column, not only those that changed."""
    async with Platform.open(f"sqlite:///{db_path}", sweep_interval=None) as platform:
        job = await platform.api.jobs.create(type="workbook", operation="export")
    other = sqlite3.connect(db_path)
    # As a row written before a migration, or by another version, might be: a column that no move changes is off.
    other.execute("UPDATE jobs SET due_at = NULL, created_at = '2000-01-01' WHERE id = ?", (job.id,))
    other.commit()
    other.close()
    assert set(_rows_disagreeing_with_their_documents(db_path)) == {job.id}
    async with Platform.open(f"sqlite:///{db_path}", sweep_interval=None) as platform:
        await platform.api.jobs.ack(job.id)
        assert _rows_disagreeing_with_their_documents(db_path) == {}
        await platform.api.jobs.update(job.id, progress=10)  # from memory now: only what changed
        assert _rows_disagreeing_with_their_documents(db_path) == {}
