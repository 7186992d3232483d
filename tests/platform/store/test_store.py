"""The Store contract, on both backends: one transaction per change, a gap-free log, state that survives a reopen."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from typing import Any

import anyio
import asyncpg
import pytest

from listener import Conflict, JobStatus, NotFound, Platform
from listener.models import Event, EventContext, Job
from listener.platform.store.base import JobChange, NewEvent
from listener.platform.store.schema import STEPS
from listener.platform.store.sqlite import SqliteStore
from tests.conftest import ManualClock

pytestmark = pytest.mark.anyio


async def test_restart_shows_the_same_jobs_and_events(db_url: str, clock: ManualClock) -> None:
    async with Platform.open(db_url, clock=clock) as platform:
        wb = await platform.api.workbooks.create(name="W", sheets=[{"name": "Contacts"}],
                                                 actions=[{"operation": "export", "label": "Export"}])
        done = await platform.api.actions.trigger(wb.id, "export")
        await platform.api.jobs.ack(done.id, progress=10)
        done = await platform.api.jobs.complete(done.id, outcome={"message": "ok", "acknowledge": True})
        waiting = await platform.api.jobs.create(type="workbook", operation="import", trigger="manual")
        before_jobs = (await platform.api.jobs.list()).items
        before_events = await platform.store.read_events(0, 100)
        before_workbook = await platform.api.workbooks.get(wb.id)
    async with Platform.open(db_url, clock=clock) as platform:
        assert (await platform.api.jobs.list()).items == before_jobs
        assert await platform.store.read_events(0, 100) == before_events
        assert await platform.api.workbooks.get(wb.id) == before_workbook
        assert await platform.store.head() == before_events[-1].seq == len(before_events)
        # The log goes on from where it was, without a gap or a reused seq.
        await platform.api.jobs.execute(waiting.id)
        assert (await platform.store.read_events(before_events[-1].seq, 10))[0].seq == len(before_events) + 1
        assert (await platform.api.jobs.get(done.id)).status is JobStatus.COMPLETE


async def test_a_failing_write_rolls_back_alone_and_leaves_no_gap(platform: Platform) -> None:
    """Concurrent writes share one transaction; one that fails must not take the others with it."""
    jobs = [await platform.api.jobs.create(type="workbook", operation="export") for _ in range(20)]
    head = await platform.store.head()
    outcomes: dict[str, str] = {}

    async def ack(job: Job, n: int) -> None:
        try:
            if n % 3 == 0:
                await platform.api.jobs.complete(job.id)  # illegal: ready → complete
            else:
                await platform.api.jobs.ack(job.id)
            outcomes[job.id] = "ok"
        except Conflict:
            outcomes[job.id] = "conflict"

    async with anyio.create_task_group() as tg:
        for n, job in enumerate(jobs):
            tg.start_soon(ack, job, n)
    events = await platform.store.read_events(head, 100)
    assert [e.seq for e in events] == list(range(head + 1, head + 1 + len(events))), "seq is gap-free"
    assert sorted(e.context.job_id for e in events) == sorted(j for j, r in outcomes.items() if r == "ok")
    for job in jobs:
        status = (await platform.api.jobs.get(job.id)).status
        assert status is (JobStatus.EXECUTING if outcomes[job.id] == "ok" else JobStatus.READY)


async def test_a_rule_that_raises_writes_nothing(platform: Platform, clock: ManualClock) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="export")
    head = await platform.store.head()

    def rule(current: Job, ctx: EventContext) -> JobChange:
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        await platform.store.change_job(job.id, rule)
    assert await platform.store.head() == head
    with pytest.raises(NotFound):
        await platform.store.change_job("jb_missing", rule)


async def test_events_are_published_in_order_after_commit(platform: Platform, clock: ManualClock) -> None:
    seen: list[int] = []
    all_seen = anyio.Event()

    def on_batch(events: Sequence[Event]) -> None:
        seen.extend(e.seq for e in events)
        if len(seen) >= 100:
            all_seen.set()

    platform.eventlog.on_batch(on_batch)
    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(lambda: platform.api.jobs.create(type="workbook", operation="export"))
    with anyio.fail_after(5):
        await all_seen.wait()
    assert seen == list(range(1, 101))
    stored = await platform.store.read_events(0, 200)
    assert [e.seq for e in stored] == seen


async def test_append_events_and_cursor(platform: Platform, clock: ManualClock) -> None:
    added = await platform.store.append_events([NewEvent("custom:thing", EventContext(), {"n": 1}, clock.now())])
    assert added[0].seq == 1 and added[0].payload == {"n": 1}
    assert await platform.store.get_cursor("a") is None
    await platform.store.set_cursor("a", 5)
    await platform.store.set_cursor("a", 3)
    assert await platform.store.get_cursor("a") == 5, "a cursor never moves back"


async def test_a_failing_subscriber_does_not_hold_up_writers(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    called = anyio.Event()

    def broken(events: object) -> None:
        called.set()
        raise RuntimeError("subscriber bug")

    platform.eventlog.on_batch(broken)
    with anyio.fail_after(5):
        job = await platform.api.jobs.create(type="workbook", operation="export")
        await called.wait()
        second = await platform.api.jobs.create(type="workbook", operation="export")
    assert (await platform.api.jobs.get(job.id)).status is JobStatus.READY
    assert (await platform.api.jobs.get(second.id)).status is JobStatus.READY
    assert "subscriber failed" in caplog.text



# What undoes each migration step since 11, newest first: (SQLite's script, PostgreSQL's), so that a test can put a
# database back as it was before a step and let the store take the steps again.
_UNDO_GRID = ("DROP INDEX jobs_started; DROP INDEX jobs_duration; DROP INDEX jobs_created_by_status;"
              " DROP INDEX jobs_part_status; ALTER TABLE jobs DROP COLUMN started_at; ALTER TABLE jobs DROP COLUMN"
              " duration;")
_UNDO_FAIR = ("DROP INDEX jobs_waiting; DROP INDEX jobs_ready_priority; DROP INDEX jobs_key; DROP TABLE job_keys;"
              " ALTER TABLE job_settings DROP COLUMN starts; ALTER TABLE jobs DROP COLUMN priority;"
              " ALTER TABLE jobs DROP COLUMN concurrency_key; CREATE INDEX jobs_waiting ON jobs (type, operation,"
              " created_at) WHERE waiting")
_UNDO_DEDUPE = ("DROP INDEX jobs_dedupe; ALTER TABLE jobs DROP COLUMN dedupe_key;"
                " ALTER TABLE jobs DROP COLUMN dedupe_scope;")
_UNDO_STATUS_DETAIL = "DROP INDEX jobs_status_detail; ALTER TABLE jobs DROP COLUMN status_detail;"
_UNDO: dict[int, tuple[str, str]] = {
    17: (_UNDO_FAIR + " = 1;", _UNDO_FAIR + ";"),  # priorities and per-key limits
    16: (_UNDO_DEDUPE, _UNDO_DEDUPE),
    15: ("DROP TABLE webhooks; DROP TABLE webhook_deliveries;",) * 2,
    14: ("DROP INDEX jobs_type_finished;", "DROP INDEX jobs_type_finished; DROP INDEX jobs_ready;"),  # queues page
    13: (_UNDO_GRID, f"{_UNDO_GRID} DROP INDEX jobs_id_bytes; DROP INDEX jobs_finished;"
                     " CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;"),
    12: ("DROP TABLE schedules;",) * 2,
    11: (_UNDO_STATUS_DETAIL, _UNDO_STATUS_DETAIL),
}


async def _undo_steps(platform: Platform, before: int) -> None:
    """Put the schema back as it was before migration `before`, rows and all: every later step undone, newest first."""
    steps = sorted((n for n in _UNDO if n >= before), reverse=True)
    assert steps and steps[0] == len(STEPS), "every step has its undo"
    store: Any = platform.store
    if isinstance(store, SqliteStore):
        with closing(sqlite3.connect(store.path)) as db:
            db.executescript(" ".join(_UNDO[n][0] for n in steps) + f" PRAGMA user_version = {before - 1};")
        return
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema})
    try:
        await conn.execute(" ".join(_UNDO[n][1] for n in steps)
                           + f" DELETE FROM listener_migrations WHERE version >= {before}")
    finally:
        await conn.close()


async def test_migration_13_fills_in_when_jobs_already_there_started_and_how_long_they_took(
        db_url: str, clock: ManualClock) -> None:
    """A database from before the jobs grid: its jobs sort by start, end and duration as new ones do."""
    async with Platform.open(db_url, clock=clock, sweep_interval=None) as platform:
        jobs = platform.api.jobs
        quick = await jobs.ack((await jobs.create(type="sheet", operation="export")).id)
        clock.advance(1.5)
        await jobs.complete(quick.id)
        slow = await jobs.ack((await jobs.create(type="sheet", operation="export")).id)
        clock.advance(20)
        await jobs.fail(slow.id, error="boom")
        never = await jobs.cancel((await jobs.create(type="sheet", operation="export")).id)
        running = await jobs.ack((await jobs.create(type="sheet", operation="export")).id)
        before = [[j.id for j in (await jobs.list(sort=sort)).items] for sort in ("-duration", "started", "-ended")]
    # No system agent: its announcement of ready jobs would read the columns being dropped under it.
    async with Platform.open(db_url, clock=clock, sweep_interval=None, system_jobs=False) as platform:
        await _undo_steps(platform, 13)
    async with Platform.open(db_url, clock=clock, sweep_interval=None) as platform:
        jobs = platform.api.jobs
        after = [[j.id for j in (await jobs.list(sort=sort)).items] for sort in ("-duration", "started", "-ended")]
        assert after == before == [[slow.id, quick.id, never.id], [quick.id, slow.id, running.id],
                                   [never.id, slow.id, quick.id]]


async def test_migration_11_fills_in_the_detail_of_jobs_already_there(db_url: str, clock: ManualClock) -> None:
    """A database from before RETRY and TIMEOUT were indexed: its retries and timeouts are found by them."""
    async with Platform.open(db_url, clock=clock, sweep_interval=None) as platform:
        api = platform.api
        flaky = await api.jobs.create(type="workbook", operation="export", retry={"max_attempts": 3,
                                                                                  "base_seconds": 3600})
        await api.jobs.ack(flaky.id)
        await api.jobs.fail(flaky.id, error="flaky", retryable=True)
        slow = await api.jobs.ack((await api.jobs.create(type="sheet", operation="export")).id)
        await api.jobs.fail(slow.id, error="too long", kind="timeout")
        broken = await api.jobs.ack((await api.jobs.create(type="sheet", operation="export")).id)
        await api.jobs.fail(broken.id, error="boom")
        later = await api.jobs.create(type="sheet", operation="export", run_at=clock.now().replace(year=2100))
    # No system agent: its announcement of ready jobs would read the columns being dropped under it.
    async with Platform.open(db_url, clock=clock, sweep_interval=None, system_jobs=False) as platform:
        await _undo_steps(platform, 11)
    async with Platform.open(db_url, clock=clock, sweep_interval=None) as platform:
        api = platform.api
        assert [j.id for j in (await api.jobs.list(status="RETRY")).items] == [flaky.id]
        assert [j.id for j in (await api.jobs.list(status="TIMEOUT", type="sheet")).items] == [slow.id]
        assert [j.id for j in (await api.jobs.list(status="pending")).items] == [later.id]
        assert {j.id for j in (await api.jobs.list(status="FAILURE")).items} == {slow.id, broken.id}
