"""job_handler: ack, tick, complete with the returned outcome, fail on errors, timeouts and bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from listener import Event, Job, JobFailed, JobStatus, Listener, Outcome, Platform
from listener.models import RetryPolicy
from plugins.job_handler import Tick, job_handler
from tests.conftest import ManualClock

pytestmark = pytest.mark.anyio


async def run_one(platform: Platform, handler: Any, *, job_input: dict[str, Any] | None = None,
                  **options: Any) -> Job:
    listener = Listener().use(job_handler("workbook:work", handler, **options))
    async with platform.running(listener):
        job = await platform.api.jobs.create(type="workbook", operation="work", input=job_input)
        return await platform.api.jobs.wait(job.id, timeout=5)


async def test_ticks_then_completes_with_the_returned_outcome(platform: Platform) -> None:
    progress: list[tuple[int, str | None]] = []

    async def handler(event: Event, tick: Tick) -> Outcome:
        for step in (25, 50, 75):
            job = await tick(step, f"step {step}")
            progress.append((job.progress, job.info))
        assert job.estimated_completion_at is not None
        assert event.cache["job"].status is JobStatus.EXECUTING
        return Outcome(message="All done.", acknowledge=True, next={"type": "retry"})  # type: ignore[arg-type]

    job = await run_one(platform, handler)
    assert progress == [(25, "step 25"), (50, "step 50"), (75, "step 75")]
    assert job.status is JobStatus.COMPLETE and job.progress == 100
    assert job.outcome is not None and job.outcome.message == "All done." and job.outcome.next is not None
    topics = [e.topic for e in await platform.store.read_events(0, 50)]
    assert topics == ["job:created", "job:ready"] + ["job:updated"] * 4 + ["job:completed"]
    ack = (await platform.store.read_events(2, 1))[0]
    assert (ack.payload["progress"], ack.payload["info"]) == (0, "Accepted")


@pytest.mark.parametrize(("returned", "message"), [
    pytest.param(None, "Job complete.", id="none"),
    pytest.param({"outcome": {"message": "flatfile style"}}, "flatfile style", id="dict-with-outcome"),
    pytest.param({"message": "bare dict"}, "bare dict", id="bare-dict"),
])
async def test_return_values(platform: Platform, returned: Any, message: str) -> None:
    def handler(event: Event, tick: Tick) -> Any:  # a sync handler works too
        return returned

    job = await run_one(platform, handler)
    assert job.status is JobStatus.COMPLETE and job.outcome is not None and job.outcome.message == message


async def test_an_exception_fails_the_job_with_its_message(platform: Platform) -> None:
    async def handler(event: Event, tick: Tick) -> None:
        await tick(10)
        raise ValueError("The CSV has no header row.")

    job = await run_one(platform, handler)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert (job.error.message, job.error.kind) == ("The CSV has no header row.", "error")
    # As Flatfile's plugin: api.jobs.fail(jobId, {outcome: {message}}), for the person to acknowledge.
    assert job.outcome == Outcome(message="The CSV has no header row.", acknowledge=True)


async def test_a_handler_fails_with_an_outcome_of_its_own(platform: Platform) -> None:
    async def handler(event: Event, tick: Tick) -> None:
        raise JobFailed("No records were processed.", retryable=False, outcome={
            "message": "Operation was not completed successfully.", "acknowledge": True,
            "next": {"type": "retry", "label": "Try again"}})

    job = await run_one(platform, handler, retry=RetryPolicy(max_attempts=3))
    assert (job.status, job.attempt) == (JobStatus.FAILED, 1), "retryable=False: not retried"
    assert job.error is not None and job.error.message == "No records were processed."
    assert job.outcome is not None and job.outcome.message == "Operation was not completed successfully."
    assert job.outcome.next is not None and job.outcome.next.type == "retry"


async def test_a_job_failed_with_a_broken_outcome_still_fails_with_its_message(platform: Platform) -> None:
    async def handler(event: Event, tick: Tick) -> None:
        raise JobFailed("Upstream refused.", retryable=False, outcome={"next": {"type": "url", "url": "javascript:x"}})

    job = await run_one(platform, handler)
    assert job.status is JobStatus.FAILED
    assert job.outcome == Outcome(message="Upstream refused.", acknowledge=True)


async def test_a_timeout_fails_the_job_with_kind_timeout(platform: Platform) -> None:
    cancelled = anyio.Event()

    async def handler(event: Event, tick: Tick) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    job = await run_one(platform, handler, timeout=0.05)
    assert cancelled.is_set(), "the handler was cancelled"
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.kind == "timeout" and "0.05" in job.error.message
    assert job.outcome is not None and job.outcome.message == job.error.message and job.outcome.acknowledge


class ExportInput(BaseModel):
    format: str
    limit: int = 10


async def test_input_model_validates_job_input(platform: Platform) -> None:
    async def handler(event: Event, tick: Tick) -> Outcome:
        params = event.cache["input"]
        assert isinstance(params, ExportInput)
        return Outcome(message=f"{params.format}:{params.limit}")

    good = await run_one(platform, handler, job_input={"format": "csv", "limit": 3}, input=ExportInput)
    assert good.outcome is not None and good.outcome.message == "csv:3"


async def test_invalid_input_fails_without_running_the_handler(platform: Platform) -> None:
    ran = False

    async def handler(event: Event, tick: Tick) -> None:
        nonlocal ran
        ran = True

    listener = Listener().use(job_handler("workbook:work", handler, input=ExportInput))
    async with platform.running(listener):
        job = await platform.api.jobs.create(type="workbook", operation="work", input={"limit": "many"})
        job = await platform.api.jobs.wait(job.id, timeout=5)
    assert not ran
    assert job.status is JobStatus.FAILED and job.error is not None and job.error.kind == "invalid_input"
    assert "format" in job.error.message and "limit" in job.error.message


async def test_a_job_claimed_elsewhere_is_left_alone(platform: Platform) -> None:
    ran = False

    async def handler(event: Event, tick: Tick) -> None:
        nonlocal ran
        ran = True

    claimed = anyio.Event()

    async def claim_first(event: Event) -> None:
        await event.api.jobs.ack(event.context.job_id or "")
        claimed.set()

    # Same listener tree: the first-registered handler claims the job before job_handler sees it.
    root = Listener()
    root.on("job:ready", {"job": "workbook:work"}, claim_first)
    root.use(job_handler("workbook:work", handler))
    async with platform.running(root):
        job = await platform.api.jobs.create(type="workbook", operation="work")
        with anyio.fail_after(5):
            await claimed.wait()
    assert not ran
    assert (await platform.api.jobs.get(job.id)).status is JobStatus.EXECUTING


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        job_handler("workbook:x", lambda e, t: None, timeout=0)


async def test_a_type_of_its_own_is_handled_and_filtered_like_a_domain(platform: Platform) -> None:
    """Cocoa Canvas's jobs: job_handler("voters:geocode"), and `job` / `domain` filters, on a custom type."""
    seen: list[tuple[str, str | None]] = []

    def geocode(event: Event, tick: Tick) -> Outcome:
        return Outcome(message=f"Geocoded {event.cache['job'].input['households']} households.")

    listener = Listener().use(job_handler("voters:geocode", geocode))
    listener.on("job:completed", {"domain": "voters"}, lambda event: seen.append(("domain", event.context.job)))
    listener.on("job:*", {"job": "voters:geocode", "status": "complete"},
                lambda event: seen.append(("job", event.context.job)))
    listener.on("job:completed", {"domain": "workbook"}, lambda event: seen.append(("workbook", event.context.job)))
    async with platform.running(listener):
        job = await platform.api.jobs.create(type="voters", operation="geocode", input={"households": 100})
        other = await platform.api.jobs.create(type="import_voters", operation="run")  # nobody handles it
        done = await platform.api.jobs.wait(job.id, timeout=5)
    assert (done.status, done.outcome and done.outcome.message) == (JobStatus.COMPLETE, "Geocoded 100 households.")
    assert sorted(seen) == [("domain", "voters:geocode"), ("job", "voters:geocode")]
    assert (await platform.api.jobs.get(other.id)).status is JobStatus.READY


async def test_a_long_handler_keeps_its_lease_and_its_watch_ends_with_it(platform: Platform,
                                                                         clock: ManualClock) -> None:
    seen: list[Any] = []

    async def slow(event: Event, tick: Tick) -> None:
        first = event.cache["job"].lease_expires_at
        clock.advance(0.5)  # half the lease has gone by on the platform's clock
        with anyio.fail_after(5):  # and a third of it in real time: the watch renews it
            while (job := await event.api.jobs.get(event.context.job_id or "")).lease_expires_at == first:
                await anyio.sleep(0.02)
        seen.append(job.lease_expires_at - first)

    job = await run_one(platform, slow, lease_seconds=1, watch_interval=0.05)
    assert job.status is JobStatus.COMPLETE and seen == [timedelta(seconds=0.5)]
    heartbeats_then = len(await platform.store.read_events(0, 100, job.id))
    await anyio.sleep(0.2)  # four watch intervals after the handler returned: no watch is left to touch it
    assert (await platform.api.jobs.get(job.id)).updated_at == job.updated_at
    assert len(await platform.store.read_events(0, 100, job.id)) == heartbeats_then
