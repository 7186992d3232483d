"""Per-type limits (at most N running, at most R starts a second) and per-type timeouts, on both backends.

Time is the platform's manual clock; the scheduler is swept by hand.
"""

from __future__ import annotations

import aiohttp
import anyio
import pytest

from listener import Forbidden, Invalid, JobStatus, Platform
from listener.client import Client
from tests.conftest import ManualClock, Server

pytestmark = pytest.mark.anyio
S = JobStatus


async def statuses(platform: Platform, ids: list[str]) -> list[S]:
    return [(await platform.api.jobs.get(i)).status for i in ids]


async def test_one_at_a_time_queues_the_rest_in_order(platform: Platform) -> None:
    await platform.api.jobs.configure("workbook:import", max_running=1)
    jobs = [await platform.api.jobs.create(type="workbook", operation="import") for _ in range(3)]
    other = await platform.api.jobs.create(type="workbook", operation="export")
    assert [j.status for j in jobs] == [S.READY, S.SCHEDULED, S.SCHEDULED]
    assert other.status is S.READY, "another operation has no limit"
    waiting = jobs[1]
    assert waiting.waiting_for == "concurrency"
    assert waiting.info == "Waiting: workbook:import runs one job at a time and 1 is running."
    trail = await platform.store.read_events(0, 100, waiting.id)
    assert [e.topic for e in trail] == ["job:created", "job:updated"]
    assert trail[1].payload["status"] == "scheduled" and trail[1].payload["waitingFor"] == "concurrency"

    await platform.api.jobs.ack(jobs[0].id)
    assert await statuses(platform, [j.id for j in jobs]) == [S.EXECUTING, S.SCHEDULED, S.SCHEDULED]
    await platform.api.jobs.complete(jobs[0].id)
    # The slot it held goes to the oldest waiting job at once, not at the next sweep.
    assert await statuses(platform, [j.id for j in jobs]) == [S.COMPLETE, S.READY, S.SCHEDULED]
    promoted = await platform.api.jobs.get(jobs[1].id)
    assert promoted.waiting_for is None and promoted.info is None
    assert [e.topic for e in await platform.store.read_events(0, 100, promoted.id)][-1] == "job:ready"

    await platform.api.jobs.cancel(jobs[1].id)  # a ready job holds its slot too; cancelling frees it
    assert await statuses(platform, [j.id for j in jobs]) == [S.COMPLETE, S.CANCELLED, S.READY]


async def test_a_new_job_waits_behind_those_already_waiting(platform: Platform) -> None:
    await platform.api.jobs.configure("sheet:dedupe", max_running=1)
    first = await platform.api.jobs.create(type="sheet", operation="dedupe")
    second = await platform.api.jobs.create(type="sheet", operation="dedupe")
    await platform.api.jobs.ack(first.id)
    await platform.api.jobs.fail(first.id, error="No.")
    assert (await platform.api.jobs.get(second.id)).status is S.READY
    await platform.api.jobs.retry(first.id)  # by hand, while the one slot is taken: it waits
    retried = await platform.api.jobs.get(first.id)
    assert retried.status is S.SCHEDULED and retried.waiting_for == "concurrency"
    third = await platform.api.jobs.create(type="sheet", operation="dedupe")
    assert third.status is S.SCHEDULED
    await platform.api.jobs.delete(second.id)
    assert await statuses(platform, [first.id, third.id]) == [S.READY, S.SCHEDULED], "first come, first served"


async def test_raising_the_limit_starts_waiting_jobs_at_once(platform: Platform) -> None:
    await platform.api.jobs.configure("workbook:import", max_running=1)
    ids = [(await platform.api.jobs.create(type="workbook", operation="import")).id for _ in range(4)]
    assert (await statuses(platform, ids)).count(S.READY) == 1
    settings = await platform.api.jobs.configure("workbook:import", max_running=3)
    assert settings.max_running == 3
    assert await statuses(platform, ids) == [S.READY, S.READY, S.READY, S.SCHEDULED]
    await platform.api.jobs.configure("workbook:import")  # no limit at all
    assert await statuses(platform, ids) == [S.READY] * 4
    assert [s.job for s in await platform.api.jobs.settings()] == ["workbook:import"]


async def test_starts_per_second_hold_with_the_clock(platform: Platform, clock: ManualClock) -> None:
    await platform.api.jobs.configure("file:geocode", starts_per_second=2)
    ids = [(await platform.api.jobs.create(type="file", operation="geocode")).id for _ in range(6)]
    assert await statuses(platform, ids) == [S.READY, S.READY] + [S.SCHEDULED] * 4, "a burst of one second's worth"
    waiting = await platform.api.jobs.get(ids[2])
    assert waiting.waiting_for == "rate" and waiting.info == "Waiting: file:geocode starts at most 2 jobs per second."
    await platform.scheduler.sweep()
    assert (await statuses(platform, ids)).count(S.READY) == 2, "no time has passed: no start"
    clock.advance(0.5)
    await platform.scheduler.sweep()
    assert await statuses(platform, ids) == [S.READY] * 3 + [S.SCHEDULED] * 3
    clock.advance(10)  # the bucket holds one second's worth, not ten
    await platform.scheduler.sweep()
    assert await statuses(platform, ids) == [S.READY] * 5 + [S.SCHEDULED]


