"""Priorities: among ready and waiting jobs, the highest priority goes first, FIFO within one; on both backends.

Time is the platform's manual clock; nothing sleeps. Through the in-process runner, the store's promotion
of waiting jobs, the announcement of a starting worker's ready jobs, and the Runner's held events.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from listener import Conflict, Event, Invalid, JobStatus, Listener, Outcome, Platform
from listener.runner import Runner

pytestmark = pytest.mark.anyio
S = JobStatus


def claimer(seen: list[str]) -> Listener:
    listener = Listener("claimer")

    @listener.on("job:ready", job="workbook:export")
    async def claim(event: Event) -> None:
        job_id = event.context.job_id
        assert job_id is not None
        await event.api.jobs.ack(job_id)
        seen.append(job_id)
        await event.api.jobs.complete(job_id, outcome=Outcome(message="Done."))

    return listener


async def test_a_backlog_of_ready_jobs_is_claimed_high_first_fifo_within_one(platform: Platform) -> None:
    priorities = [0, 5, -3, 5, 0, 1000, -3, 1, 0]
    jobs = [await platform.api.jobs.create(type="workbook", operation="export", priority=p) for p in priorities]
    assert [j.priority for j in jobs] == priorities
    expected = [j.id for j in sorted(jobs, key=lambda j: -j.priority)]  # sorted() is stable: FIFO within one
    seen: list[str] = []
    async with platform.running(claimer(seen), agent="fresh", concurrency=1):
        for job in jobs:
            assert (await platform.api.jobs.wait(job.id, timeout=10)).status is S.COMPLETE
    assert seen == expected


async def test_waiting_jobs_start_by_priority_and_a_new_priority_reorders_them(platform: Platform) -> None:
    await platform.api.jobs.configure("workbook:import", max_running=1)
    running = await platform.api.jobs.create(type="workbook", operation="import")
    low, mid, high = [await platform.api.jobs.create(type="workbook", operation="import", priority=p)
                      for p in (0, 0, 7)]
    assert {j.status for j in (low, mid, high)} == {S.SCHEDULED}
    moved = await platform.api.jobs.set_priority(mid.id, 9)
    assert moved.priority == 9 and moved.status is S.SCHEDULED
    trail = await platform.store.read_events(0, 100, mid.id)
    assert trail[-1].topic == "job:updated" and trail[-1].payload["priority"] == 9
    order = []
    current = running.id
    for _ in range(3):
        await platform.api.jobs.ack(current)
        await platform.api.jobs.complete(current)
        ready = [j.id for j in (await platform.api.jobs.list(status="ready", type="workbook")).items]
        assert len(ready) == 1
        current = ready[0]
        order.append(current)
    assert order == [mid.id, high.id, low.id]


async def test_a_type_default_priority_and_its_bounds(platform: Platform) -> None:
    await platform.api.jobs.configure("sheet:dedupe", priority=3)
    assert (await platform.api.jobs.create(type="sheet", operation="dedupe")).priority == 3
    assert (await platform.api.jobs.create(type="sheet", operation="dedupe", priority=-1)).priority == -1
    assert (await platform.api.jobs.create(type="sheet", operation="export")).priority == 0
    for bad in (1001, -1001):
        with pytest.raises(Invalid, match="priority"):
            await platform.api.jobs.create(type="sheet", operation="export", priority=bad)
    with pytest.raises(Invalid, match="priority"):
        await platform.api.jobs.configure("sheet:dedupe", priority=5000)
    job = await platform.api.jobs.create(type="sheet", operation="export")
    with pytest.raises(Invalid, match="priority"):
        await platform.api.jobs.set_priority(job.id, 2000)
    await platform.api.jobs.ack(job.id)
    with pytest.raises(Conflict, match="set_priority"):
        await platform.api.jobs.set_priority(job.id, 1)


def _event(seq: int, job_id: str, priority: int | None, topic: str = "job:ready") -> Event:
    payload: dict[str, Any] = {} if priority is None else {"priority": priority}
    return Event.model_validate({"id": f"ev_{seq}", "seq": seq, "topic": topic, "context": {"jobId": job_id},
                                 "payload": payload, "createdAt": "2026-01-01T00:00:00Z"})


async def test_the_runner_dispatches_the_job_ready_it_holds_by_priority(platform: Platform) -> None:
    seen: list[str] = []
    first_started, release = anyio.Event(), anyio.Event()
    listener = Listener()

    @listener.on("job:ready")
    async def handle(event: Event) -> None:
        assert event.context.job_id is not None
        seen.append(event.context.job_id)
        first_started.set()
        await release.wait()

    @listener.on("job:updated")
    async def note(event: Event) -> None:
        assert event.context.job_id is not None
        seen.append(event.context.job_id)

    events = [_event(1, "first", None), _event(2, "low", -5), _event(3, "a", 2), _event(4, "plain", None),
              _event(5, "b", 2), _event(6, "update", None, "job:updated"), _event(7, "top", 9)]
    send, receive = anyio.create_memory_object_stream[Event](100)
    runner = Runner(listener, platform.api, concurrency=1)
    async with receive, anyio.create_task_group() as tg:
        tg.start_soon(runner.run, receive)
        send.send_nowait(events[0])
        with anyio.fail_after(5):
            await first_started.wait()
        for event in events[1:]:
            send.send_nowait(event)
        while len(runner._held) < len(events) - 1:
            await anyio.sleep(0)  # a checkpoint (not a wait on time): the runner reads what was sent
        release.set()
        send.close()
    assert seen == ["first", "update", "top", "a", "b", "plain", "low"], \
        "the other events first, then the highest priority, FIFO within one"
    assert runner.cursor == 7
