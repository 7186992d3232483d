"""Scale-out with real processes: two `listener serve` replicas on one PostgreSQL database and a worker."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import asyncpg
import pytest

from listener import JobStatus
from listener.client import Client
from tests.conftest import PG_URL, postgres_schema
from tests.test_processes import TOKEN, WORKER, started, taken

pytestmark = pytest.mark.anyio

SERVING = r"serving (http://127\.0\.0\.1:\d+)"


async def test_a_worker_survives_the_death_of_its_replica(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    handled = worker.with_suffix(".handled")
    async with postgres_schema() as db:
        async with started("serve", "--db", db, "--port", "0") as (a, a_out):
            url_a = (await a_out.wait_for(SERVING)).group(1)
            async with started("serve", "--db", db, "--port", "0") as (b, b_out):
                url_b = (await b_out.wait_for(SERVING)).group(1)
                args = ("run", str(worker), "--url", f"{url_a},{url_b}", "--token", TOKEN, "--agent", "exporter",
                        "--concurrency", "4")
                async with Client(url_b, token=TOKEN) as client, started(*args) as (run, out):
                    await out.wait_for("is listening")
                    async with client.stream(after=0, topics=["job:completed"]) as completed:
                        ids = [(await client.jobs.create(type="workbook", operation="export")).id for _ in range(60)]
                        await taken(completed, 15, timeout=30)
                    a.kill()  # the replica the worker is connected to dies mid-stream
                    await a.wait()
                    # Every job gets claimed (on replica b now), each exactly once.
                    claims = client.stream(after=0, topics=["job:updated"], filter={"payload.info": "Accepted"})
                    async with claims:
                        with anyio.fail_after(30):
                            claimed = set()
                            async for event in claims:
                                claimed.add(event.context.job_id)
                                if len(claimed) == 60:
                                    break
                    run.send_signal(signal.SIGTERM)  # drains: the handlers running finish first
                    with anyio.fail_after(20):
                        assert await run.wait() == 0, "\n".join(out.seen)
                    jobs = {j.id: j for j in (await client.jobs.list(limit=100)).items}
                b.send_signal(signal.SIGTERM)
                with anyio.fail_after(20):
                    assert await b.wait() == 0
    assert set(jobs) == set(ids)
    completed_ids = {i for i, j in jobs.items() if j.status is JobStatus.COMPLETE}
    # Only calls in flight when the replica died can leave a job unfinished (failed, or acked and
    # then orphaned until leases come with the Reliability issue): at most `concurrency` of them.
    unfinished = [j for j in jobs.values() if j.status is not JobStatus.COMPLETE]
    assert len(unfinished) <= 4, [(j.status, j.error_message) for j in unfinished]
    assert all(j.status in (JobStatus.FAILED, JobStatus.EXECUTING) for j in unfinished), "none left ready"
    assert completed_ids <= set(handled.read_text().split()), "every completed job was handled by the worker"


async def test_replicas_reconnect_after_their_connections_are_terminated(tmp_path: Path) -> None:
    async with postgres_schema() as db:
        schema = db.rsplit("schema=", 1)[1]
        async with started("serve", "--db", db, "--port", "0") as (a, a_out):
            url_a = (await a_out.wait_for(SERVING)).group(1)
            async with started("serve", "--db", db, "--port", "0") as (b, b_out):
                url_b = (await b_out.wait_for(SERVING)).group(1)
                async with Client(url_a, token=TOKEN) as on_a, Client(url_b, token=TOKEN) as on_b:
                    first = await on_a.jobs.create(type="workbook", operation="export")
                    admin = await asyncpg.connect(PG_URL)
                    try:
                        killed = await admin.fetchval(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE application_name = $1", f"listener:{schema}")
                    finally:
                        await admin.close()
                    assert killed >= 4, "both replicas' pools and LISTEN connections"
                    second = await on_a.jobs.create(type="workbook", operation="export")
                    await on_b.jobs.ack(second.id)
                    assert (await on_b.jobs.complete(second.id)).status is JobStatus.COMPLETE
                    # Replica a hears of b's move through its re-established LISTEN connection.
                    assert (await on_a.jobs.wait(second.id, timeout=10)).status is JobStatus.COMPLETE
                    events = await on_b.events.list(after=0, limit=100)
                    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "gap-free"
                    assert {e.context.job_id for e in events} == {first.id, second.id}
                b.send_signal(signal.SIGTERM)
                with anyio.fail_after(20):
                    assert await b.wait() == 0
            a.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                assert await a.wait() == 0
