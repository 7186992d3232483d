"""Fault injection with real processes: `listener run` and `listener serve` killed (SIGKILL) mid-job.

A killed worker loses its lease and another resumes the job; a killed server restarts on the same database
with no job and no committed event lost, its timers (leases, retries, run_at) resuming.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from listener import Event, JobStatus
from listener.client import Client
from tests.conftest import BACKENDS, postgres_schema
from tests.test_processes import TOKEN, WORKER, Lines, started, stopped, taken

pytestmark = pytest.mark.anyio

SERVING = r"serving (http://127\.0\.0\.1:\d+)"

BATCHES = '''
import os
from pathlib import Path

import anyio
from listener import Listener
from listener.models import RetryPolicy
from plugins.job_handler import job_handler

LOG = Path(__file__).with_suffix(".batches")

async def geocode(event, tick):
    start = (event.cache["checkpoint"] or {}).get("next_batch", 0)
    for batch in range(start, 10):
        await anyio.sleep(0.2)
        with LOG.open("a") as f:
            f.write(f"{os.getpid()} {event.cache['job'].attempt} {batch}\\n")
        await tick.checkpoint({"next_batch": batch + 1})
        await tick((batch + 1) * 10, f"Batch {batch + 1} of 10")
    return {"message": f"Geocoded, resuming at batch {start}."}

listener = Listener("geocoder").use(job_handler(
    "workbook:geocode", geocode, lease_seconds=2, retry=RetryPolicy(max_attempts=3, base_seconds=0.1, jitter=0)))
'''


async def test_a_killed_worker_loses_its_lease_and_another_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    worker = tmp_path / "geocoder.py"
    worker.write_text(BATCHES)
    log = worker.with_suffix(".batches")
    db = f"sqlite:///{tmp_path / 'listener.db'}"
    async with started("serve", "--db", db, "--port", "0") as (server, server_out):
        url = (await server_out.wait_for(SERVING)).group(1)
        args = ("run", str(worker), "--url", url, "--token", TOKEN, "--agent", "geocoder")
        async with Client(url, token=TOKEN) as client:
            async with started(*args) as (first, first_out):
                await first_out.wait_for("is listening")
                async with client.stream(topics=["job:updated"], filter={"payload.progress": 40}) as updates:
                    job = await client.jobs.create(type="workbook", operation="geocode")
                    with anyio.fail_after(20):
                        await updates.__anext__()  # four batches done and checkpointed
                first.kill()  # mid-job: no goodbye, the lease is all the platform has
                await first.wait()
            async with started(*args) as (second, second_out):
                await second_out.wait_for("is listening")
                done = await client.jobs.wait(job.id, timeout=30)
                await stopped(second, second_out)
            trail = await client.events.list(after=0, limit=200, job_id=job.id)
            failures = [e for e in trail if e.topic == "job:failed"]
            requeued = [e for e in trail if e.topic == "job:ready" and "error" in e.payload]
        await stopped(server, server_out)
    assert done.status is JobStatus.COMPLETE and done.attempt == 2
    assert failures == [], "a dead worker is not the job's failure"
    assert [e.payload["error"]["kind"] for e in requeued] == ["lease_expired"], "it went back to ready"
    runs = [line.split() for line in log.read_text().splitlines()]
    by_attempt = {a: [int(b) for _, att, b in runs if att == a] for a in ("1", "2")}
    assert by_attempt["1"][:4] == [0, 1, 2, 3]
    resumed_at = by_attempt["2"][0]
    assert resumed_at >= 4, "attempt 2 started from the checkpoint, not from batch 0"
    assert sorted(set(by_attempt["1"]) | set(by_attempt["2"])) == list(range(10)), "every batch ran"
    assert done.outcome is not None and done.outcome.message == f"Geocoded, resuming at batch {resumed_at}."


# -- a killed server ------------------------------------------------------------------

RESTARTS = '''
import anyio
from listener import Listener
from listener.models import RetryPolicy
from plugins.job_handler import job_handler

async def geocode(event, tick):
    start = (event.cache["checkpoint"] or {}).get("next_batch", 0)
    for batch in range(start, 10):
        await anyio.sleep(0.2)
        await tick.checkpoint({"next_batch": batch + 1})
        await tick((batch + 1) * 10, f"Batch {batch + 1} of 10")
    return {"message": f"Geocoded, resuming at batch {start}."}

async def flaky(event, tick):
    attempt = event.cache["job"].attempt
    if attempt == 1:
        raise RuntimeError("Importer unavailable")
    return {"message": f"Imported on attempt {attempt}."}

listener = Listener("restarts").use(job_handler(
    "workbook:geocode", geocode, lease_seconds=2, retry=RetryPolicy(max_attempts=6, base_seconds=0.1, jitter=0)))
listener.use(job_handler(
    "workbook:import", flaky, lease_seconds=2, retry=RetryPolicy(max_attempts=3, base_seconds=4, jitter=0)))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'listener.db'}"
    else:
        async with postgres_schema() as url:
            yield url


async def drain(lines: Lines) -> None:
    """Keep reading a process's output (into `lines.seen`) so that a full pipe never blocks it."""
    with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        await lines.wait_for(r"(?!)", timeout=math.inf)


