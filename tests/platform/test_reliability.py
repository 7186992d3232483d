"""Retries with backoff, leases, timeouts and cancellation of a running handler, on both backends.

Time is moved with the platform's manual clock and the scheduler is swept by hand: no test sleeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import anyio
import pytest

from listener import Conflict, Event, Invalid, Job, JobStatus, Listener, NonRetryable, Platform
from listener.models import RetryPolicy
from plugins.job_handler import Tick, job_handler
from tests.conftest import ManualClock

pytestmark = pytest.mark.anyio
S = JobStatus
NO_JITTER = RetryPolicy(max_attempts=3, base_seconds=10, factor=2, cap_seconds=300, jitter=0)


async def until(platform: Platform, job_id: str, status: JobStatus, timeout: float = 5) -> Job:
    """Wait, on the event log, until the job is in `status`."""
    changed = anyio.Event()

    def on_batch(events: Sequence[Event]) -> None:
        if any(e.context.job_id == job_id for e in events):
            changed.set()

    platform.eventlog.on_batch(on_batch)
    try:
        with anyio.fail_after(timeout):
            while (job := await platform.api.jobs.get(job_id)).status is not status:
                await changed.wait()
                changed = anyio.Event()
            return job
    finally:
        platform.eventlog.off_batch(on_batch)


async def failed_events(platform: Platform, job_id: str) -> list[Event]:
    return [e for e in await platform.store.read_events(0, 500, job_id) if e.topic == "job:failed"]


async def test_retries_with_backoff_until_an_attempt_succeeds(platform: Platform, clock: ManualClock) -> None:
    attempts: list[int] = []

    async def flaky(event: Event, tick: Tick) -> dict[str, str]:
        attempts.append(event.cache["job"].attempt)
        if len(attempts) < 3:
            raise RuntimeError(f"Geocoder unavailable (try {len(attempts)})")
        return {"message": "Geocoded."}

    listener = Listener().use(job_handler("workbook:geocode", flaky, retry=NO_JITTER))
    async with platform.running(listener):
        job = await platform.api.jobs.create(type="workbook", operation="geocode")
        first = await until(platform, job.id, S.SCHEDULED)
        assert (first.attempt, first.max_attempts) == (1, 3)
        assert first.next_attempt_at == clock.now() + timedelta(seconds=10)
        assert first.error is not None and first.error.retryable and first.error.attempt == 1
        assert await platform.scheduler.sweep() == 0, "not due yet"
        clock.advance(10)
        assert await platform.scheduler.sweep() == 1
        second = await until(platform, job.id, S.SCHEDULED)
        assert second.attempt == 2
        assert second.next_attempt_at == clock.now() + timedelta(seconds=20), "backoff grows"
        clock.advance(20)
        await platform.scheduler.sweep()
        done = await platform.api.jobs.wait(job.id, timeout=5)
    assert attempts == [1, 2, 3]
    assert (done.status, done.attempt) == (S.COMPLETE, 3)
    assert [e.payload["willRetry"] for e in await failed_events(platform, job.id)] == [True, True]
    readies = [e for e in await platform.store.read_events(0, 500, job.id) if e.topic == "job:ready"]
    assert len(readies) == 3, "job:ready again for each retry"


async def test_attempts_run_out_and_non_retryable_fails_at_once(platform: Platform, clock: ManualClock) -> None:
    async def always(event: Event, tick: Tick) -> None:
        if event.cache["job"].input.get("fatal"):
            raise NonRetryable("The file is not a CSV.")
        raise RuntimeError("Still down")

    policy = RetryPolicy(max_attempts=2, base_seconds=1, jitter=0)
    listener = Listener().use(job_handler("workbook:import", always, retry=policy))
    async with platform.running(listener):
        fatal = await platform.api.jobs.create(type="workbook", operation="import", input={"fatal": True})
        fatal = await platform.api.jobs.wait(fatal.id, timeout=5)
        assert (fatal.status, fatal.attempt) == (S.FAILED, 1)
        assert fatal.error is not None and (fatal.error.message, fatal.error.retryable) == ("The file is not a CSV.",
                                                                                          False)
        job = await platform.api.jobs.create(type="workbook", operation="import")
        await until(platform, job.id, S.SCHEDULED)
        clock.advance(1)
        await platform.scheduler.sweep()
        job = await platform.api.jobs.wait(job.id, timeout=5)
    assert (job.status, job.attempt, job.max_attempts) == (S.FAILED, 2, 2)
    assert [e.payload["willRetry"] for e in await failed_events(platform, job.id)] == [True, False]


async def test_an_expired_lease_puts_the_job_back_to_ready_and_a_late_complete_is_refused(
        platform: Platform, clock: ManualClock) -> None:
    # No retry policy: a dead worker is not the job's failure, so it is not the end of the job either.
    job = await platform.api.jobs.create(type="workbook", operation="export")
    job = await platform.api.jobs.ack(job.id, lease_seconds=60)
    await platform.api.jobs.checkpoint(job.id, {"next_batch": 4}, attempt=1)
    assert job.lease_expires_at == clock.now() + timedelta(seconds=60)
    clock.advance(50)
    await platform.api.jobs.heartbeat(job.id, attempt=1)  # alive: the lease runs to t=110
    clock.advance(50)
    assert await platform.scheduler.sweep() == 0
    clock.advance(11)
    assert await platform.scheduler.sweep() == 1
    lost = await platform.api.jobs.get(job.id)
    assert lost.status is S.READY and lost.error is not None and lost.lease_expires_at is None
    assert (lost.error.kind, lost.error.attempt, lost.error.retryable) == ("lease_expired", 1, True)
    assert (lost.lease_expirations, lost.max_lease_expirations) == (1, 3)
    assert (lost.attempt, lost.max_attempts) == (1, 2), "the lost attempt is given back"
    assert lost.checkpoint == {"next_batch": 4}, "the next attempt resumes from the checkpoint"
    trail = [e.topic for e in await platform.store.read_events(0, 500, job.id)]
    assert trail == ["job:created", "job:ready", "job:updated", "job:ready"], "no job:failed (checkpoints are silent)"
    with pytest.raises(Conflict, match="it is ready"):
        await platform.api.jobs.complete(job.id, attempt=1)
    again = await platform.api.jobs.ack(job.id)
    assert again.attempt == 2
    with pytest.raises(Conflict, match="attempt 1 is over"):
        await platform.api.jobs.heartbeat(job.id, attempt=1)
    assert (await platform.api.jobs.complete(job.id, attempt=2)).status is S.COMPLETE


async def lose_workers(platform: Platform, clock: ManualClock, job_id: str, times: int) -> Job:
    """Ack the job and let its lease run out, `times` times over."""
    for _ in range(times):
        await platform.api.jobs.ack(job_id, lease_seconds=10)
        clock.advance(11)
        assert await platform.scheduler.sweep() == 1
    return await platform.api.jobs.get(job_id)


async def test_a_job_that_kills_every_worker_fails_once_it_has_lost_too_many(platform: Platform,
                                                                           clock: ManualClock) -> None:
    # Even with attempts left under its retry policy: a poison pill must end.
    job = await platform.api.jobs.create(type="workbook", operation="export", max_lease_expirations=2,
                                         retry={"max_attempts": 5, "base_seconds": 1, "jitter": 0})
    kept = await lose_workers(platform, clock, job.id, 2)
    assert (kept.status, kept.lease_expirations, kept.attempt, kept.max_attempts) == (S.READY, 2, 2, 7)
    ended = await lose_workers(platform, clock, job.id, 1)
    assert ended.status is S.FAILED and ended.error is not None and ended.finished_at == clock.now()
    assert (ended.error.kind, ended.error.retryable, ended.error.attempt) == ("lease_expired", False, 3)
    assert "3 workers died running this job" in ended.error.message
    failed = await failed_events(platform, job.id)
    assert [(e.payload["error"]["kind"], e.payload["willRetry"]) for e in failed] == [("lease_expired", False)]


async def test_how_many_lost_workers_a_job_survives_is_set_per_job_and_per_type(platform: Platform,
                                                                               clock: ManualClock) -> None:
    default = await platform.api.jobs.create(type="workbook", operation="export")
    assert default.max_lease_expirations == 3
    settings = await platform.api.jobs.configure("workbook:export", max_lease_expirations=0)
    assert settings.max_lease_expirations == 0
    typed = await platform.api.jobs.create(type="workbook", operation="export")
    own = await platform.api.jobs.create(type="workbook", operation="export", max_lease_expirations=1)
    assert (typed.max_lease_expirations, own.max_lease_expirations) == (0, 1)
    assert (await lose_workers(platform, clock, typed.id, 1)).status is S.FAILED, "0: the first lost worker ends it"
    assert (await lose_workers(platform, clock, own.id, 1)).status is S.READY
    for bad in (-1, 101):
        with pytest.raises(Invalid, match=r"max_lease_expirations|maxLeaseExpirations"):
            await platform.api.jobs.create(type="workbook", operation="export", max_lease_expirations=bad)
        with pytest.raises(Invalid, match=r"max_lease_expirations|maxLeaseExpirations"):
            await platform.api.jobs.configure("workbook:export", max_lease_expirations=bad)


async def test_a_job_past_its_timeout_fails_with_kind_timeout(platform: Platform, clock: ManualClock) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="export", timeout_seconds=30)
    await platform.api.jobs.ack(job.id)
    clock.advance(31)
    assert await platform.scheduler.sweep() == 1
    job = await platform.api.jobs.get(job.id)
    assert job.status is S.FAILED and job.error is not None and job.error.kind == "timeout"
    assert [e.payload["willRetry"] for e in await failed_events(platform, job.id)] == [False]
    waiting = await platform.api.jobs.create(type="sheet", operation="dedupe")  # default: 24 hours
    clock.advance(86_399)
    assert await platform.scheduler.sweep() == 0
    clock.advance(1)
    await platform.scheduler.sweep()
    assert (await platform.api.jobs.get(waiting.id)).status is S.FAILED


async def test_retry_by_hand(platform: Platform) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="export")
    await platform.api.jobs.ack(job.id)
    await platform.api.jobs.fail(job.id, error="Nope", outcome={"message": "Failed", "next": {"type": "retry"}})
    job = await platform.api.jobs.retry(job.id)
    assert (job.status, job.outcome, job.max_attempts) == (S.READY, None, 2)
    assert (await platform.api.jobs.ack(job.id)).attempt == 2
    await platform.api.jobs.complete(job.id)
    with pytest.raises(Conflict):
        await platform.api.jobs.retry(job.id)


async def test_cancelling_an_executing_job_stops_its_handler(platform: Platform) -> None:
    started, stopped = anyio.Event(), anyio.Event()

    async def forever(event: Event, tick: Tick) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()

    listener = Listener().use(job_handler("workbook:export", forever, watch_interval=0.05))
    async with platform.running(listener):
        job = await platform.api.jobs.create(type="workbook", operation="export")
        with anyio.fail_after(5):
            await started.wait()
        await platform.api.jobs.cancel(job.id)
        with anyio.fail_after(1):
            await stopped.wait()
    topics = [e.topic for e in await platform.store.read_events(0, 100, job.id)]
    assert topics[-1] == "job:cancelled" and "job:failed" not in topics and "job:completed" not in topics
    assert (await platform.api.jobs.get(job.id)).status is S.CANCELLED


async def test_timers_resume_after_a_restart(db_url: str, clock: ManualClock) -> None:
    async with Platform.open(db_url, clock=clock, sweep_interval=None) as platform:
        job = await platform.api.jobs.create(type="workbook", operation="export", retry=NO_JITTER)
        await platform.api.jobs.ack(job.id)
        await platform.api.jobs.fail(job.id, error="down", retryable=True)
    clock.advance(3600)  # the platform was down when the retry came due
    async with Platform.open(db_url, clock=clock, sweep_interval=0.05) as platform:
        # The scheduler's own first sweep, at start, finds it.
        assert (await until(platform, job.id, S.READY)).attempt == 1


async def test_run_at_starts_a_job_later(platform: Platform, clock: ManualClock) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="export", run_at=clock.now() + timedelta(hours=1),
                                         timeout_seconds=60)
    assert (job.status, job.next_attempt_at) == (S.SCHEDULED, clock.now() + timedelta(hours=1))
    assert [e.topic for e in await platform.store.read_events(0, 10)] == ["job:created"]
    clock.advance(3599)
    assert await platform.scheduler.sweep() == 0
    clock.advance(1)
    assert await platform.scheduler.sweep() == 1
    assert (await platform.api.jobs.get(job.id)).status is S.READY, "its timeout counts from run_at, not creation"


async def test_a_retried_attempt_resumes_from_its_checkpoint(platform: Platform, clock: ManualClock) -> None:
    batches_done: list[int] = []

    async def in_batches(event: Event, tick: Tick) -> dict[str, str]:
        start = (event.cache["checkpoint"] or {}).get("next_batch", 0)
        for batch in range(start, 5):
            if batch == 3 and event.cache["job"].attempt == 1:
                raise RuntimeError("Lost the geocoder mid-run")
            batches_done.append(batch)
            await tick.checkpoint({"next_batch": batch + 1})
        return {"message": f"Resumed at batch {start}."}

    listener = Listener().use(job_handler("workbook:geocode", in_batches, retry=NO_JITTER))
    async with platform.running(listener):
        job = await platform.api.jobs.create(type="workbook", operation="geocode")
        await until(platform, job.id, S.SCHEDULED)
        assert (await platform.api.jobs.get(job.id)).checkpoint == {"next_batch": 3}
        clock.advance(10)
        await platform.scheduler.sweep()
        job = await platform.api.jobs.wait(job.id, timeout=5)
    assert batches_done == [0, 1, 2, 3, 4], "no batch ran twice"
    assert job.outcome is not None and job.outcome.message == "Resumed at batch 3."


async def test_items_processed_drive_progress_and_the_estimate(platform: Platform, clock: ManualClock) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="geocode")
    await platform.api.jobs.ack(job.id)
    clock.advance(10)
    job = await platform.api.jobs.update(job.id, processed=250, total=1000)
    assert (job.progress, job.processed, job.total) == (25, 250, 1000)
    assert job.estimated_completion_at == clock.now() + timedelta(seconds=30), "250 items in 10 s: 750 more in 30 s"
    clock.advance(10)
    job = await platform.api.jobs.update(job.id, processed=500)
    assert (job.progress, job.estimated_completion_at) == (50, clock.now() + timedelta(seconds=20))
    later = clock.now() + timedelta(hours=1)
    job = await platform.api.jobs.update(job.id, processed=600, estimated_completion_at=later)
    assert job.estimated_completion_at == later, "the listener's own estimate wins"


async def test_retention_prunes_old_finished_jobs_with_their_events(platform: Platform, clock: ManualClock) -> None:
    old = await platform.api.jobs.create(type="workbook", operation="export")
    await platform.api.jobs.ack(old.id)
    await platform.api.jobs.complete(old.id)
    running = await platform.api.jobs.create(type="workbook", operation="export", timeout_seconds=365 * 86_400)
    clock.advance(31 * 86_400)
    recent = await platform.api.jobs.create(type="sheet", operation="dedupe")
    await platform.api.jobs.ack(recent.id)
    await platform.api.jobs.fail(recent.id, error="x")
    await platform.scheduler.sweep()  # the first sweep prunes: 30 days by default
    assert platform.scheduler.pruned == 1
    assert {j.id for j in (await platform.api.jobs.list()).items} == {running.id, recent.id}
    assert await platform.store.read_events(0, 100, old.id) == []
    assert len(await platform.store.read_events(0, 100, recent.id)) == 4, "a recent job keeps its trail"


async def test_predecessors_hold_a_job_in_planning(platform: Platform) -> None:
    first = await platform.api.jobs.create(type="workbook", operation="import")
    second = await platform.api.jobs.create(type="workbook", operation="validate")
    export = await platform.api.jobs.create(type="workbook", operation="export",
                                            predecessor_ids=[first.id, second.id])
    assert export.status is S.PLANNING
    for job in (first, second):
        await platform.api.jobs.ack(job.id)
    await platform.api.jobs.complete(first.id)
    await platform.scheduler.sweep()
    assert (await platform.api.jobs.get(export.id)).status is S.PLANNING, "one predecessor is still running"
    await platform.api.jobs.complete(second.id)
    await platform.scheduler.sweep()
    assert (await platform.api.jobs.get(export.id)).status is S.READY

    doomed = await platform.api.jobs.create(type="sheet", operation="dedupe", predecessor_ids=[first.id, second.id])
    assert doomed.status is S.READY, "predecessors already complete: it starts at once"
    broken = await platform.api.jobs.create(type="workbook", operation="import")
    after = await platform.api.jobs.create(type="workbook", operation="publish", predecessor_ids=[broken.id])
    await platform.api.jobs.cancel(broken.id)
    await platform.scheduler.sweep()
    after = await platform.api.jobs.get(after.id)
    assert after.status is S.FAILED and after.error is not None
    assert after.error.message == f"Predecessor {broken.id} was cancelled."
    with pytest.raises(Invalid, match="predecessorIds"):
        await platform.api.jobs.create(type="workbook", operation="x", predecessor_ids=["jb_missing"])