async def test_a_type_timeout_applies_to_jobs_created_without_their_own(platform: Platform,
                                                                          clock: ManualClock) -> None:
    await platform.api.jobs.configure("workbook:export", timeout_seconds=60)
    default = await platform.api.jobs.create(type="workbook", operation="export")
    own = await platform.api.jobs.create(type="workbook", operation="export", timeout_seconds=600)
    other = await platform.api.jobs.create(type="workbook", operation="import")
    assert (default.timeout_seconds, own.timeout_seconds, other.timeout_seconds) == (60, 600, 86_400)
    await platform.api.jobs.ack(default.id)
    clock.advance(61)
    await platform.scheduler.sweep()
    timed_out = await platform.api.jobs.get(default.id)
    assert timed_out.status is S.FAILED and timed_out.error is not None and timed_out.error.kind == "timeout"
    assert (await platform.api.jobs.get(own.id)).status is S.READY


async def test_bad_settings_are_refused_naming_the_field(platform: Platform) -> None:
    with pytest.raises(Invalid, match="job"):
        await platform.api.jobs.configure("No pe:export", max_running=1)  # a type is a lowercase identifier
    with pytest.raises(Invalid, match="max_running"):
        await platform.api.jobs.configure("workbook:export", max_running=0)
    with pytest.raises(Invalid, match="starts_per_second"):
        await platform.api.jobs.configure("workbook:export", starts_per_second=-1)
    assert list(await platform.api.jobs.settings()) == [], "nothing was saved"


async def test_limits_hold_across_two_replicas(pg_url: str, clock: ManualClock) -> None:
    async with Platform.open(pg_url, clock=clock, sweep_interval=None) as a, \
            Platform.open(pg_url, clock=clock, sweep_interval=None) as b:
        await a.api.jobs.configure("workbook:import", max_running=2)
        await b.api.jobs.settings()  # what b's sweep does: read the settings afresh
        ids: list[str] = []

        async def create(platform: Platform) -> None:
            ids.append((await platform.api.jobs.create(type="workbook", operation="import")).id)

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(create, (a, b)[i % 2])
        assert (await statuses(a, ids)).count(S.READY) == 2
        ready = [i for i, s in zip(ids, await statuses(a, ids), strict=True) if s is S.READY]
        for job_id, replica in zip(ready, (a, b), strict=True):
            await replica.api.jobs.ack(job_id)
        async with anyio.create_task_group() as tg:
            for job_id, replica in zip(ready, (b, a), strict=True):
                tg.start_soon(replica.api.jobs.complete, job_id)
        await a.scheduler.sweep()
        await b.scheduler.sweep()
        now = await statuses(b, ids)
        assert now.count(S.COMPLETE) == 2 and now.count(S.READY) == 2 and now.count(S.SCHEDULED) == 16


async def test_settings_over_http_are_for_admins(server: Server) -> None:
    async with Client(server.url, token=server.admin_token) as admin:
        settings = await admin.jobs.configure("workbook:export", max_running=1, starts_per_second=0.5)
        assert (settings.job, settings.max_running, settings.starts_per_second) == ("workbook:export", 1, 0.5)
        assert [s.max_running for s in await admin.jobs.settings()] == [1]
        async with Client(server.url, token=await server.token("mia")) as member:
            with pytest.raises(Forbidden):
                await member.jobs.configure("workbook:export", max_running=5)
        with pytest.raises(Invalid, match="timeout_seconds"):
            await admin.jobs.configure("workbook:export", timeout_seconds=0)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.admin_token}"}) as http:
            async with http.put(f"{server.url}/api/v1/job-settings/workbook:export", json={"timeoutSeconds": 0}) as r:
                assert r.status == 422 and "timeoutSeconds" in (await r.json())["error"]["message"]
            async with http.put(f"{server.url}/api/v1/job-settings/nope", json={}) as r:
                assert r.status == 422 and "job" in (await r.json())["error"]["message"]
        assert [s.timeout_seconds for s in await admin.jobs.settings()] == [None], "refused: nothing changed"
        first = await admin.jobs.create(type="workbook", operation="export")
        second = await admin.jobs.create(type="workbook", operation="export")
        assert (first.status, second.status, second.waiting_for) == (S.READY, S.SCHEDULED, "concurrency")
