"""Parts and subtasks: a job split into child jobs, counted and settled on its parent, on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from listener import Conflict, Event, Invalid, JobStatus, Listener, Platform
from listener.client import Client
from listener.platform.store.base import JobChange
from plugins.job_handler import Tick, job_handler
from tests.conftest import ManualClock, Server
from tests.platform.test_reliability import until

pytestmark = pytest.mark.anyio
S = JobStatus


async def topics_of(platform: Platform, job_id: str) -> list[str]:
    return [e.topic for e in await platform.store.read_events(0, 500, job_id)]


async def executing(platform: Platform, operation: str = "import") -> str:
    job = await platform.api.jobs.create(type="workbook", operation=operation, input={"file": "voters.csv"})
    await platform.api.jobs.ack(job.id)
    return job.id


async def test_split_creates_ready_parts_that_the_parent_lists(platform: Platform) -> None:
    parent_id = await executing(platform)
    rows = [{"rows": [0, 100]}, {"rows": [100, 200]}, {"rows": [200, 250]}]
    parent = await platform.api.jobs.split(parent_id, parts=rows)
    assert parent.parts is not None and parent.parts.total == 3 and parent.parts.ended == 0
    assert parent.status is S.EXECUTING and parent.lease_expires_at is None, "no one runs the parent meanwhile"
    page = await platform.api.jobs.list(parent_id=parent_id)
    assert page.total == 3
    assert [(p.part, p.part_data, p.status, p.is_part, p.parent_id) for p in page.items] == [
        (1, {"rows": [0, 100]}, S.READY, True, parent_id), (2, {"rows": [100, 200]}, S.READY, True, parent_id),
        (3, {"rows": [200, 250]}, S.READY, True, parent_id)]
    part = page.items[0]
    assert (part.job, part.input) == ("workbook:import", {"file": "voters.csv"}), "the parent's operation and input"
    ready = [e for e in await platform.store.read_events(0, 100, part.id) if e.topic == "job:ready"]
    assert ready[0].payload["isPart"] is True and ready[0].payload["part"] == 1
    assert ready[0].payload["parentId"] == parent_id
    top = await platform.api.jobs.list(is_part=False)
    assert [j.id for j in top.items] == [parent_id], "top-level lists can leave parts out"
    assert (await platform.api.jobs.list()).total == 4
    with pytest.raises(Conflict, match="already split"):
        await platform.api.jobs.split(parent_id, parts=2)
    await platform.api.jobs.ack(part.id)
    with pytest.raises(Conflict, match="is a part itself"):
        await platform.api.jobs.split(part.id, parts=2)


async def test_the_parent_counts_its_parts_and_a_listener_settles_it(platform: Platform) -> None:
    parent_id = await executing(platform)
    await platform.api.jobs.split(parent_id, parts=4)
    parts = (await platform.api.jobs.list(parent_id=parent_id)).items
    for part in parts:
        await platform.api.jobs.ack(part.id)
    await platform.api.jobs.update(parts[0].id, progress=50)
    assert (await platform.api.jobs.get(parent_id)).progress == 12, "progress is the parts' average"
    await platform.api.jobs.complete(parts[0].id)
    await platform.api.jobs.fail(parts[1].id, error="Row 7 is broken.")
    await platform.api.jobs.cancel(parts[2].id)
    parent = await platform.api.jobs.get(parent_id)
    assert parent.parts is not None
    assert (parent.parts.completed, parent.parts.failed, parent.parts.cancelled) == (1, 1, 1)
    assert parent.progress == 75 and parent.status is S.EXECUTING
    assert "job:parts-completed" not in await topics_of(platform, parent_id)
    await platform.api.jobs.complete(parts[3].id)
    trail = await platform.store.read_events(0, 100, parent_id)
    done = [e for e in trail if e.topic == "job:parts-completed"]
    assert len(done) == 1
    assert done[0].payload["parts"] == {"total": 4, "completed": 2, "failed": 1, "cancelled": 1}
    parent = await platform.api.jobs.get(parent_id)
    assert parent.status is S.EXECUTING, "with settle='listener' a listener ends the parent"
    await platform.api.jobs.complete(parent_id, outcome={"message": "2 of 4 parts imported."})
    assert (await platform.api.jobs.get(parent_id)).status is S.COMPLETE


@pytest.mark.parametrize(("fail", "status"), [(False, S.COMPLETE), (True, S.FAILED)])
async def test_settle_auto_ends_the_parent_naming_the_failed_parts(platform: Platform, fail: bool,
                                                                   status: JobStatus) -> None:
    parent_id = await executing(platform)
    await platform.api.jobs.split(parent_id, parts=3, settle="auto")
    parts = (await platform.api.jobs.list(parent_id=parent_id)).items
    for part in parts:
        await platform.api.jobs.ack(part.id)
        if fail and part.part in (1, 3):
            await platform.api.jobs.fail(part.id, error="Nope.")
        else:
            await platform.api.jobs.complete(part.id)
    parent = await platform.api.jobs.get(parent_id)
    assert parent.status is status
    topics = await topics_of(platform, parent_id)
    assert topics[-2:] == ["job:parts-completed", "job:failed" if fail else "job:completed"]
    if fail:
        assert parent.error is not None and parent.error.message == "2 of 3 parts did not complete: parts 1, 3."
    else:
        assert parent.outcome is not None and parent.outcome.message == "All 3 parts completed."


async def test_parts_run_one_after_another_and_a_failure_stops_the_rest(platform: Platform) -> None:
    parent_id = await executing(platform)
    await platform.api.jobs.split(parent_id, parts=3, run_in_parallel=False, settle="auto")
    ids = [p.id for p in (await platform.api.jobs.list(parent_id=parent_id)).items]

    async def statuses() -> list[JobStatus]:
        return [(await platform.api.jobs.get(i)).status for i in ids]

    assert await statuses() == [S.READY, S.PLANNING, S.PLANNING]
    await platform.api.jobs.ack(ids[0])
    await platform.api.jobs.complete(ids[0])
    assert await statuses() == [S.COMPLETE, S.READY, S.PLANNING], "the next part starts at once"
    await platform.api.jobs.ack(ids[1])
    await platform.api.jobs.fail(ids[1], error="Geocoder down.")
    assert await statuses() == [S.COMPLETE, S.FAILED, S.FAILED]
    parent = await platform.api.jobs.get(parent_id)
    assert parent.status is S.FAILED and parent.error is not None
    assert parent.error.message == "2 of 3 parts did not complete: parts 2, 3."


async def test_cancelling_the_parent_cancels_its_unfinished_parts(platform: Platform) -> None:
    parent_id = await executing(platform)
    await platform.api.jobs.split(parent_id, parts=3)
    ids = [p.id for p in (await platform.api.jobs.list(parent_id=parent_id)).items]
    await platform.api.jobs.ack(ids[0])
    await platform.api.jobs.complete(ids[0])
    await platform.api.jobs.ack(ids[1])
    await platform.api.jobs.cancel(parent_id)
    parts = [await platform.api.jobs.get(i) for i in ids]
    assert [p.status for p in parts] == [S.COMPLETE, S.CANCELLED, S.CANCELLED]
    assert parts[1].info == "Cancelled: its parent job ended."


async def test_limits_apply_to_parts(platform: Platform) -> None:
    await platform.api.jobs.configure("workbook:import", max_running=2)
    parent_id = await executing(platform)  # the parent holds one of the two slots
    await platform.api.jobs.split(parent_id, parts=3)
    parts = (await platform.api.jobs.list(parent_id=parent_id)).items
    assert [p.status for p in parts] == [S.READY, S.SCHEDULED, S.SCHEDULED]
    await platform.api.jobs.ack(parts[0].id)
    await platform.api.jobs.complete(parts[0].id)
    assert [(await platform.api.jobs.get(p.id)).status for p in parts] == [S.COMPLETE, S.READY, S.SCHEDULED]


async def test_a_missed_recount_is_made_by_the_sweep(platform: Platform, clock: ManualClock) -> None:
    parent_id = await executing(platform)
    await platform.api.jobs.split(parent_id, parts=2, settle="auto")
    ids = [p.id for p in (await platform.api.jobs.list(parent_id=parent_id)).items]
    for part_id in ids:
        await platform.api.jobs.ack(part_id)
    # Parts completed by the store directly: as if the process died right after their commit,
    # before it recounted the parent.
    def completed(job: Any, ctx: Any) -> JobChange:
        return JobChange(job.model_copy(update={"status": S.COMPLETE, "finished_at": clock.now()}), [])

    for part_id in ids:
        await platform.store.change_job(part_id, completed)
    assert (await platform.api.jobs.get(parent_id)).status is S.EXECUTING
    await platform.scheduler.sweep()
    parent = await platform.api.jobs.get(parent_id)
    assert parent.status is S.COMPLETE and parent.parts is not None and parent.parts.completed == 2


async def test_split_refuses_bad_input_and_jobs_not_executing(platform: Platform) -> None:
    parent_id = await executing(platform)
    for bad in (0, 1001, []):
        with pytest.raises(Invalid, match="parts"):
            await platform.api.jobs.split(parent_id, parts=bad)
    with pytest.raises(Invalid, match="settle"):
        await platform.api.jobs.split(parent_id, parts=2, settle="sometimes")
    ready = await platform.api.jobs.create(type="workbook", operation="import")
    with pytest.raises(Conflict, match="split needs executing"):
        await platform.api.jobs.split(ready.id, parts=2)
    assert (await platform.api.jobs.list(parent_id=parent_id)).total == 0, "nothing was created"


async def test_job_handler_splits_and_parts_are_told_apart_by_their_filter(platform: Platform) -> None:
    seen: list[tuple[int | None, dict[str, Any] | None]] = []

    async def import_file(event: Event, tick: Tick) -> None:
        await tick.split([{"batch": n} for n in range(3)])

    async def import_part(event: Event, tick: Tick) -> dict[str, str]:
        job = event.cache["job"]
        seen.append((job.part, job.part_data))
        return {"message": f"Batch {job.part_data['batch']} imported."}

    listener = Listener()
    listener.use(job_handler("workbook:import", import_file, filter={"isPart": False}))
    listener.use(job_handler("workbook:import", import_part, filter={"isPart": True}))
    async with platform.running(listener):
        job = await platform.api.jobs.create(type="workbook", operation="import")
        done = await until(platform, job.id, S.COMPLETE)
    assert sorted(seen, key=lambda s: s[0] or 0) == [(1, {"batch": 0}), (2, {"batch": 1}), (3, {"batch": 2})]
    assert done.outcome is not None and done.outcome.message == "All 3 parts completed."
    assert "job:parts-completed" in await topics_of(platform, job.id)


async def test_split_and_list_parts_over_http(server: Server) -> None:
    async with Client(server.url, token=server.admin_token) as client:
        job = await client.jobs.create(type="workbook", operation="import")
        await client.jobs.ack(job.id)
        parent = await client.jobs.split(job.id, parts=[{"a": 1}, {"a": 2}], run_in_parallel=False)
        assert parent.parts is not None and parent.parts.total == 2 and not parent.parts.run_in_parallel
        parts = await client.jobs.list(parent_id=job.id)
        assert [(p.part, p.part_data, p.status) for p in parts.items] == [(1, {"a": 1}, S.READY),
                                                                       (2, {"a": 2}, S.PLANNING)]
        assert [j.id for j in (await client.jobs.list(is_part=False)).items] == [job.id]
        assert (await client.jobs.list(is_part=True)).total == 2
