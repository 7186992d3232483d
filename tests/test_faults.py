"""Fault injection with real processes: a worker killed mid-job loses its lease and another resumes the job."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest

from listener import JobStatus
from listener.client import Client
from tests.test_processes import TOKEN, started

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
                second.send_signal(signal.SIGTERM)
                with anyio.fail_after(20):
                    assert await second.wait() == 0
            trail = await client.events.list(after=0, limit=200, job_id=job.id)
            failures = [e for e in trail if e.topic == "job:failed"]
        server.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            assert await server.wait() == 0
    assert done.status is JobStatus.COMPLETE and done.attempt == 2
    assert [(e.payload["error"]["kind"], e.payload["willRetry"]) for e in failures] == [("lease_expired", True)]
    runs = [line.split() for line in log.read_text().splitlines()]
    by_attempt = {a: [int(b) for _, att, b in runs if att == a] for a in ("1", "2")}
    assert by_attempt["1"][:4] == [0, 1, 2, 3]
    resumed_at = by_attempt["2"][0]
    assert resumed_at >= 4, "attempt 2 started from the checkpoint, not from batch 0"
    assert sorted(set(by_attempt["1"]) | set(by_attempt["2"])) == list(range(10)), "every batch ran"
    assert done.outcome is not None and done.outcome.message == f"Geocoded, resuming at batch {resumed_at}."