async def every_event(client: Client) -> list[Event]:
    events: list[Event] = []
    while page := await client.events.list(after=events[-1].seq if events else 0, limit=1000):
        events.extend(page)
    return events


def assert_legal_trail(job_id: str, trail: Sequence[Event]) -> None:
    """created, ready+, (ack, updates..., failed willRetry, ready+)*, ack, updates..., completed: nothing else."""
    state, attempt = "new", 0
    topics = [(e.topic, e.payload.get("status")) for e in trail]
    for e in trail:
        where = f"job {job_id}: {e.topic} (seq {e.seq}) when {state}; trail {topics}"
        status = e.payload.get("status")
        if e.topic == "job:created":
            assert state == "new", where
            state = "created"
        elif e.topic == "job:ready":  # again while ready: announced again, its worker went away unclaimed
            assert (state in ("created", "scheduled", "ready") and status == "ready") or (
                state == "executing" and e.payload["error"]["kind"] == "lease_expired"), where  # its worker died
            state = "ready"
        elif e.topic == "job:updated":
            assert state in ("ready", "executing") and status == "executing", where
            if state == "ready":  # the ack: a new attempt
                attempt += 1
                assert e.payload["attempt"] == attempt, where
            assert e.payload["attempt"] == attempt, where
            state = "executing"
        elif e.topic == "job:failed":
            assert state == "executing" and status == "scheduled" and e.payload["willRetry"] is True, where
            assert e.payload["error"]["kind"] in ("lease_expired", "error"), where
            state = "scheduled"
        elif e.topic == "job:completed":
            assert state == "executing" and status == "complete" and e.payload["attempt"] == attempt, where
            state = "complete"
        else:
            raise AssertionError(where)
    assert state == "complete", f"job {job_id} did not end with job:completed: {topics}"
    seqs = [e.seq for e in trail]
    assert seqs == sorted(set(seqs)), f"job {job_id}: seq not strictly increasing: {seqs}"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_killed_server_restarts_with_no_job_or_event_lost(backend: str, tmp_path: Path) -> None:
    worker_file = tmp_path / "restarts.py"
    worker_file.write_text(RESTARTS)
    async with database(backend, tmp_path) as db, anyio.create_task_group() as drains:
        port = free_port()  # the restarted server comes back where the worker looks for it
        url = f"http://127.0.0.1:{port}"
        serve = ("serve", "--db", db, "--port", str(port))
        async with AsyncExitStack() as stack:
            first, first_out = await stack.enter_async_context(started(*serve))
            await first_out.wait_for(SERVING)
            drains.start_soon(drain, first_out)
            worker, worker_out = await stack.enter_async_context(started(
                "run", str(worker_file), "--url", url, "--token", TOKEN, "--agent", "restarts"))
            await worker_out.wait_for("is listening")
            drains.start_soon(drain, worker_out)

            async with Client(url, token=TOKEN) as client:
                async with client.stream(topics=["job:updated", "job:failed"]) as news:
                    geocodes = [(await client.jobs.create(type="workbook", operation="geocode")).id for _ in range(5)]
                    flaky = (await client.jobs.create(type="workbook", operation="import")).id
                    later = (await client.jobs.create(type="workbook", operation="geocode",
                                                      run_at=datetime.now(UTC) + timedelta(seconds=5))).id
                    progressed = retrying = False
                    with anyio.fail_after(20):
                        async for event in news:
                            retrying |= event.topic == "job:failed" and event.context.job_id == flaky
                            progressed |= (event.topic == "job:updated" and event.context.job_id in geocodes
                                           and event.payload["progress"] >= 20)
                            if progressed and retrying:
                                break
                before = {job_id: await client.jobs.get(job_id) for job_id in [*geocodes, flaky, later]}
                committed = await every_event(client)
            first.kill()  # SIGKILL mid-job: no shutdown, no flush beyond what was committed
            await first.wait()
            killed_at = datetime.now(UTC)

            executing = [j for j in geocodes if before[j].status is JobStatus.EXECUTING]
            assert executing, f"the kill came mid-job: {[before[j].status for j in geocodes]}"
            assert before[later].status is JobStatus.SCHEDULED, "run_at is still ahead: its timer is pending"
            assert before[flaky].status is JobStatus.SCHEDULED, "its retry's backoff is pending"
            assert worker.returncode is None, "the worker outlives the server"

            second, second_out = await stack.enter_async_context(started(*serve))
            await second_out.wait_for(SERVING)
            drains.start_soon(drain, second_out)
            async with Client(url, token=TOKEN) as client:
                done = {job_id: await client.jobs.wait(job_id, timeout=45) for job_id in before}
                head = await client.events.head()
                log = await every_event(client)
                cursor = await client.events.cursor("restarts")
            await stopped(worker, worker_out)
            await stopped(second, second_out)
        drains.cancel_scope.cancel()

    assert {j: d.status for j, d in done.items()} == dict.fromkeys(done, JobStatus.COMPLETE)
    # The log: gap-free, no duplicates, and everything committed before the kill is still there as it was.
    assert [e.seq for e in log] == list(range(1, head + 1)), "seq is gap-free from 1 to the head"
    assert len({e.id for e in log}) == len(log), "no event twice"
    assert committed and committed[-1].seq <= head
    for old in committed:
        now = log[old.seq - 1]
        assert (now.id, now.topic, now.context, now.payload, now.created_at) == (
            old.id, old.topic, old.context, old.payload, old.created_at), f"event {old.seq} changed across the kill"
    assert cursor is not None and cursor <= head
    trails = {job_id: [e for e in log if e.context.job_id == job_id] for job_id in done}
    for job_id, trail in trails.items():
        assert_legal_trail(job_id, trail)
    # Timers resumed: the retry in backoff and the job due later became ready on the restarted server.
    for job_id in (later, flaky):
        readies = [e for e in trails[job_id] if e.topic == "job:ready"]
        assert readies[-1].created_at > killed_at and readies[-1].seq > committed[-1].seq, trails[job_id]
    retried = done[flaky]
    assert retried.attempt == 2 and retried.outcome is not None
    assert retried.outcome.message == "Imported on attempt 2."
    # A job cut off mid-run either kept its worker (whose calls went again once the server was back, within its
    # lease) or lost it (its lease ran out first) and went back to ready: either way it resumed, no batch lost.
    for job_id in executing:
        # An attempt ends in a failure or, when its worker died, straight back in ready.
        ended = [b for a, b in itertools.pairwise(trails[job_id])
                 if b.topic == "job:failed" or (a.payload.get("status") == "executing" and b.topic == "job:ready")]
        assert len(ended) == done[job_id].attempt - 1, trails[job_id]
        checkpoint = (before[job_id].checkpoint or {}).get("next_batch", 0)
        outcome = done[job_id].outcome
        assert outcome is not None and outcome.message is not None
        resumed_at = int(outcome.message.rsplit(" ", 1)[1].rstrip("."))
        if done[job_id].attempt > 1:
            assert resumed_at >= checkpoint, f"{job_id} resumed at {resumed_at}, before its checkpoint {checkpoint}"


