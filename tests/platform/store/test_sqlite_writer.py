"""The SQLite writer: batches on the event loop, a worker thread when another process holds the lock, checkpoints
off the loop."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from listener import JobStatus, Platform

pytestmark = pytest.mark.anyio


async def test_a_write_waits_for_another_process_holding_the_lock_without_blocking_the_loop(db_path: Path) -> None:
    async with Platform.open(f"sqlite:///{db_path}", sweep_interval=None, system_jobs=False) as platform:
        other = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction
        ticks = 0
        created = anyio.Event()

        async def create() -> None:
            await platform.api.jobs.create(type="workbook", operation="export")
            created.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(create)
            with anyio.fail_after(5):
                while ticks < 20:  # the loop keeps running while the write waits for the lock
                    await anyio.sleep(0.005)
                    ticks += 1
            assert not created.is_set(), "the write cannot commit while the other transaction holds the lock"
            await anyio.to_thread.run_sync(other.execute, "COMMIT")
            with anyio.fail_after(5):
                await created.wait()
        other.close()
        page = await platform.api.jobs.list()
        assert page.total == 1 and page.items[0].status is JobStatus.READY


async def test_checkpoints_copy_the_wal_into_the_database_off_the_event_loop(db_path: Path) -> None:
    async with Platform.open(f"sqlite:///{db_path}", sweep_interval=None, system_jobs=False) as platform:
        store = platform.store
        for _ in range(30):
            await platform.api.jobs.create(type="workbook", operation="export")
        writer = store._writer  # type: ignore[attr-defined]
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0, "commits never checkpoint"
        threads: list[str] = []
        results: list[tuple[int, int, int]] = []
        checkpoint = store._checkpoint  # type: ignore[attr-defined]

        def traced() -> tuple[int, int, int]:
            threads.append(threading.current_thread().name)
            results.append(checkpoint())
            return results[-1]

        store._checkpoint = traced  # type: ignore[attr-defined]
        store._checkpoint_due.set()  # type: ignore[attr-defined]
        with anyio.fail_after(5):
            while not results:  # the checkpoint has returned (it starts, in `threads`, before that)
                await anyio.sleep(0.01)
        assert threads[0] != threading.main_thread().name
        busy, frames, copied = results[0]
        assert busy == 0 and frames > 0 and frames == copied, "every frame of the WAL is in the database file"


async def test_synchronous_full_commits_in_a_worker_thread(db_path: Path) -> None:
    async with Platform.open(f"sqlite:///{db_path}", synchronous="FULL", sweep_interval=None,
                             system_jobs=False) as platform:
        threads: list[str] = []
        store = platform.store
        run_batch = store._run_batch  # type: ignore[attr-defined]

        def traced(batch: list[object], wait: bool) -> bool:
            threads.append(threading.current_thread().name)
            return bool(run_batch(batch, wait))

        store._run_batch = traced  # type: ignore[attr-defined]
        job = await platform.api.jobs.create(type="workbook", operation="export")
        assert (await platform.api.jobs.get(job.id)).status is JobStatus.READY
        assert threads and all(name != threading.main_thread().name for name in threads)
