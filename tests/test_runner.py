"""The runner: order within an event, concurrency across events, failures contained, cursors resumed."""

from __future__ import annotations

import anyio
import pytest

from listener import Event, Listener, Platform
from tests.conftest import ManualClock

pytestmark = pytest.mark.anyio


async def create_jobs(platform: Platform, n: int, operation: str = "export") -> list[str]:
    return [(await platform.api.jobs.create(type="workbook", operation=operation)).id for _ in range(n)]


async def test_a_handler_that_raises_does_not_stop_the_others(platform: Platform) -> None:
    listener = Listener()
    seen: list[str] = []
    done = anyio.Event()

    @listener.on("job:ready")
    async def explode(event: Event) -> None:
        raise RuntimeError("boom")

    @listener.on("job:ready")
    async def second(event: Event) -> None:
        seen.append(event.context.job_id or "")
        if len(seen) == 2:
            done.set()

    async with platform.running(listener) as runner:
        ids = await create_jobs(platform, 2)
        with anyio.fail_after(5):
            await done.wait()
    assert sorted(seen) == sorted(ids)
    assert runner.failures == 2 and runner.dispatched == 2


async def test_handlers_of_one_event_run_one_at_a_time_in_order(platform: Platform) -> None:
    listener = Listener()
    trail: list[str] = []
    done = anyio.Event()

    @listener.on("job:ready")
    async def first(event: Event) -> None:
        trail.append("first:start")
        await anyio.sleep(0)  # give a concurrent handler the chance to cut in, if the runner allowed it
        event.cache["from_first"] = True
        trail.append("first:end")

    @listener.on("job:ready")
    def second(event: Event) -> None:  # sync handlers run in a worker thread
        trail.append(f"second:{event.cache.get('from_first')}")
        event.after_all(lambda: trail.append("after_all"))

    @listener.on("job:ready")
    async def last(event: Event) -> None:
        event.after_all(done.set)

    async with platform.running(listener):
        await create_jobs(platform, 1)
        with anyio.fail_after(5):
            await done.wait()
    assert trail == ["first:start", "first:end", "second:True", "after_all"]


async def test_different_events_run_concurrently_up_to_the_limit(platform: Platform) -> None:
    listener = Listener()
    running = 0
    peak = 0
    release = anyio.Event()
    started = 0
    three, six = anyio.Event(), anyio.Event()

    @listener.on("job:ready")
    async def slow(event: Event) -> None:
        nonlocal running, peak, started
        running += 1
        started += 1
        peak = max(peak, running)
        if started == 3:
            three.set()
        if started == 6:
            six.set()
        await release.wait()
        running -= 1

    async with platform.running(listener, concurrency=3):
        await create_jobs(platform, 6)
        with anyio.fail_after(5):
            await three.wait()
        await anyio.wait_all_tasks_blocked()
        assert (running, started) == (3, 3), "the fourth event waits for a free slot"
        release.set()
        with anyio.fail_after(5):
            await six.wait()
    assert peak == 3 and started == 6


async def test_an_agent_resumes_after_the_last_event_it_finished(db_url: str, clock: ManualClock) -> None:
    seen: list[str] = []
    reached = {2: anyio.Event(), 4: anyio.Event()}
    listener = Listener("worker")

    @listener.on("job:ready")
    async def handle(event: Event) -> None:
        seen.append(event.context.job_id or "")
        if len(seen) in reached:
            reached[len(seen)].set()

    async with Platform.open(db_url, clock=clock) as platform:
        async with platform.running(listener):
            first = await create_jobs(platform, 2)
            with anyio.fail_after(5):
                await reached[2].wait()
        # Created while no runner was running: the agent's cursor stays behind them.
        missed = await create_jobs(platform, 2)
    assert seen == first
    async with Platform.open(db_url, clock=clock) as platform:
        async with platform.running(listener):
            with anyio.fail_after(5):
                await reached[4].wait()
    assert seen == first + missed, "each job:ready handled once, in order, none skipped"


async def test_a_new_agent_starts_at_the_newest_event(platform: Platform) -> None:
    await create_jobs(platform, 3)
    seen: list[int] = []
    two = anyio.Event()
    listener = Listener()

    @listener.on("**")
    async def record(event: Event) -> None:
        seen.append(event.seq)
        if len(seen) == 2:
            two.set()

    async with platform.running(listener, agent="fresh"):
        await create_jobs(platform, 1, operation="later")
        with anyio.fail_after(5):
            await two.wait()
    assert seen == [7, 8]


async def test_runner_options_are_checked(platform: Platform) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        async with platform.running(Listener(), concurrency=0):
            pass