BACKLOG = '''
import anyio
from listener import Listener
from listener.models import RetryPolicy
from plugins.job_handler import job_handler

async def export(event, tick):
    for batch in range(10):
        await anyio.sleep(0.2)
        await tick((batch + 1) * 10, f"Batch {batch + 1} of 10")
    return {"message": "Exported."}

listener = Listener("backlog").use(job_handler(
    "workbook:export", export, lease_seconds=2, retry=RetryPolicy(max_attempts=3, base_seconds=0.1, jitter=0)))
'''


async def test_ready_jobs_a_worker_could_not_claim_while_the_server_was_down_run_after_it_restarts(
        tmp_path: Path) -> None:
    """A worker with a backlog (job:ready events it has received but not yet handled) outlives a server crash.

    The jobs of the backlog are claimed while the server is down; once it is back, they must still run.
    """
    worker_file = tmp_path / "backlog.py"
    worker_file.write_text(BACKLOG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = ("serve", "--db", f"sqlite:///{tmp_path / 'listener.db'}", "--port", str(port))
    async with anyio.create_task_group() as drains, AsyncExitStack() as stack:
        first, first_out = await stack.enter_async_context(started(*serve))
        await first_out.wait_for(SERVING)
        drains.start_soon(drain, first_out)
        worker, worker_out = await stack.enter_async_context(started(
            "run", str(worker_file), "--url", url, "--token", TOKEN, "--agent", "backlog", "--concurrency", "1"))
        await worker_out.wait_for("is listening")
        async with Client(url, token=TOKEN) as client:
            async with client.stream(topics=["job:updated"], filter={"payload.progress": 20}) as news:
                ids = [(await client.jobs.create(type="workbook", operation="export")).id for _ in range(4)]
                with anyio.fail_after(20):
                    await news.__anext__()  # the first job is two batches in; the others wait in the backlog
            backlog = {j for j in ids if (await client.jobs.get(j)).status is JobStatus.READY}
        assert len(backlog) == 3, "one job runs at a time: three are ready and waiting"
        first.kill()
        await first.wait()
        # The worker's calls cannot get through while the server is down: they wait for the stream to reconnect
        # (the running job's tick, then the claims of its backlog).
        match = await worker_out.wait_for(r"Cannot send \w+ /jobs/(jb_\w+)\S* yet")
        assert match.group(1) in ids
        drains.start_soon(drain, worker_out)
        second, second_out = await stack.enter_async_context(started(*serve))
        await second_out.wait_for(SERVING)
        drains.start_soon(drain, second_out)
        async with Client(url, token=TOKEN) as client:
            with anyio.move_on_after(30):
                for job_id in ids:
                    await client.jobs.wait(job_id)
            statuses = {j: (await client.jobs.get(j)).status.value for j in ids}
        worker.send_signal(signal.SIGTERM)
        second.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            await worker.wait()
            await second.wait()
        drains.cancel_scope.cancel()
    assert statuses == dict.fromkeys(ids, "complete"), (
        f"jobs stranded after the restart (the backlog was {sorted(backlog)}): {statuses}")


SHARED = '''
import anyio
from listener import Listener
from listener.models import RetryPolicy
from plugins.job_handler import job_handler

async def export(event, tick):
    await anyio.sleep(0.1)
    await tick(50, "halfway")
    return {"message": "Exported."}

listener = Listener("shared").use(job_handler(
    "workbook:export", export, lease_seconds=2, retry=RetryPolicy(max_attempts=5, base_seconds=0.1, jitter=0)))
'''


@pytest.mark.parametrize("backend", BACKENDS)
async def test_sharing_workers_lose_no_job_when_one_dies_with_the_server(backend: str, tmp_path: Path) -> None:
    """The jobs a worker was handed but had not claimed, when it died with the server, run on the other.

    The restarted server knows nothing of what it handed to whom: the agent's cursor stayed before
    those jobs, and the surviving worker resumes past them, so the jobs in between that are still
    ready are announced again. The jobs the dead worker had claimed come back when their leases end.
    """
    worker_file = tmp_path / "shared.py"
    worker_file.write_text(SHARED)
    async with database(backend, tmp_path) as db, anyio.create_task_group() as drains:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        serve = ("serve", "--db", db, "--port", str(port))
        run = ("run", str(worker_file), "--url", url, "--token", TOKEN, "--agent", "shared", "--concurrency", "4")
        async with AsyncExitStack() as stack:
            first, first_out = await stack.enter_async_context(started(*serve))
            await first_out.wait_for(SERVING)
            drains.start_soon(drain, first_out)
            workers = []
            for _ in range(2):
                worker, worker_out = await stack.enter_async_context(started(*run))
                await worker_out.wait_for("is listening")
                drains.start_soon(drain, worker_out)
                workers.append((worker, worker_out))
            async with Client(url, token=TOKEN) as client, client.stream(topics=["job:completed"]) as done:
                ids: list[str] = []

                async def create() -> None:
                    ids.append((await client.jobs.create(type="workbook", operation="export")).id)

                async with anyio.create_task_group() as creating:
                    for _ in range(60):
                        creating.start_soon(create)
                await taken(done, 10)
                ready = len((await client.jobs.list(status="ready", limit=100)).items)
            # Both workers hold ready jobs they were handed; one dies with the server.
            (doomed, _), (survivor, survivor_out) = workers
            doomed.kill()
            first.kill()
            await doomed.wait()
            await first.wait()
            assert ready > 8, "more jobs were handed out than the workers' 2 × 4 in flight"

            second, second_out = await stack.enter_async_context(started(*serve))
            await second_out.wait_for(SERVING)
            drains.start_soon(drain, second_out)
            async with Client(url, token=TOKEN) as client:
                finished = {job_id: await client.jobs.wait(job_id, timeout=45) for job_id in ids}
                log = await every_event(client)
            await stopped(survivor, survivor_out)
            await stopped(second, second_out)
        drains.cancel_scope.cancel()

    assert {j: f.status for j, f in finished.items()} == dict.fromkeys(ids, JobStatus.COMPLETE)
    for job_id in ids:
        assert_legal_trail(job_id, [e for e in log if e.context.job_id == job_id])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_jobs_ready_before_any_worker_started_reach_a_new_and_a_known_agent(backend: str, tmp_path: Path) -> None:
    """Ready jobs are a queue: `listener run` started after the jobs were created still gets them, oldest first."""
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    handled = worker.with_suffix(".handled")
    async with database(backend, tmp_path) as db, started("serve", "--db", db, "--port", "0") as (server, server_out):
        url = (await server_out.wait_for(SERVING)).group(1)
        args = ("run", str(worker), "--url", url, "--token", TOKEN, "--concurrency", "1")
        async with Client(url, token=TOKEN) as client:
            early = [(await client.jobs.create(type="workbook", operation="export")).id for _ in range(3)]
            async with started(*args, "--agent", "fresh") as (run, out):  # an agent the server has never seen
                for job_id in early:
                    assert (await client.jobs.wait(job_id, timeout=30)).status is JobStatus.COMPLETE
                await stopped(run, out)
            assert handled.read_text().split() == early, "each once, oldest first"
            # A known agent: its cursor is past these jobs' job:ready events only once it handled them; stop it,
            # create more, and the same agent (and a second worker joining it) finds them on starting.
            later = [(await client.jobs.create(type="workbook", operation="export")).id for _ in range(2)]
            async with started(*args, "--agent", "fresh") as (run, out), started(*args, "--agent", "fresh") as (
                    other, other_out):
                for job_id in later:
                    assert (await client.jobs.wait(job_id, timeout=30)).status is JobStatus.COMPLETE
                await out.wait_for("is listening")  # both started (one may have had nothing left to do)
                await other_out.wait_for("is listening")
                await stopped(run, out)
                await stopped(other, other_out)
        await stopped(server, server_out)
    assert sorted(handled.read_text().split()) == sorted(early + later), "no job ran twice"
