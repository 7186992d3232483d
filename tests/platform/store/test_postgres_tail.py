"""PostgreSQL's tail: a replica publishes its own events from memory and the others' from the table, in order."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from listener import Event, Platform

pytestmark = pytest.mark.anyio


async def test_own_events_come_from_memory_and_interleave_in_order_with_another_replicas(pg_url: str) -> None:
    async with Platform.open(pg_url, system_jobs=False) as a, Platform.open(pg_url, system_jobs=False) as b:
        published: list[Event] = []
        from_memory: dict[int, Event] = {}
        reached = {10: anyio.Event(), 30: anyio.Event()}

        def on_batch(events: Sequence[Event]) -> None:
            published.extend(events)
            for count, event in reached.items():
                if len(published) >= count:
                    event.set()

        a.eventlog.on_batch(on_batch)
        store = a.store
        take = store._take_committed  # type: ignore[attr-defined]

        def remembered() -> list[Event]:
            run: list[Event] = take()
            from_memory.update((e.seq, e) for e in run)
            return run

        store._take_committed = remembered  # type: ignore[attr-defined]

        async def create(platform: Platform, n: int) -> None:
            for _ in range(n):  # manual: one event each (job:created)
                await platform.api.jobs.create(type="workbook", operation="export", trigger="manual")

        await create(a, 10)  # replica a alone: its tail has its events in memory
        with anyio.fail_after(10):
            await reached[10].wait()
        assert from_memory, "replica a published its own events without reading them back"
        assert all(published[seq - 1] is event for seq, event in from_memory.items())

        async with anyio.create_task_group() as tg:  # both replicas append at once: their seqs interleave
            tg.start_soon(create, a, 10)
            tg.start_soon(create, b, 10)
        with anyio.fail_after(10):
            await reached[30].wait()
        assert [e.seq for e in published] == list(range(1, 31)), "every event once, in order, no gap"
        assert store._committed == {}, "nothing is left behind"  # type: ignore[attr-defined]
        b_events = await b.store.read_events(0, 100)
        assert [e.model_dump() for e in published] == [e.model_dump() for e in b_events]
