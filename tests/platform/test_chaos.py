"""Chaos: 1,000 jobs whose handlers fail at random, hang past their lease or succeed, on both backends.

Every handler's fate is drawn up front from a seeded `random.Random` and written into the job's input,
so the whole run is reproducible and each job's end and event trail can be predicted exactly. Time is
the platform's manual clock and the scheduler is swept by hand: rounds of "let every handler that can
run finish, move the clock past every backoff and lease, sweep" until nothing is left to do.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Sequence

import anyio
import pytest

from listener import Event, Job, JobStatus, Listener, NonRetryable, Platform
from listener.models import RetryPolicy
from plugins.job_handler import Tick, job_handler
from tests.conftest import ManualClock

pytestmark = pytest.mark.anyio
S = JobStatus

SEED = 20_260_101
JOBS = 1000
LEASE = 600  # seconds of the manual clock; the handler's heartbeat would need 200 real seconds: it never renews
ROUND = LEASE + 1  # each round moves the clock past every lease and every backoff (both policies cap below it)
POLICIES = {
    "workbook:geocode": RetryPolicy(max_attempts=3, base_seconds=5, factor=2, cap_seconds=60, jitter=0.5),
    "sheet:dedupe": RetryPolicy(max_attempts=5, base_seconds=1, factor=3, cap_seconds=300, jitter=0.2),
}
LOST_WORKERS = {"workbook:geocode": 3, "sheet:dedupe": 1}
"""max_lease_expirations: the default for one type, set with jobs.configure for the other."""
CREATORS = 8  # jobs are created by this many tasks at once
FATES = ("ok", "retry", "fatal", "hang")
WEIGHTS = (45, 33, 8, 14)

Step = tuple[str, str, int, str | None, bool | None]
"""One event of a trail as compared: topic, payload status, payload attempt, error kind, willRetry."""


def plan_jobs(rng: random.Random) -> list[tuple[str, list[str]]]:
    """For each job: its `domain:operation` and the fate of each of its possible attempts."""
    plans = []
    for _ in range(JOBS):
        name = rng.choice(sorted(POLICIES))
        # Enough fates for every attempt it can make: its errors, its lost workers and the last one lost.
        plans.append((name, rng.choices(FATES, WEIGHTS, k=POLICIES[name].max_attempts + LOST_WORKERS[name] + 1)))
    return plans


def expected_trail(name: str, fates: Sequence[str]) -> list[Step]:
    """The exact events a job with these fates emits, attempt by attempt, until it ends.

    An error uses up one of the policy's attempts; a hang (the worker lost) does not: the job goes back
    to ready, until it has lost more workers than its type allows, and then it fails.
    """
    steps: list[Step] = [("job:created", "created", 0, None, None)]
    errors = lost = 0
    for attempt, fate in enumerate(fates, start=1):
        steps.append(("job:ready", "ready", attempt - 1, None, None))
        steps.append(("job:updated", "executing", attempt, None, None))  # the ack
        if fate == "ok":
            steps.append(("job:completed", "complete", attempt, None, None))
            return steps
        if fate == "fatal":
            steps.append(("job:failed", "failed", attempt, "error", False))
            return steps
        if fate == "hang":
            lost += 1
            if lost > LOST_WORKERS[name]:
                steps.append(("job:failed", "failed", attempt, "lease_expired", False))
                return steps
            continue  # back to ready: the next attempt's job:ready
        errors += 1
        again = errors < POLICIES[name].max_attempts
        steps.append(("job:failed", "scheduled" if again else "failed", attempt, "error", again))
        if not again:
            return steps
    raise AssertionError(f"fates {fates} ran out before the job ended")


def step(event: Event) -> Step:
    failed = event.topic == "job:failed"
    return (event.topic, event.payload["status"], event.payload.get("attempt", 0),
            event.payload["error"]["kind"] if failed else None, event.payload["willRetry"] if failed else None)


class Progress:
    """Follows the log to know when every handler that can run has run (only hung ones are left executing)."""

    def __init__(self, fates: dict[str, list[str]]) -> None:
        self.fates = fates
        self.status: dict[str, str] = {}
        self.attempt: dict[str, int] = {}
        self.busy = 0
        self.seen = 0
        self._changed = anyio.Event()

    def _busy(self, job_id: str) -> bool:
        status = self.status.get(job_id)
        if status in ("created", "ready"):
            return True
        return status == "executing" and self.fates[job_id][self.attempt[job_id] - 1] != "hang"

    def __call__(self, events: Sequence[Event]) -> None:
        for event in events:
            self.seen = max(self.seen, event.seq)
            job_id = event.context.job_id
            if job_id not in self.fates:
                continue
            before = self._busy(job_id)
            self.status[job_id] = event.payload["status"]
            self.attempt[job_id] = event.payload.get("attempt", 0)
            self.busy += self._busy(job_id) - before
        self._changed.set()

    async def settled(self, head: int) -> None:
        """Wait until every event up to `head` is seen and no job is ready or running a handler that will end."""
        while True:
            changed = self._changed = anyio.Event()
            if self.seen >= head and self.busy == 0:
                return
            await changed.wait()

    def ended(self) -> bool:
        return len(self.status) == len(self.fates) and all(s in ("complete", "failed") for s in self.status.values())


async def test_a_thousand_chaotic_jobs_all_end_as_their_fates_say(platform: Platform, clock: ManualClock) -> None:
    plans = plan_jobs(random.Random(SEED))
    handled: Counter[tuple[str, int]] = Counter()

    async def chaotic(event: Event, tick: Tick) -> dict[str, str]:
        job: Job = event.cache["job"]
        handled[job.id, job.attempt] += 1
        fate = job.input["fates"][job.attempt - 1]
        if fate == "hang":
            await anyio.sleep_forever()  # past its lease; the watch stops it once the job is taken away
        if fate == "fatal":
            raise NonRetryable(f"Attempt {job.attempt}: the input cannot be read.")
        if fate == "retry":
            raise RuntimeError(f"Attempt {job.attempt}: the service is down.")
        return {"message": f"Done on attempt {job.attempt}."}

    listener = Listener("chaos")
    for name, policy in POLICIES.items():
        listener.use(job_handler(name, chaotic, retry=policy, lease_seconds=LEASE, watch_interval=0.5))
    await platform.api.jobs.configure("sheet:dedupe", max_lease_expirations=LOST_WORKERS["sheet:dedupe"])
    fates: dict[str, list[str]] = {}
    progress = Progress(fates)
    platform.eventlog.on_batch(progress)
    started = time.monotonic()
    try:
        # Room for every job at once: hung handlers hold their slot until their lease is lost.
        async with platform.running(listener, concurrency=JOBS):
            with anyio.fail_after(120):
                async def create(todo: Sequence[tuple[str, list[str]]]) -> None:
                    for name, job_fates in todo:
                        domain, operation = name.split(":")
                        job = await platform.api.jobs.create(type=domain, operation=operation,
                                                             input={"fates": job_fates})
                        fates[job.id] = job_fates

                async with anyio.create_task_group() as creators:
                    for i in range(CREATORS):
                        creators.start_soon(create, plans[i::CREATORS])
                rounds = 0
                while True:
                    await progress.settled(await platform.store.head())
                    if progress.ended():
                        break
                    rounds += 1
                    most = max(p.max_attempts + LOST_WORKERS[name] + 1 for name, p in POLICIES.items())
                    assert rounds <= 2 * most + 1, "jobs are stuck"
                    clock.advance(ROUND)
                    await platform.scheduler.sweep()
    finally:
        platform.eventlog.off_batch(progress)
    elapsed = time.monotonic() - started

    jobs = {job_id: await platform.api.jobs.get(job_id) for job_id in fates}
    log: list[Event] = []
    while page := await platform.api.events.list(after=log[-1].seq if log else 0, limit=1000):
        log.extend(page)
    assert [e.seq for e in log] == list(range(1, len(log) + 1)), "the log is gap-free"
    trails: dict[str, list[Event]] = {job_id: [] for job_id in fates}
    for event in log:
        assert event.context.job_id in trails, f"an event about no job of ours: {event.topic}"
        trails[event.context.job_id].append(event)

    endings: Counter[str] = Counter()
    for job_id, job in jobs.items():
        job_fates, trail = fates[job_id], trails[job_id]
        policy = POLICIES[job.job]
        where = f"job {job_id} ({job.job}, fates {job_fates}): {[step(e) for e in trail]}"
        assert job.status in (S.COMPLETE, S.FAILED), where
        # Each worker lost (up to the type's limit) gave the job an attempt back.
        requeued = min(job.lease_expirations, LOST_WORKERS[job.job])
        assert job.max_attempts == policy.max_attempts + requeued and 1 <= job.attempt <= job.max_attempts, where
        if job.status is S.FAILED:
            assert job.error is not None, where
            assert job.attempt == job.max_attempts or not job.error.retryable, where
        # The trail, exactly as the fates say.
        assert [step(e) for e in trail] == expected_trail(job.job, job_fates), where
        seqs = [e.seq for e in trail]
        assert all(a < b for a, b in itertools.pairwise(seqs)), where
        readies = [e for e in trail if e.topic == "job:ready"]
        retried = [e for e in trail if e.topic == "job:failed" and e.payload["willRetry"]]
        assert len(readies) == job.attempt, where
        last = trail[-1]
        if job.status is S.COMPLETE:
            assert len(retried) + job.lease_expirations == job.attempt - 1 and last.topic == "job:completed", where
        else:
            assert last.topic == "job:failed" and last.payload["willRetry"] is False, where
            assert job.error is not None and job.error.kind == last.payload["error"]["kind"], where
        assert [handled[job_id, a] for a in range(1, job.attempt + 1)] == [1] * job.attempt, \
            f"each attempt's handler ran exactly once: {where}"
        ending = job_fates[job.attempt - 1]
        endings[f"{job.status.value}:{ending}" + (":retried" if job.attempt > 1 else "")] += 1
        if job.status is S.COMPLETE and job.lease_expirations:
            endings["complete:ok:requeued"] += 1  # a job whose worker died ran to its end on another
    assert sum(handled.values()) == sum(j.attempt for j in jobs.values()), "no handler ran for an attempt never made"
    # The seed exercises every path: retried successes, fatal errors, attempts exhausted by errors, jobs failed
    # for losing too many workers, and jobs that lost workers and still completed.
    for path in ("complete:ok", "complete:ok:retried", "failed:fatal", "failed:fatal:retried", "failed:retry:retried",
                 "failed:hang:retried", "complete:ok:requeued"):
        assert endings[path] > 0, f"no job took the path {path}: {endings}"
    print(f"{JOBS} chaotic jobs on {type(platform.store).__name__}: {elapsed:.1f}s, {rounds} rounds, {len(log)} "
          f"events, {dict(sorted(endings.items()))}")
