"""Per-key limits (fairness between tenants): at most N running and R starts a second per concurrency key, the
keys taking turns when slots free up; on both backends and across two replicas on one PostgreSQL schema.

Time is the platform's manual clock; the scheduler is swept by hand.
"""

from __future__ import annotations

import anyio
import pytest

from listener import JobStatus, Platform
from tests.conftest import ManualClock

pytestmark = pytest.mark.anyio
S = JobStatus


async def running(platform: Platform, job: str = "workbook:import") -> list[str]:
    kind, _, operation = job.partition(":")
    page = await platform.api.jobs.list(status=["ready", "executing"], type=kind, operation=operation, limit=1000)
    return [j.id for j in page.items]


async def finish(platform: Platform, job_id: str) -> None:
    await platform.api.jobs.ack(job_id)
    await platform.api.jobs.complete(job_id)


async def test_a_burst_of_one_key_does_not_hold_every_slot(platform: Platform) -> None:
    await platform.api.jobs.configure("workbook:import", max_running=2, max_running_per_key=2)
    burst = [await platform.api.jobs.create(type="workbook", operation="import", concurrency_key="tenant:a")
             for _ in range(1000)]
    alone = await platform.api.jobs.create(type="workbook", operation="import", concurrency_key="tenant:b")
    assert [j.status for j in burst[:3]] == [S.READY, S.READY, S.SCHEDULED]
    assert alone.status is S.SCHEDULED and alone.waiting_for == "concurrency"
    assert alone.concurrency_key == "tenant:b"
    await finish(platform, burst[0].id)  # one slot frees: it goes to b, whose turn it is
    assert (await platform.api.jobs.get(alone.id)).status is S.READY
    assert set(await running(platform)) == {burst[1].id, alone.id}


async def test_a_key_at_its_limit_is_passed_over_and_says_so(platform: Platform) -> None:
    await platform.api.jobs.configure("workbook:import", max_running_per_key=2)
    a = [await platform.api.jobs.create(type="workbook", operation="import", concurrency_key="tenant:a")
         for _ in range(4)]
    b = await platform.api.jobs.create(type="workbook", operation="import", concurrency_key="tenant:b")
    plain = await platform.api.jobs.create(type="workbook", operation="import")  # no key: no limit per key
    assert [j.status for j in a] == [S.READY, S.READY, S.SCHEDULED, S.SCHEDULED]
    assert b.status is S.READY and plain.status is S.READY
    held = a[2]
    assert held.waiting_for == "key_concurrency"
    assert held.info == "Waiting: workbook:import runs 2 jobs at a time per key, and 2 of key tenant:a are running."
    assert (await platform.store.read_events(0, 100, held.id))[-1].payload["waitingFor"] == "key_concurrency"
    await finish(platform, a[0].id)
    assert [(await platform.api.jobs.get(j.id)).status for j in a] == [S.COMPLETE, S.READY, S.READY, S.SCHEDULED]


async def test_keys_take_turns_when_slots_free_up(platform: Platform) -> None:
    await platform.api.jobs.configure("workbook:import", max_running=1, max_running_per_key=1)
    for key in ("a", "b", "c"):
        for _ in range(3):
            await platform.api.jobs.create(type="workbook", operation="import", concurrency_key=key)
    order = []
    for _ in range(9):
        [job_id] = await running(platform)
        order.append((await platform.api.jobs.get(job_id)).concurrency_key)
        await finish(platform, job_id)
    assert order == ["a", "b", "c"] * 3
    assert await running(platform) == []


async def test_priorities_order_the_jobs_of_one_key(platform: Platform) -> None:
    await platform.api.jobs.configure("workbook:import", max_running=1, max_running_per_key=1)
    first = await platform.api.jobs.create(type="workbook", operation="import", concurrency_key="a")
    low = await platform.api.jobs.create(type="workbook", operation="import", concurrency_key="a")
    high = await platform.api.jobs.create(type="workbook", operation="import", concurrency_key="a", priority=10)
    await finish(platform, first.id)
    assert await running(platform) == [high.id]
    await finish(platform, high.id)
    assert await running(platform) == [low.id]


async def test_starts_per_second_per_key_hold_with_the_clock(platform: Platform, clock: ManualClock) -> None:
    await platform.api.jobs.configure("file:geocode", starts_per_second_per_key=1)
    a = [await platform.api.jobs.create(type="file", operation="geocode", concurrency_key="a") for _ in range(3)]
    b = await platform.api.jobs.create(type="file", operation="geocode", concurrency_key="b")
    assert [j.status for j in a] == [S.READY, S.SCHEDULED, S.SCHEDULED] and b.status is S.READY
    assert a[1].waiting_for == "key_rate" and "per key (a)" in (a[1].info or "")
    await platform.scheduler.sweep()
    assert (await platform.api.jobs.get(a[1].id)).status is S.SCHEDULED, "no time has passed"
    clock.advance(1)
    await platform.scheduler.sweep()
    assert [(await platform.api.jobs.get(j.id)).status for j in a] == [S.READY, S.READY, S.SCHEDULED]
    clock.advance(1)
    await platform.scheduler.sweep()
    assert (await platform.api.jobs.get(a[2].id)).status is S.READY


async def test_per_key_limits_hold_across_two_replicas(pg_url: str, clock: ManualClock) -> None:
    async with Platform.open(pg_url, clock=clock, sweep_interval=None) as a, \
            Platform.open(pg_url, clock=clock, sweep_interval=None) as b:
        await a.api.jobs.configure("workbook:import", max_running=4, max_running_per_key=2)
        await b.api.jobs.settings()  # what b's sweep does: read the settings afresh
        ids: dict[str, list[str]] = {"x": [], "y": []}

        async def create(platform: Platform, key: str) -> None:
            job = await platform.api.jobs.create(type="workbook", operation="import", concurrency_key=key)
            ids[key].append(job.id)

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(create, (a, b)[i % 2], "x")
            tg.start_soon(create, b, "y")
        now = set(await running(a))
        assert len(now & set(ids["x"])) == 2, "two of x at most, whichever replica admitted them"
        assert len(now & set(ids["y"])) == 1
        for job_id, replica in zip(sorted(now & set(ids["x"])), (a, b), strict=True):
            await finish(replica, job_id)
        await a.scheduler.sweep()
        await b.scheduler.sweep()
        assert len(set(await running(b)) & set(ids["x"])) == 2
