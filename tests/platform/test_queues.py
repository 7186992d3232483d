"""Queues and workers (queues.py, queue_routes.py, workers.py) over a real server, real sockets and both stores."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from listener import Event, Listener
from listener.client import Client
from listener.platform import Platform
from listener.remote import run_listener
from tests.conftest import ManualClock, Server
from tests.platform.test_server import API, assert_error, call
from tests.platform.test_stream import stream
from tests.test_client import replicas, take
from tests.test_processes import started

pytestmark = pytest.mark.anyio


async def get(server: Server, path: str, token: str | None = None, **kw: Any) -> Any:
    status, body = await call(server, "GET", API + path, token or server.admin_token, **kw)
    assert status == 200, body
    return body


async def finish(server: Server, job_id: str, *, fail: bool = False) -> None:
    jobs = server.platform.api.jobs
    await jobs.ack(job_id)
    if fail:
        await jobs.fail(job_id, error="Broken", retryable=False)
    else:
        await jobs.complete(job_id, outcome={"message": "Done."})


async def test_a_queue_counts_its_jobs_ages_its_oldest_ready_and_charts_what_ended_per_minute(
        server: Server, clock: ManualClock) -> None:
    admin = server.platform.api.as_actor("admin")
    make = functools.partial(admin.jobs.create, type="workbook", operation="export")
    await finish(server, (await make()).id)  # two hours before: out of the chart
    clock.advance(2 * 3600 + 30)  # 14:00:30
    first, second = await make(), await make()
    await finish(server, first.id)
    clock.advance(10)
    await finish(server, second.id, fail=True)
    other = await admin.jobs.create(type="workbook", operation="import")
    await finish(server, other.id)  # another queue's
    clock.advance(5 * 60 - 10)  # 14:05:30
    await finish(server, (await make()).id)
    oldest = await make()
    clock.advance(20)  # 14:05:50
    await make()
    running = await make()
    await admin.jobs.ack(running.id)

    queue = await get(server, "/queues/workbook:export")
    assert queue["job"] == "workbook:export" and (queue["type"], queue["operation"]) == ("workbook", "export")
    assert queue["counts"] == {"created": 0, "planning": 0, "scheduled": 0, "ready": 2, "executing": 1,
                               "complete": 3, "failed": 1, "cancelled": 0}
    assert (queue["ready"], queue["executing"]) == (2, 1)
    assert queue["oldestReadySeconds"] == 20.0
    assert queue["oldestReadyAt"].startswith(oldest.updated_at.strftime("%Y-%m-%dT%H:%M:%S"))
    throughput = queue["throughput"]
    assert throughput["since"].startswith("2026-01-01T13:06:00")  # the last minute is 14:05, the one under way
    assert throughput["minuteSeconds"] == 60
    assert len(throughput["completed"]) == len(throughput["failed"]) == 60
    assert {i: n for i, n in enumerate(throughput["completed"]) if n} == {54: 1, 59: 1}
    assert {i: n for i, n in enumerate(throughput["failed"]) if n} == {54: 1}
    assert queue["listening"] == 0 and queue["unheard"] is True and queue["workers"] == []
    assert queue["settings"] is None and queue["scope"] == "server"

    status, body = await call(server, "PUT", f"{API}/job-settings/workbook:export", server.admin_token,
                              json={"maxRunning": 3, "startsPerSecond": 2, "timeoutSeconds": 600})
    assert status == 200, body
    listing = await get(server, "/queues")
    assert [q["job"] for q in listing["items"]] == ["workbook:export", "workbook:import"]
    export = listing["items"][0]
    assert export["settings"] == {"job": "workbook:export", "maxRunning": 3, "startsPerSecond": 2.0,
                                  "timeoutSeconds": 600, "maxLeaseExpirations": None, "priority": None,
                                  "maxRunningPerKey": None, "startsPerSecondPerKey": None}
    assert export["counts"]["ready"] == 2 and export["unheard"] is True
    assert listing["items"][1]["counts"]["complete"] == 1 and listing["items"][1]["unheard"] is False

    empty = await get(server, "/queues/voters:geocode")  # a type with no jobs yet: zeros, not a 404
    assert empty["ready"] == 0 and empty["oldestReadyAt"] is None and sum(empty["throughput"]["completed"]) == 0


async def test_a_worker_is_listed_with_its_lag_and_the_jobs_in_its_hands(server: Server) -> None:
    started_, release = anyio.Event(), anyio.Event()
    listener = Listener()

    @listener.on("job:ready", {"job": "workbook:export"})
    async def export(event: Event) -> None:
        assert event.context.job_id is not None
        await event.api.jobs.ack(event.context.job_id)
        started_.set()
        await release.wait()
        await event.api.jobs.complete(event.context.job_id, outcome={"message": "Done."})

    agent = await server.token("robot", "agent")
    async with Client(server.url, token=agent) as client, anyio.create_task_group() as tg:
        await tg.start(functools.partial(run_listener, client, listener, agent="exporter", concurrency=1))
        held = await client.jobs.create(type="workbook", operation="export")
        await started_.wait()
        waiting = await client.jobs.create(type="workbook", operation="export")
        unheard = await client.jobs.create(type="workbook", operation="import")
        await anyio.wait_all_tasks_blocked()  # the server has handed `waiting` to its only worker

        workers = await get(server, "/workers")
        [worker] = [w for w in workers["items"] if w["kind"] == "stream"]
        assert (worker["agent"], worker["user"], worker["shared"]) == ("exporter", "robot", True)
        assert worker["topics"] == ["job:ready"] and worker["ready"] == [[{"job": "workbook:export"}]]
        assert worker["executing"] == [{"id": held.id, "job": "workbook:export"}]
        # Its socket takes every job:ready (its topic) and shares them: both were handed to it, although
        # no handler of its takes the import, as the queues say below.
        assert worker["handed"] == [{"id": waiting.id, "job": "workbook:export"},
                                    {"id": unheard.id, "job": "workbook:import"}]
        assert worker["lag"] == workers["head"] - worker["position"] and worker["lag"] > 0
        assert {w["agent"] for w in workers["items"] if w["kind"] == "in-process"} == {"system"}

        queue = await get(server, "/queues/workbook:export")
        assert queue["listening"] == 1 and queue["unheard"] is False
        assert [w["id"] for w in queue["workers"]] == [worker["id"]]
        assert (await get(server, "/queues/workbook:import"))["unheard"] is True
        found = await get(server, "/queues/unheard", params={"jobId": f"{waiting.id},{unheard.id},{held.id}"})
        assert found["items"] == [{"jobId": unheard.id, "job": "workbook:import",
                                   "message": "No worker is listening for workbook:import"}]

        release.set()
        await client.jobs.wait(waiting.id, timeout=10)
        tg.cancel_scope.cancel()
    assert not [c for c in server.platform.workers if c.kind == "stream"], "the worker left with its socket"
    found = await get(server, "/queues/unheard", params={"jobId": unheard.id})
    assert [u["jobId"] for u in found["items"]] == [unheard.id]


async def test_sockets_that_ask_are_told_when_workers_come_and_go_and_a_reconnect_says_its_filters(
        server: Server) -> None:
    job = await server.platform.api.jobs.create(type="workbook", operation="export")
    wanted = json.dumps([[{"job": "workbook:export"}]])
    async with stream(server, server.admin_token, {"workers": "true"}) as page:
        await page.ready()
        async with stream(server, server.admin_token, {"agent": "exporter", "topic": "job:ready",
                                                       "listens": wanted}) as worker:
            assert (await worker.ready())["listens"] is True
            assert await page.message() == {"type": "workers", "connected": 2}  # the system agent and this one
            assert (await get(server, "/queues/unheard", params={"jobId": job.id}))["items"] == []
            [listed] = [w for w in (await get(server, "/workers"))["items"] if w["agent"] == "exporter"]
            assert listed["ready"] == [[{"job": "workbook:export"}]] and listed["shared"] is False
            await anyio.wait_all_tasks_blocked()
            events = await server.platform.api.events.list(job_id=job.id)
            assert [e.topic for e in events] == ["job:created", "job:ready"], "`listens` announces nothing again"
        assert await page.message() == {"type": "workers", "connected": 1}
        assert [u["jobId"] for u in (await get(server, "/queues/unheard", params={"jobId": job.id}))["items"]] \
            == [job.id]


async def test_a_worker_that_filters_on_more_than_the_type_is_asked_of_each_job(server: Server) -> None:
    api = server.platform.api
    wb = await api.workbooks.create(name="W", sheets=[{"name": "A", "slug": "contacts"}, {"name": "B", "slug": "x"}])
    contacts, other = wb.sheets
    wanted = json.dumps([[{"job": "sheet:tidy", "sheet": "contacts"}]])
    async with stream(server, server.admin_token, {"agent": "tidier", "topic": "job:ready", "ready": wanted}) as w:
        await w.ready()
        mine = await api.jobs.create(type="sheet", operation="tidy", source=contacts.id)
        theirs = await api.jobs.create(type="sheet", operation="tidy", source=other.id)
        found = await get(server, "/queues/unheard", params={"jobId": [mine.id, theirs.id]})
        assert [u["jobId"] for u in found["items"]] == [theirs.id]
        assert (await get(server, "/queues/sheet:tidy"))["listening"] == 1  # of the first ready job: `mine`


async def test_members_see_no_queues_and_hear_only_about_their_own_jobs(server: Server) -> None:
    mia = await server.token("mia")
    await server.token("bob")
    own = await server.platform.api.as_actor("mia").jobs.create(type="workbook", operation="export")
    bobs = await server.platform.api.as_actor("bob").jobs.create(type="workbook", operation="export")
    for path in ("/queues", "/queues/workbook:export", "/workers"):
        status, body = await call(server, "GET", API + path, mia)
        assert "needs the admin or agent role" in assert_error(status, body, 403, "forbidden")
    found = await get(server, "/queues/unheard", mia, params={"jobId": f"{own.id},{bobs.id},jb_nobody"})
    assert [u["jobId"] for u in found["items"]] == [own.id]


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/queues/Workbook:export", None, "job"),
    ("/queues/workbook", None, "job"),
    ("/queues/unheard", None, "jobId"),
    ("/queues/unheard", {"jobId": ""}, "jobId.0"),
    ("/queues/unheard", {"jobId": ",".join(f"jb_{i}" for i in range(101))}, "jobId"),
    ("/queues/unheard", {"jobId": "jb_1", "limit": "3"}, "limit"),
])
async def test_bad_input_is_a_422_naming_the_field(server: Server, path: str, params: dict[str, str] | None,
                                                   field: str) -> None:
    status, body = await call(server, "GET", API + path, server.admin_token, params=params)
    assert_error(status, body, 422, "invalid")
    assert field in [d["field"] for d in body["error"]["details"]], body


async def test_metrics_carry_each_queues_depth_and_the_age_of_its_oldest_ready_job(
        server: Server, clock: ManualClock) -> None:
    api = server.platform.api
    await api.jobs.create(type="workbook", operation="export")
    clock.advance(90)
    await api.jobs.create(type="workbook", operation="export")
    done = await api.jobs.create(type="sheet", operation="tidy")
    await finish(server, done.id)
    status, text = await call(server, "GET", "/metrics", server.admin_token)
    assert status == 200
    assert re.search(r'^listener_ready_jobs\{job="workbook:export"\} 2\.0$', text, re.M)
    assert re.search(r'^listener_ready_jobs\{job="sheet:tidy"\} 0\.0$', text, re.M)
    assert re.search(r'^listener_ready_oldest_seconds\{job="workbook:export"\} 90\.0$', text, re.M)
    assert re.search(r'^listener_ready_oldest_seconds\{job="sheet:tidy"\} 0\.0$', text, re.M)


WORKER = '''
from listener import Listener, Outcome
from plugins.job_handler import job_handler

async def export(event, tick):
    return Outcome(message="Exported.")

listener = Listener("exporter").use(job_handler("workbook:export", export))
'''


async def test_a_real_listener_run_is_a_worker_until_it_dies(server: Server, tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    api = server.platform.api
    waiting = await api.jobs.create(type="workbook", operation="import")
    assert (await get(server, "/queues/workbook:export"))["listening"] == 0
    changed = server.platform.workers.changed
    async with started("run", str(worker), "--url", server.url, "--token", server.admin_token,
                       "--agent", "exporter") as (run, out):
        with anyio.fail_after(20):
            await changed()
        await out.wait_for("is listening")
        [listed] = [w for w in (await get(server, "/workers"))["items"] if w["kind"] == "stream"]
        assert listed["agent"] == "exporter" and listed["user"] == "admin" and listed["shared"] is True
        assert listed["ready"] == [[{"job": "workbook:export"}]]
        assert (await get(server, "/queues/workbook:export"))["listening"] == 1
        job = await api.jobs.create(type="workbook", operation="export")
        assert (await api.jobs.wait(job.id, timeout=20)).outcome.message == "Exported."  # type: ignore[union-attr]
        assert [u["jobId"] for u in (await get(server, "/queues/unheard", params={"jobId": waiting.id}))["items"]] \
            == [waiting.id]
        run.kill()
        with anyio.fail_after(20):
            while any(c.kind == "stream" for c in server.platform.workers):
                await changed()
    assert (await get(server, "/queues/workbook:export"))["listening"] == 0


async def test_an_in_process_listener_is_a_worker_while_it_runs(server: Server) -> None:
    listener = Listener()
    listener.on("job:ready", {"job": "voters:geocode"}, lambda event: None)
    job = await server.platform.api.jobs.create(type="voters", operation="geocode", trigger="manual")
    await server.platform.api.jobs.execute(job.id)
    assert (await get(server, "/queues/voters:geocode"))["unheard"] is True
    async with server.platform.running(listener, agent="geocoder"):
        queue = await get(server, "/queues/voters:geocode")
        assert queue["listening"] == 1 and [w["agent"] for w in queue["workers"]] == ["geocoder"]
        assert queue["workers"][0]["kind"] == "in-process" and queue["workers"][0]["lag"] is not None
    assert (await get(server, "/queues/voters:geocode"))["listening"] == 0



async def test_a_worker_that_reconnects_says_its_filters_again_and_is_announced_nothing_twice(
        platform: Platform) -> None:
    waiting = await platform.api.jobs.create(type="workbook", operation="export")
    ready = [[{"job": "workbook:export"}]]
    async with replicas(platform, 1) as ([replica], token), Client(replica.url, token=token) as client:
        async with client.stream(agent="exporter", topics=["job:ready"], share=True, ready=ready,
                                 backoff_start=0.01, backoff_max=0.05) as events:
            [announced] = await take(events, 1)  # the job ready before it started
            assert announced.context.job_id == waiting.id
            async with anyio.create_task_group() as tg:
                await replica.stop()
                assert not [c for c in platform.workers if c.kind == "stream"]
                await replica.start(tg)
                fresh = await platform.api.jobs.create(type="workbook", operation="export")
                [event] = await take(events, 1)  # a job made ready after the reconnect, not `waiting` again
                assert event.context.job_id == fresh.id and events.connections == 2
                [worker] = [c for c in platform.workers if c.kind == "stream"]
                assert worker.ready == ready, "the reconnect said its job:ready filters again (listens=)"
                await replica.stop()
