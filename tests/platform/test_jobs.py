"""The job state machine: every move from every state, the events, the ack race, wait and list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest

from listener import Conflict, Invalid, Job, JobStatus, NotFound, Outcome, Platform
from listener.platform import PlatformApi
from tests.conftest import ManualClock

S = JobStatus
pytestmark = pytest.mark.anyio


async def make_job(api: PlatformApi, status: JobStatus) -> Job:
    """A job brought to `status` through the public moves."""
    manual = status is S.CREATED
    job = await api.jobs.create(type="workbook", operation="export", trigger="manual" if manual else "immediate")
    if status in (S.CREATED, S.READY):
        return job
    if status is S.CANCELLED:
        return await api.jobs.cancel(job.id)
    job = await api.jobs.ack(job.id)
    if status is S.COMPLETE:
        return await api.jobs.complete(job.id, outcome=Outcome(message="ok"))
    if status is S.FAILED:
        return await api.jobs.fail(job.id, error="boom")
    return job


MOVES: dict[str, tuple[Callable[[PlatformApi, str], Awaitable[Any]], set[JobStatus], JobStatus | None, str]] = {
    # move: (call, allowed from, resulting status (None: deleted), event topic)
    "execute": (lambda api, i: api.jobs.execute(i), {S.CREATED}, S.READY, "job:ready"),
    "ack": (lambda api, i: api.jobs.ack(i, progress=5), {S.READY}, S.EXECUTING, "job:updated"),
    "update": (lambda api, i: api.jobs.update(i, progress=50), {S.EXECUTING}, S.EXECUTING, "job:updated"),
    "complete": (lambda api, i: api.jobs.complete(i), {S.EXECUTING}, S.COMPLETE, "job:completed"),
    "fail": (lambda api, i: api.jobs.fail(i, error="x"), {S.EXECUTING}, S.FAILED, "job:failed"),
    "cancel": (lambda api, i: api.jobs.cancel(i), {S.CREATED, S.READY, S.EXECUTING}, S.CANCELLED, "job:cancelled"),
    "retry": (lambda api, i: api.jobs.retry(i), {S.FAILED}, S.READY, "job:ready"),
    "acknowledge_outcome": (lambda api, i: api.jobs.acknowledge_outcome(i), {S.COMPLETE, S.FAILED}, None,
                            "job:outcome-acknowledged"),
    "delete": (lambda api, i: api.jobs.delete(i), {S.CREATED, S.READY, S.COMPLETE, S.FAILED, S.CANCELLED}, None,
               "job:deleted"),
}
REACHABLE = [S.CREATED, S.READY, S.EXECUTING, S.COMPLETE, S.FAILED, S.CANCELLED]
CASES = [pytest.param(status, move, id=f"{status.value}-{move}") for status in REACHABLE for move in MOVES]


@pytest.mark.parametrize(("status", "move"), CASES)
async def test_every_move_from_every_state(platform: Platform, status: JobStatus, move: str) -> None:
    call, allowed, result, topic = MOVES[move]
    job = await make_job(platform.api, status)
    head = await platform.store.head()
    if status in allowed:
        await call(platform.api, job.id)
        events = await platform.store.read_events(head, 10)
        assert [e.topic for e in events] == [topic]
        assert events[0].context.job_id == job.id
        assert events[0].context.job == "workbook:export"
        if move == "delete":
            with pytest.raises(NotFound):
                await platform.api.jobs.get(job.id)
        else:
            after = await platform.api.jobs.get(job.id)
            assert after.status is (result or status)
            assert events[0].payload["status"] == after.status.value
    else:
        with pytest.raises(Conflict) as raised:
            await call(platform.api, job.id)
        assert job.id in raised.value.message
        assert status.value in raised.value.message
        assert raised.value.details == {"jobId": job.id, "status": status.value, "move": move}
        assert await platform.store.head() == head, "a refused move must append no event"
        assert await platform.api.jobs.get(job.id) == job, "a refused move must change nothing"


async def test_create_immediate_emits_created_then_ready(platform: Platform) -> None:
    job = await platform.api.jobs.create(type="sheet", operation="dedupe", info="queued", metadata={"a": 1},
                                         input={"column": "email"})
    assert job.status is S.READY and job.job == "sheet:dedupe" and job.input == {"column": "email"}
    events = await platform.store.read_events(0, 10)
    assert [e.topic for e in events] == ["job:created", "job:ready"]
    assert [e.seq for e in events] == [1, 2]
    assert events[1].payload["input"] == {"column": "email"}


async def test_manual_job_waits_for_execute(platform: Platform) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="submit", trigger="manual")
    assert job.status is S.CREATED
    assert [e.topic for e in await platform.store.read_events(0, 10)] == ["job:created"]
    assert (await platform.api.jobs.execute(job.id)).status is S.READY


async def test_lifecycle_fields(platform: Platform, clock: ManualClock) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="export")
    clock.advance(1)
    job = await platform.api.jobs.ack(job.id, info="Starting submit job...", progress=10)
    assert (job.status, job.progress, job.info, job.attempt) == (S.EXECUTING, 10, "Starting submit job...", 1)
    assert job.started_at == clock.now()
    clock.advance(1)
    job = await platform.api.jobs.update(job.id, progress=50)
    assert (job.progress, job.info) == (50, "Starting submit job..."), "fields not given stay as they were"
    job = await platform.api.jobs.update(job.id, info=None)
    assert job.info is None, "a field given as None is cleared"
    clock.advance(1)
    outcome = Outcome(message="Exported 12 records.", acknowledge=True,
                      next={"type": "url", "url": "https://example.com", "label": "Go"})  # type: ignore[arg-type]
    job = await platform.api.jobs.complete(job.id, outcome=outcome)
    assert (job.status, job.progress, job.outcome) == (S.COMPLETE, 100, outcome)
    assert job.finished_at == clock.now() and job.updated_at == clock.now()
    job = await platform.api.jobs.acknowledge_outcome(job.id)
    assert job.outcome_acknowledged_at == clock.now()
    with pytest.raises(Conflict, match="already acknowledged"):
        await platform.api.jobs.acknowledge_outcome(job.id)


async def test_fail_records_the_error(platform: Platform) -> None:
    job = await make_job(platform.api, S.EXECUTING)
    job = await platform.api.jobs.fail(job.id, outcome={"message": "This Job failed due to an error."})
    assert job.error is not None
    assert (job.error.message, job.error.kind, job.error_message) == (
        "This Job failed due to an error.", "error", "This Job failed due to an error.")
    assert job.outcome is not None and job.outcome.message == "This Job failed due to an error."


@pytest.mark.parametrize(("call", "field"), [
    pytest.param(lambda api, i: api.jobs.ack(i, progress=101), "progress", id="progress-over-100"),
    pytest.param(lambda api, i: api.jobs.ack(i, progress=-1), "progress", id="progress-negative"),
    pytest.param(lambda api, i: api.jobs.ack(i, estimated_completion_at="soon"), "estimated_completion_at",
                 id="bad-date"),
    pytest.param(lambda api, i: api.jobs.complete(i, outcome={"next": {"type": "url", "url": "javascript:x"}}),
                 "outcome.next.url.url", id="javascript-url"),
    pytest.param(lambda api, i: api.jobs.complete(i, outcome={"mesage": "typo"}), "outcome.mesage", id="typo"),
])
async def test_bad_input_is_refused_and_changes_nothing(platform: Platform, call: Any, field: str) -> None:
    job = await make_job(platform.api, S.READY)
    if "complete" in repr(call.__code__.co_names):
        job = await platform.api.jobs.ack(job.id)
    head = await platform.store.head()
    with pytest.raises(Invalid) as raised:
        await call(platform.api, job.id)
    assert field in [d["field"] for d in raised.value.details]
    assert field in raised.value.message
    assert await platform.store.head() == head
    assert await platform.api.jobs.get(job.id) == job


async def test_create_refuses_bad_fields(platform: Platform) -> None:
    for kind in ("Spreadsheet", "spread sheet", "9lives", "", "x" * 65):  # a type is a lowercase identifier
        with pytest.raises(Invalid, match="type"):
            await platform.api.jobs.create(type=kind, operation="export")
    with pytest.raises(Invalid, match="operation"):
        await platform.api.jobs.create(type="workbook", operation="has spaces")
    with pytest.raises(Invalid, match="source"):
        await platform.api.jobs.create(type="workbook", operation="export", source="wb_nope")
    assert await platform.store.head() == 0
    assert (await platform.api.jobs.list()).total == 0


async def test_unknown_job_is_not_found(platform: Platform) -> None:
    for call in (platform.api.jobs.get, platform.api.jobs.ack, platform.api.jobs.cancel, platform.api.jobs.delete):
        with pytest.raises(NotFound, match="jb_missing"):
            await call("jb_missing")


async def test_ack_race_has_exactly_one_winner(platform: Platform) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="export")
    results: list[str] = []

    async def claim(n: int) -> None:
        try:
            await platform.api.as_actor(f"worker-{n}").jobs.ack(job.id)
            results.append("won")
        except Conflict:
            results.append("conflict")

    async with anyio.create_task_group() as tg:
        for n in range(100):
            tg.start_soon(claim, n)
    assert results.count("won") == 1 and results.count("conflict") == 99
    acks = [e for e in await platform.store.read_events(0, 500) if e.topic == "job:updated"]
    assert len(acks) == 1
    assert (await platform.api.jobs.get(job.id)).attempt == 1


async def test_wait_returns_when_the_job_ends(platform: Platform) -> None:
    job = await make_job(platform.api, S.EXECUTING)
    async with anyio.create_task_group() as tg:
        waited: list[Job] = []

        async def wait() -> None:
            waited.append(await platform.api.jobs.wait(job.id, timeout=5))

        tg.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        assert not waited
        await platform.api.jobs.update(job.id, progress=50)
        await anyio.wait_all_tasks_blocked()
        assert not waited, "an update does not end the wait"
        await platform.api.jobs.complete(job.id)
    assert waited[0].status is S.COMPLETE


async def test_wait_times_out(platform: Platform) -> None:
    job = await make_job(platform.api, S.READY)
    with pytest.raises(TimeoutError):
        await platform.api.jobs.wait(job.id, timeout=0.01)


async def test_job_refresh_and_wait_like_fiddler(platform: Platform) -> None:
    job = await platform.api.jobs.create(type="workbook", operation="export")
    await platform.api.jobs.ack(job.id, progress=30)
    fresh = await job.refresh()
    assert (fresh.status, fresh.progress) == (S.EXECUTING, 30)
    await platform.api.jobs.complete(job.id)
    assert (await fresh.wait(timeout=5)).status is S.COMPLETE


async def test_list_filters_and_pages(platform: Platform) -> None:
    for operation in ("export", "export", "import"):
        await platform.api.jobs.create(type="workbook", operation=operation)
    await platform.api.as_actor("ann").jobs.create(type="sheet", operation="export", trigger="manual")
    everything = await platform.api.jobs.list()
    assert everything.total == 4 and everything.items[0].job == "sheet:export", "newest first"
    assert (await platform.api.jobs.list(status="created")).total == 1
    assert (await platform.api.jobs.list(status=["ready", "created"])).total == 4
    assert (await platform.api.jobs.list(type="workbook", operation="export")).total == 2
    assert (await platform.api.jobs.list(created_by="ann")).total == 1
    page = await platform.api.jobs.list(limit=3, offset=2)
    assert (len(page.items), page.total, page.limit, page.offset) == (2, 4, 3, 2)
    with pytest.raises(Invalid, match="status"):
        await platform.api.jobs.list(status="done")
    with pytest.raises(Invalid, match="limit"):
        await platform.api.jobs.list(limit=0)


async def test_list_by_status_and_type_is_newest_first_and_counted(platform: Platform) -> None:
    """One status and one type (a range of an index): every match, newest first, exact totals and pages."""
    api = platform.api
    made: list[Job] = []
    for n in range(18):
        job = await api.jobs.create(type=("workbook", "sheet", "file")[n % 3], operation=("export", "import")[n % 2])
        if n % 4 == 0:
            job = await api.jobs.ack(job.id)  # moved after later jobs were created: keeps its place
        made.append(job)
    made[0] = await api.jobs.complete(made[0].id)
    newest_first = made[::-1]
    for status, kind, count in [("ready", "sheet", 4), ("executing", "workbook", 1), ("complete", "workbook", 1),
                                ("failed", "file", 0), ("ready", "file", 5)]:
        want = [j.id for j in newest_first if (j.status, j.type) == (status, kind)]
        got = await api.jobs.list(status=status, type=kind)
        assert ([j.id for j in got.items], got.total) == (want, count), (status, kind)
        page = await api.jobs.list(status=status, type=kind, limit=2, offset=1)
        assert ([j.id for j in page.items], page.total) == (want[1:3], count), (status, kind)
    exports = await api.jobs.list(status="ready", type="sheet", operation="export")
    assert [j.id for j in exports.items] == [j.id for j in newest_first
                                             if (j.status, j.job) == ("ready", "sheet:export")]
    both = await api.jobs.list(status=["ready", "executing"], type="workbook")
    assert [j.id for j in both.items] == [j.id for j in newest_first if j.type == "workbook" and j is not made[0]]
    assert (await api.jobs.list(status="ready", type="sheet", is_part=False)).total == 4
    assert (await api.jobs.list(status="ready", type="sheet", is_part=True)).total == 0


async def test_actor_is_recorded(platform: Platform) -> None:
    api = platform.api.as_actor("user:ann")
    job = await api.jobs.create(type="workbook", operation="export")
    assert job.created_by == "user:ann"
    await platform.api.as_actor("agent:worker").jobs.ack(job.id)
    events = await platform.store.read_events(0, 10)
    assert [e.context.actor_id for e in events] == ["user:ann", "user:ann", "agent:worker"]


async def test_concurrent_creations_with_one_idempotency_key_make_one_job(platform: Platform) -> None:
    from listener.models import JobCreate

    spec = JobCreate(type="workbook", operation="export")  # type: ignore[arg-type]
    api = platform.api.as_actor("ann")
    ids: list[str] = []

    async def create() -> None:
        ids.append((await api.jobs.create_from(spec, idempotency_key="once")).id)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(create)
    assert len(set(ids)) == 1 and len(ids) == 20
    assert (await platform.api.jobs.list()).total == 1


async def every_kind_of_job(api: PlatformApi, clock: ManualClock, type: str = "workbook") -> dict[str, Job]:
    """A job in each state other systems have a word for, by a name that says which."""
    jobs: dict[str, Job] = {}

    async def running(**kw: Any) -> Job:
        return await api.jobs.ack((await api.jobs.create(type=type, operation="export", **kw)).id)

    jobs["created"] = await api.jobs.create(type=type, operation="export", trigger="manual")
    jobs["planning"] = await api.jobs.create(type=type, operation="export", predecessor_ids=[jobs["created"].id])
    jobs["scheduled"] = await api.jobs.create(type=type, operation="export", run_at=clock.now() + timedelta(hours=1))
    jobs["ready"] = await api.jobs.create(type=type, operation="export")
    jobs["executing"] = await running()
    jobs["complete"] = await api.jobs.complete((await running()).id)
    jobs["failed"] = await api.jobs.fail((await running()).id, error="boom")
    jobs["timeout"] = await api.jobs.fail((await running()).id, error="too long", kind="timeout")
    flaky = await running(retry={"max_attempts": 3, "base_seconds": 3600})
    jobs["retry"] = await api.jobs.fail(flaky.id, error="flaky", retryable=True)
    jobs["cancelled"] = await api.jobs.cancel((await api.jobs.create(type=type, operation="export")).id)
    assert {n: j.status.value for n, j in jobs.items()} == {**{n: n for n in jobs}, "timeout": "failed",
                                                            "retry": "scheduled"}
    return jobs


NOT_STARTED = {"created", "planning", "scheduled", "ready"}
# Each word (any case) and the jobs of every_kind_of_job it lists (DESIGN.md §2).
WORD_LISTS: dict[str, set[str]] = {
    # Cocoa Canvas
    "pending": NOT_STARTED, "processing": {"executing"}, "completed": {"complete"}, "failed": {"failed", "timeout"},
    # Fiddler: PENDING and RETRY split the jobs not started, as Fiddler's statuses do
    "PENDING": NOT_STARTED, "STARTED": {"executing"}, "SUCCESS": {"complete"}, "FAILURE": {"failed", "timeout"},
    "RETRY": {"retry"}, "REVOKED": {"cancelled"},
    # Zoltar
    "TIMEOUT": {"timeout"},
    # ours, as before
    "created": {"created"}, "planning": {"planning"}, "scheduled": {"scheduled", "retry"}, "ready": {"ready"},
    "executing": {"executing"}, "complete": {"complete"}, "cancelled": {"cancelled"},
    # any case
    "Success": {"complete"}, "retry": {"retry"}, "timeout": {"timeout"}, "Pending": NOT_STARTED,
}
FIDDLER = {"created": "PENDING", "planning": "PENDING", "scheduled": "PENDING", "ready": "PENDING",
           "executing": "STARTED", "complete": "SUCCESS", "failed": "FAILURE", "timeout": "FAILURE",
           "retry": "RETRY", "cancelled": "REVOKED"}


async def test_list_takes_cocoa_canvas_fiddler_and_zoltar_status_words(platform: Platform, clock: ManualClock) -> None:
    api = platform.api
    jobs = await every_kind_of_job(api, clock)
    others = await every_kind_of_job(api, clock, type="voters")  # another type: filtered out by type below
    names = {j.id: n for n, j in jobs.items()}

    async def listed(status: str | list[str], **kw: Any) -> set[str]:
        page = await api.jobs.list(status=status, type="workbook", **kw)
        assert page.total == len(page.items)
        return {names[j.id] for j in page.items}

    for word, want in WORD_LISTS.items():
        assert await listed(word) == want, word
        page = await api.jobs.list(status=word, type="workbook", limit=1)  # newest first, and counted
        newest = max(want, key=lambda n: (jobs[n].created_at, list(jobs).index(n)))
        assert ([names[j.id] for j in page.items], page.total) == ([newest], len(want)), word
        assert (await api.jobs.list(status=word)).total == 2 * len(want), word  # without a type
    # Several words at once: any of them.
    assert await listed(["pending", "RETRY"]) == NOT_STARTED | {"retry"}
    assert await listed(["TIMEOUT", "RETRY"]) == {"timeout", "retry"}
    assert await listed(["FAILURE", "timeout"]) == {"failed", "timeout"}
    assert await listed(["PENDING", "STARTED"]) == NOT_STARTED | {"executing"}
    assert await listed(["scheduled", "RETRY", "SUCCESS"]) == {"scheduled", "retry", "complete"}
    assert await listed(["retry", "REVOKED", "ready"]) == {"retry", "cancelled", "ready"}
    # A job's fiddlerStatus is Fiddler's word, and listing by it finds the job.
    for name, job in jobs.items():
        fresh = await api.jobs.get(job.id)
        assert fresh.fiddler_status == FIDDLER[name], name
        assert fresh.model_dump(mode="json")["fiddlerStatus"] == FIDDLER[name]
        assert name in await listed(fresh.fiddler_status)
        assert Job.model_validate_json(fresh.model_dump_json()) == fresh, "its own JSON reads back"
    assert {others[n].fiddler_status for n in ("retry", "timeout")} == {"RETRY", "FAILURE"}


async def test_a_retry_that_runs_is_pending_then_started_and_a_timeout_stays_one(platform: Platform,
                                                                                   clock: ManualClock) -> None:
    """The detail follows the job: a retry's backoff ends (ready: PENDING), it runs (STARTED), it times out."""
    api = platform.api
    job = await api.jobs.create(type="workbook", operation="export", retry={"max_attempts": 3, "base_seconds": 10,
                                                                            "jitter": 0})
    await api.jobs.ack(job.id)
    await api.jobs.fail(job.id, error="flaky", retryable=True)
    assert [j.id for j in (await api.jobs.list(status="RETRY")).items] == [job.id]
    clock.advance(11)
    await platform.scheduler.sweep()
    assert (await api.jobs.get(job.id)).status is S.READY
    assert (await api.jobs.list(status="RETRY")).total == 0
    assert [j.id for j in (await api.jobs.list(status="PENDING")).items] == [job.id]
    started = await api.jobs.ack(job.id)
    assert (started.attempt, started.fiddler_status) == (2, "STARTED")
    assert [j.id for j in (await api.jobs.list(status="STARTED")).items] == [job.id]
    failed = await api.jobs.fail(job.id, error="took too long", kind="timeout")
    assert (failed.status, failed.fiddler_status) == (S.FAILED, "FAILURE")
    assert [j.id for j in (await api.jobs.list(status="TIMEOUT")).items] == [job.id]
    again = await api.jobs.retry(job.id)  # by hand: no longer a timeout
    assert (await api.jobs.list(status="TIMEOUT")).total == 0
    assert [j.id for j in (await api.jobs.list(status="pending")).items] == [again.id]


