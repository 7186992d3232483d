"""Ready jobs are a queue: a job that was ready before its worker started still reaches it, oldest first.

In-process (`platform.running`) and remote (`run_listener` over a real server and websocket); new agents,
known agents, and a worker joining a busy one of its agent. Other topics keep the broadcast's rule.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio
import pytest

from listener import Event, JobStatus, Listener, Outcome
from listener.client import Client, run_listener
from listener.platform import Platform
from tests.conftest import Server
from tests.platform.test_sharing import ready_jobs
from tests.platform.test_stream import new_job, stream

pytestmark = pytest.mark.anyio


def exporter(seen: list[str], *, job: str = "workbook:export", gate: anyio.Event | None = None,
             started: anyio.Event | None = None) -> Listener:
    listener = Listener("exporter")

    @listener.on("job:ready", job=job)
    async def export(event: Event) -> None:
        job_id = event.context.job_id
        assert job_id is not None
        await event.api.jobs.ack(job_id)
        seen.append(job_id)
        if started is not None:
            started.set()
        if gate is not None:
            await gate.wait()
        await event.api.jobs.complete(job_id, outcome=Outcome(message="Exported."))

    return listener


async def test_a_job_ready_before_the_in_process_runner_started_reaches_it(platform: Platform) -> None:
    first = await platform.api.jobs.create(type="workbook", operation="export")
    second = await platform.api.jobs.create(type="workbook", operation="export")
    other = await platform.api.jobs.create(type="sheet", operation="export")  # no handler takes it
    seen: list[str] = []
    async with platform.running(exporter(seen), agent="fresh", concurrency=1):
        assert (await platform.api.jobs.wait(first.id, timeout=10)).status is JobStatus.COMPLETE
        assert (await platform.api.jobs.wait(second.id, timeout=10)).status is JobStatus.COMPLETE
    assert seen == [first.id, second.id], "oldest first, each once"
    assert (await platform.api.jobs.get(other.id)).status is JobStatus.READY
    ready = [e for e in await platform.api.events.list(limit=100) if e.topic == "job:ready"]
    assert [e.context.job_id for e in ready] == [first.id, second.id, other.id, first.id, second.id], \
        "only the jobs a handler takes are announced again, in order"


async def test_a_known_agent_gets_the_ready_jobs_behind_its_cursor_that_it_now_has_a_handler_for(
        platform: Platform) -> None:
    seen: list[str] = []
    async with platform.running(exporter(seen, job="sheet:export"), agent="known"):
        job = await platform.api.jobs.create(type="workbook", operation="export")
        marker = await platform.api.jobs.create(type="sheet", operation="export")
        assert (await platform.api.jobs.wait(marker.id, timeout=10)).status is JobStatus.COMPLETE
    assert (await platform.store.get_cursor("known") or 0) >= 2, "the agent's cursor passed the job's job:ready"
    assert (await platform.api.jobs.get(job.id)).status is JobStatus.READY
    async with platform.running(exporter(seen), agent="known"):
        assert (await platform.api.jobs.wait(job.id, timeout=10)).status is JobStatus.COMPLETE
    assert seen == [marker.id, job.id]


async def test_a_resuming_agent_replays_the_ready_jobs_after_its_cursor_without_announcing_them(
        platform: Platform) -> None:
    seen: list[str] = []
    async with platform.running(exporter(seen), agent="known"):
        pass
    job = await platform.api.jobs.create(type="workbook", operation="export")  # after the cursor: replayed
    async with platform.running(exporter(seen), agent="known"):
        assert (await platform.api.jobs.wait(job.id, timeout=10)).status is JobStatus.COMPLETE
    ready = [e for e in await platform.api.events.list(limit=100) if e.topic == "job:ready"]
    assert len(ready) == 1 and seen == [job.id]


async def test_other_topics_keep_the_broadcast_rule_a_new_agent_starts_at_the_newest_event(
        platform: Platform) -> None:
    created: list[str] = []
    handled = anyio.Event()
    listener = Listener("watcher")

    @listener.on("job:created")
    async def watch(event: Event) -> None:
        created.append(event.context.job_id or "")
        handled.set()

    before = await platform.api.jobs.create(type="workbook", operation="export")
    async with platform.running(listener, agent="watcher"):
        after = await platform.api.jobs.create(type="workbook", operation="export")
        with anyio.fail_after(10):
            await handled.wait()
    assert created == [after.id] and before.id not in created


async def test_a_worker_that_starts_over_the_stream_gets_the_jobs_ready_before_it(server: Server) -> None:
    jobs = [await new_job(server) for _ in range(3)]
    await server.platform.api.jobs.ack(jobs[1].id)  # claimed already: not handed out again
    seen: list[str] = []
    async with Client(server.url, token=server.admin_token) as client, anyio.create_task_group() as tg:
        await tg.start(functools.partial(run_listener, client, exporter(seen), agent="fresh", concurrency=1))
        for job in (jobs[0], jobs[2]):
            assert (await client.jobs.wait(job.id, timeout=10)).status is JobStatus.COMPLETE
        tg.cancel_scope.cancel()
    assert seen == [jobs[0].id, jobs[2].id]
    assert (await server.platform.api.jobs.get(jobs[1].id)).status is JobStatus.EXECUTING


async def test_a_worker_joining_a_busy_one_of_its_agent_takes_the_ready_jobs_it_was_handed(server: Server) -> None:
    gate, started = anyio.Event(), anyio.Event()
    busy_seen: list[str] = []
    new_seen: list[str] = []
    async with Client(server.url, token=server.admin_token) as one, \
            Client(server.url, token=server.admin_token) as two, anyio.create_task_group() as tg:
        busy = exporter(busy_seen, gate=gate, started=started)
        await tg.start(functools.partial(run_listener, one, busy, agent="shared", concurrency=1))
        # Enough that the busy worker's socket reads their job:ready events into its buffers and the group
        # hands every one of them to it, the only worker there is.
        jobs = [await one.jobs.create(type="workbook", operation="export") for _ in range(150)]
        with anyio.fail_after(10):
            await started.wait()  # the busy worker is stuck in its first job; the others wait in its hands
        await tg.start(functools.partial(run_listener, two, exporter(new_seen), agent="shared", concurrency=1))
        for job in jobs[1:]:
            assert (await two.jobs.wait(job.id, timeout=10)).status is JobStatus.COMPLETE
        gate.set()
        assert (await one.jobs.wait(jobs[0].id, timeout=10)).status is JobStatus.COMPLETE
        tg.cancel_scope.cancel()
    assert busy_seen == [jobs[0].id]
    assert new_seen == [job.id for job in jobs[1:]], "oldest first"


async def test_a_stream_that_says_it_is_a_worker_gets_the_waiting_jobs_its_filters_take(server: Server) -> None:
    token = await server.token("worker", "agent")
    # The one its filters do not take is older: were it announced, its job:ready would come first.
    other, export = await new_job(server, operation="import"), await new_job(server)
    params: dict[str, Any] = {"agent": "w", "batch": "true", "ready": '[[{"job": "workbook:export"}]]'}
    async with stream(server, token, params) as s:
        await s.ready()
        events = await s.events(1)
        assert [(e["topic"], e["context"]["jobId"]) for e in events] == [("job:ready", export.id)]
    assert (await server.platform.api.jobs.get(other.id)).status is JobStatus.READY
    # A watcher (no `ready`) is a broadcast listener: nothing is announced for it.
    async with stream(server, token, {"agent": "watcher"}) as s:
        await s.ready()
        await server.platform.api.spaces.create(name="marker")
        assert await ready_jobs(s) == {}


@pytest.mark.parametrize("ready", ["{", '{"job": "x"}', '[{"job": "x"}]', '[["x"]]', '[[{"nope": 1}]]'])
async def test_a_malformed_ready_is_refused_naming_the_field(server: Server, ready: str) -> None:
    import aiohttp

    from tests.platform.test_server import API, assert_error, call, snapshot

    before = await snapshot(server)
    status, body = await call(server, "GET", f"{API}/events/stream", server.admin_token,
                              params={"agent": "w", "ready": ready})
    message = assert_error(status, body, 422, "invalid")
    assert "ready" in message or "filter" in message.lower() or "nope" in message
    with pytest.raises(aiohttp.WSServerHandshakeError):
        async with stream(server, server.admin_token, {"agent": "w", "ready": ready}):
            pass
    assert await snapshot(server) == before
