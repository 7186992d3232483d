"""Retry only what failed: a new job for exactly the items an ended job's error log names (issue 17, item 6)."""

from __future__ import annotations

import pytest

from listener import Conflict, Event, JobStatus, Listener, Outcome, Platform
from listener.models import NextRetry
from plugins.job_handler import Tick, job_handler
from tests.conftest import Server
from tests.platform.test_server import API, call, snapshot

S = JobStatus
pytestmark = pytest.mark.anyio


async def failed_import(platform: Platform, items: list[str | None]) -> str:
    job = await platform.api.jobs.create(type="workbook", operation="import", metadata={"file": "rows.csv"},
                                         input={"sheet": "contacts", "items": ["stale"]}, timeout_seconds=600)
    await platform.api.jobs.ack(job.id)
    await platform.api.jobs.log_errors(job.id, [{"item": item, "message": f"bad {item}"} for item in items])
    await platform.api.jobs.fail(job.id, error=f"{len(items)} rows failed")
    return job.id


async def test_the_retry_runs_exactly_the_items_that_failed_as_a_new_linked_job(platform: Platform) -> None:
    first = await failed_import(platform, ["row 7", None, "row 12", "row 7", "row 40"])
    again = await platform.api.jobs.retry_failed_items(first)
    assert again.id != first and again.retry_of == first and again.status is S.READY
    assert again.input == {"sheet": "contacts", "items": ["row 7", "row 12", "row 40"]}, "distinct, in order, no None"
    assert (again.job, again.metadata, again.timeout_seconds) == ("workbook:import", {"file": "rows.csv"}, 600)
    assert (await platform.api.jobs.get(first)).status is S.FAILED, "the first job is left as it ended"
    topics = [e.topic for e in await platform.store.read_events(0, 100, again.id)]
    assert topics == ["job:created", "job:ready"]


async def test_only_an_ended_job_with_failed_items_can_be_retried_so(platform: Platform) -> None:
    running = await platform.api.jobs.create(type="workbook", operation="import")
    await platform.api.jobs.ack(running.id)
    await platform.api.jobs.log_error(running.id, item="row 1", message="bad")
    clean = await failed_import(platform, [None])  # its log names no item
    before = await snapshot_of(platform)
    with pytest.raises(Conflict, match="has ended"):
        await platform.api.jobs.retry_failed_items(running.id)
    with pytest.raises(Conflict, match="no failed items"):
        await platform.api.jobs.retry_failed_items(clean)
    assert await snapshot_of(platform) == before, "a refused retry changes nothing"


async def snapshot_of(platform: Platform) -> list[tuple[str, str]]:
    return [(j.id, j.status.value) for j in (await platform.api.jobs.list(limit=100)).items]


async def test_one_job_handler_serves_the_first_run_and_the_retry_of_its_failed_items(platform: Platform) -> None:
    rows = {f"row {n}": n for n in range(1, 11)}
    done: list[list[str]] = []

    async def import_rows(event: Event, tick: Tick) -> Outcome:
        todo = [key for key in rows if tick.items is None or key in tick.items]
        for key in todo:
            if rows[key] % 4 == 0 and tick.items is None:  # rows 4 and 8 are bad the first time
                await event.api.jobs.log_error(event.context.job_id or "", item=key, message="no email")
        done.append(todo)
        return Outcome(message=f"{len(todo)} rows", next=NextRetry(type="retry", failed_items=True))

    async with platform.running(Listener().use(job_handler("workbook:import", import_rows))):
        first = await platform.api.jobs.create(type="workbook", operation="import")
        await platform.api.jobs.wait(first.id, timeout=5)
        again = await platform.api.jobs.retry_failed_items(first.id)
        assert (await platform.api.jobs.wait(again.id, timeout=5)).status is S.COMPLETE
    assert done == [list(rows), ["row 4", "row 8"]]


async def test_over_rest_a_member_retries_only_their_own_jobs(server: Server) -> None:
    ann = await server.token("ann", "member")
    status, job = await call(server, "POST", f"{API}/jobs", ann, json={"type": "workbook", "operation": "import"})
    await server.platform.api.jobs.ack(job["id"])
    await server.platform.api.jobs.log_error(job["id"], item="row 3", message="bad")
    await server.platform.api.jobs.fail(job["id"], error="1 row failed")
    bob = await server.token("bob", "member")
    before = await snapshot(server)
    status, refused = await call(server, "POST", f"{API}/jobs/{job['id']}/retry-failed-items", bob)
    assert status == 404 and refused["error"]["code"] == "not_found", "bob never learns the job exists"
    assert await snapshot(server) == before
    status, again = await call(server, "POST", f"{API}/jobs/{job['id']}/retry-failed-items", ann)
    assert status == 202 and again["retryOf"] == job["id"] and again["input"] == {"items": ["row 3"]}
    assert again["createdBy"] == "ann" and again["status"] == "ready"
