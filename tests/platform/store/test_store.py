"""The Store contract, on both backends: one transaction per change, a gap-free log, state that survives a reopen."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from listener import Conflict, JobStatus, NotFound, Platform
from listener.models import Event, EventContext, Job
from listener.platform.store.base import JobChange, NewEvent
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