async def test_an_unknown_status_word_is_refused_naming_the_accepted_ones(platform: Platform) -> None:
    for bad in ("done", "SUCCEEDED", "", "pending ", "REVO\u212aED"):  # the last with the Kelvin sign for K
        with pytest.raises(Invalid) as raised:
            await platform.api.jobs.list(status=["failed", bad])
        assert raised.value.code == "invalid"
        assert raised.value.details[0]["field"] == "status.1"
        for word in ("status", "created", "pending", "processing", "completed", "SUCCESS", "RETRY", "REVOKED",
                     "TIMEOUT", "any case"):
            assert word in raised.value.message, (bad, word)


async def test_a_type_of_its_own_is_listed_filtered_and_named_like_the_domains(platform: Platform) -> None:
    """Cocoa Canvas's import_voters, a `voters:geocode` job: any lowercase identifier is a type."""
    api = platform.api
    imported = await api.jobs.create(type="import_voters", operation="run")
    geocode = await api.jobs.create(type="voters", operation="geocode", input={"households": 100})
    await api.jobs.create(type="workbook", operation="export")
    assert (geocode.type, geocode.job) == ("voters", "voters:geocode")
    assert [j.id for j in (await api.jobs.list(type="voters")).items] == [geocode.id]
    both = await api.jobs.list(type=["import_voters", "voters"], status="pending")
    assert [j.id for j in both.items] == [geocode.id, imported.id]
    assert (await api.jobs.list(type="geocode_households")).total == 0
    events = [e for e in await platform.store.read_events(0, 100) if e.context.job_id == geocode.id]
    assert [(e.topic, e.context.job, e.context.domain, e.context.operation) for e in events] == [
        ("job:created", "voters:geocode", "voters", "geocode"), ("job:ready", "voters:geocode", "voters", "geocode")]
    for bad in ("Voters", "voters-2", "_voters"):
        with pytest.raises(Invalid, match="type"):
            await api.jobs.list(type=bad)
    # The domains' check on source holds for every type: a source is an object that exists.
    with pytest.raises(Invalid, match="source"):
        await api.jobs.create(type="voters", operation="geocode", source="wb_nope")
    space = await api.spaces.create(name="Campaign")
    sourced = await api.jobs.create(type="voters", operation="geocode", source=space.id)
    assert (await api.jobs.get(sourced.id)).source == space.id
    # Limits are set per type:operation for these types too.
    settings = await api.jobs.configure("voters:geocode", max_running=1)
    assert settings.job == "voters:geocode"
