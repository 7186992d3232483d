"""The same scenarios on both transports of the Api: in-process (`platform.api`) and HTTP (`Client`), the
latter also with its job calls over an open stream's socket (the worker channel, `stream(calls=True)`).

A handler cannot tell which one it has, so each scenario must come out the same,
exceptions included.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from examples import custom_job
from listener import Conflict, Event, Invalid, JobStatus, Listener, NotFound, Platform
from listener.api import Api
from listener.client import Client, run_listener
from listener.tasks import task_scope
from tests.conftest import ManualClock, Server

S = JobStatus
pytestmark = pytest.mark.anyio


@pytest.fixture(params=[pytest.param("inprocess"), pytest.param("http"), pytest.param("channel")])
async def api(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[Api]:
    """The Api in-process, or over HTTP to a real server on the same platform (as its admin), its job calls
    as requests or (channel) as frames on a stream's websocket."""
    if request.param == "inprocess":
        yield server.platform.api
    else:
        async with Client(server.url, token=server.admin_token) as client:
            if request.param == "http":
                yield client
            else:
                async with client.stream(topics="nothing:*", calls=True) as stream:
                    assert client.channel is stream and stream.takes_calls
                    yield client
                assert client.channel is None, "closed, the stream no longer carries the client's calls"


def actor(api: Api) -> str | None:
    """Who the platform records as acting through `api`."""
    return "admin" if isinstance(api, Client) else None


@asynccontextmanager
async def serving(api: Api, platform: Platform, listener: Listener, *, agent: str,
                  concurrency: int = 10) -> AsyncIterator[None]:
    """Run `listener` on this transport while the block runs: in-process, or remotely through the client."""
    if isinstance(api, Client):
        async with task_scope() as tg:
            await tg.start(functools.partial(run_listener, api, listener, agent=agent, concurrency=concurrency))
            yield
    else:
        async with platform.running(listener, agent=agent, concurrency=concurrency):
            yield


async def test_lifecycle_and_its_events(api: Api, platform: Platform) -> None:
    job = await api.jobs.create(type="workbook", operation="export", metadata={"a": 1})
    assert (job.status, job.created_by, job.metadata) == (S.READY, actor(api), {"a": 1})
    job = await api.jobs.ack(job.id, info="Starting", progress=10)
    job = await api.jobs.update(job.id, progress=60)
    assert (job.status, job.progress, job.info) == (S.EXECUTING, 60, "Starting")
    job = await api.jobs.update(job.id, info=None)
    assert job.info is None
    assert (await job.refresh()) == job == await platform.api.jobs.get(job.id)
    job = await api.jobs.complete(job.id, outcome={"message": "Done.", "next": {"type": "url", "url": "https://x.io"}})
    assert (await job.wait(timeout=5)) == job
    assert (job.status, job.progress) == (S.COMPLETE, 100)
    assert job.outcome is not None and job.outcome.message == "Done."
    events = await api.events.list(job_id=job.id)
    assert [(e.topic, e.payload["status"], e.payload["progress"], e.payload["info"]) for e in events] == [
        ("job:created", "created", 0, None),
        ("job:ready", "ready", 0, None),
        ("job:updated", "executing", 10, "Starting"),
        ("job:updated", "executing", 60, "Starting"),
        ("job:updated", "executing", 60, None),
        ("job:completed", "complete", 100, None),
    ]
    assert {(e.context.job_id, e.context.job, e.context.actor_id) for e in events} == {
        (job.id, "workbook:export", actor(api))}
    await api.jobs.acknowledge_outcome(job.id)
    await api.jobs.delete(job.id)
    with pytest.raises(NotFound, match=job.id):
        await api.jobs.get(job.id)


Move = Callable[[Api, str], Awaitable[Any]]
ILLEGAL: list[Any] = [
    pytest.param("ready", "complete", lambda api, i: api.jobs.complete(i), id="complete-ready"),
    pytest.param("ready", "update", lambda api, i: api.jobs.update(i, progress=5), id="update-ready"),
    pytest.param("ready", "execute", lambda api, i: api.jobs.execute(i), id="execute-ready"),
    pytest.param("complete", "ack", lambda api, i: api.jobs.ack(i), id="ack-complete"),
    pytest.param("complete", "cancel", lambda api, i: api.jobs.cancel(i), id="cancel-complete"),
    pytest.param("executing", "delete", lambda api, i: api.jobs.delete(i), id="delete-executing"),
    pytest.param("executing", "acknowledge_outcome", lambda api, i: api.jobs.acknowledge_outcome(i),
                 id="acknowledge-executing"),
]


@pytest.mark.parametrize(("status", "move", "call"), ILLEGAL)
async def test_illegal_moves_are_conflicts_with_the_same_details(
    api: Api, platform: Platform, status: str, move: str, call: Move
) -> None:
    job = await api.jobs.create(type="workbook", operation="export")
    if status != "ready":
        job = await api.jobs.ack(job.id)
    if status == "complete":
        job = await api.jobs.complete(job.id)
    head = await platform.store.head()
    with pytest.raises(Conflict) as raised:
        await call(api, job.id)
    assert raised.value.details == {"jobId": job.id, "status": status, "move": move}
    assert raised.value.message.startswith(f"Cannot {move} job {job.id} (workbook:export): it is {status}")
    assert await platform.store.head() == head, "a refused move appends no event"
    assert await api.jobs.get(job.id) == job


BAD_INPUT: list[Any] = [
    pytest.param("progress", lambda api, i: api.jobs.ack(i, progress=101), id="progress-over-100"),
    pytest.param("estimated_completion_at", lambda api, i: api.jobs.ack(i, estimated_completion_at="soon"),
                 id="bad-date"),
    pytest.param("outcome.next.url.url",
                 lambda api, i: api.jobs.fail(i, outcome={"next": {"type": "url", "url": "javascript:x"}}),
                 id="javascript-url"),
    pytest.param("kind", lambda api, i: api.jobs.fail(i, kind="oops"), id="bad-kind"),
    pytest.param("type", lambda api, i: api.jobs.create(type="Spread sheet", operation="export"), id="bad-type"),
    pytest.param("operation", lambda api, i: api.jobs.create(type="workbook", operation="has spaces"),
                 id="bad-operation"),
    pytest.param("source", lambda api, i: api.jobs.create(type="workbook", operation="x", source="wb_nope"),
                 id="unknown-source"),
    pytest.param("limit", lambda api, i: api.jobs.list(limit=0), id="bad-limit"),
    pytest.param("priority", lambda api, i: api.jobs.create(type="workbook", operation="x", priority=1001),
                 id="priority-out-of-range"),
    pytest.param("priority", lambda api, i: api.jobs.set_priority(i, -1001), id="set-priority-out-of-range"),
    pytest.param("max_running_per_key", lambda api, i: api.jobs.configure("workbook:x", max_running_per_key=0),
                 id="per-key-limit-zero"),
    pytest.param("status.0", lambda api, i: api.jobs.list(status="done"), id="bad-status"),
    pytest.param("name", lambda api, i: api.workbooks.create(name=""), id="empty-workbook-name"),
]


@pytest.mark.parametrize(("field", "call"), BAD_INPUT)
async def test_bad_input_is_invalid_naming_the_field(api: Api, platform: Platform, field: str, call: Move) -> None:
    job = await api.jobs.create(type="workbook", operation="export")
    head = await platform.store.head()
    with pytest.raises(Invalid) as raised:
        await call(api, job.id)
    assert field in [d["field"] for d in raised.value.details]
    assert field in raised.value.message
    assert await platform.store.head() == head, "bad input changes nothing"


async def test_the_ack_race_has_exactly_one_winner(api: Api, platform: Platform) -> None:
    job = await api.jobs.create(type="workbook", operation="export")
    results: list[str] = []

    async def claim() -> None:
        try:
            await api.jobs.ack(job.id)
            results.append("won")
        except Conflict:
            results.append("conflict")

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(claim)
    assert (results.count("won"), results.count("conflict")) == (1, 49)
    events = await api.events.list(job_id=job.id)
    assert [e.topic for e in events] == ["job:created", "job:ready", "job:updated"]
    assert (await api.jobs.get(job.id)).attempt == 1


async def test_list_filters_and_paging(api: Api) -> None:
    for operation in ("export", "export", "import"):
        await api.jobs.create(type="workbook", operation=operation)
    manual = await api.jobs.create(type="sheet", operation="export", trigger="manual")
    everything = await api.jobs.list()
    assert everything.total == 4 and everything.items[0].id == manual.id, "newest first"
    assert (await api.jobs.list(status="created")).items == [manual]
    assert (await api.jobs.list(status=["ready", "created"])).total == 4
    assert (await api.jobs.list(type="workbook", operation="export")).total == 2
    assert (await api.jobs.list(operation=["import", "export"], type=["sheet"])).items == [manual]
    assert (await api.jobs.list(created_by=actor(api) or "nobody")).total == (4 if actor(api) else 0)
    first, second = await api.jobs.list(limit=2), await api.jobs.list(limit=2, offset=2)
    assert (first.total, first.limit, first.offset, second.offset) == (4, 2, 0, 2)
    assert [j.id for j in first.items + second.items] == [j.id for j in everything.items]
    assert (await second.items[-1].refresh()) == second.items[-1]


async def test_workbooks_records_and_commit_created(api: Api) -> None:
    space = await api.spaces.create(name="Sales", namespace="blue")
    assert await api.spaces.get(space.id) == space and await api.spaces.list() == [space]
    workbook = await api.workbooks.create(name="Leads", space_id=space.id, sheets=[
        {"name": "Contacts", "slug": "contacts", "fields": [{"key": "email"}, {"key": "age", "type": "number"}]},
        {"name": "Notes"}])
    assert [s.slug for s in workbook.sheets] == ["contacts", "notes"]
    assert await api.workbooks.get(workbook.id) == workbook
    assert await api.workbooks.list(space_id=space.id) == [workbook]
    contacts = workbook.sheets[0]
    assert await api.sheets.list(workbook_id=workbook.id) == workbook.sheets
    head = (await api.events.list(limit=1000))[-1].seq
    rows = await api.records.insert(contacts.id, [{"email": "a@x.io", "age": 30}, {"email": "b@x.io"}])
    changed = await api.records.update(contacts.id, [{"id": rows[0].id, "values": {"age": 31}}])
    removed = await api.records.delete(contacts.id, [rows[1].id])
    page = await api.records.get(contacts.id)
    assert [r.values for r in page.items] == [{"email": "a@x.io", "age": 31}] and page.total == 1
    with pytest.raises(Invalid) as raised:
        await api.records.insert(contacts.id, [{"phone": "555"}])
    assert [d["field"] for d in raised.value.details] == ["records.0.phone"]
    commits = await api.events.list(after=head)
    assert [e.topic for e in commits] == ["commit:created"] * 3
    assert [e.context.commit_id for e in commits[1:]] == [changed.id, removed.id]
    assert {(e.context.sheet_slug, e.context.workbook_id, e.context.space_id, e.context.namespace)
            for e in commits} == {("contacts", workbook.id, space.id, "blue")}
    assert [(e.payload["inserted"], e.payload["updated"], e.payload["deleted"]) for e in commits] == [
        (2, 0, 0), (0, 1, 0), (0, 0, 1)]


async def test_actions_trigger_validates_the_input_form(api: Api) -> None:
    form = {"fields": [
        {"key": "format", "label": "Format", "type": "enum", "defaultValue": "csv",
         "config": {"options": [{"value": "csv"}, {"value": "xlsx"}]}},
        {"key": "limit", "label": "Limit", "type": "number"},
        {"key": "title", "label": "Title", "constraints": [{"type": "required"}]},
    ]}
    workbook = await api.workbooks.create(name="Report", sheets=[{"name": "Rows"}], actions=[
        {"operation": "export", "label": "Export", "mode": "background", "inputForm": form},
        {"operation": "submit", "label": "Submit", "constraints": [{"type": "hasData"}]}])
    job = await api.actions.trigger(workbook.id, "export", input={"title": "Q4", "limit": 10})
    assert (job.job, job.source, job.mode.value, job.status) == ("workbook:export", workbook.id, "background",
                                                                 S.READY)
    assert job.input == {"format": "csv", "title": "Q4", "limit": 10}, "defaults fill what was not given"
    assert (await job.refresh()) == job
    for bad, field in [({"title": "Q4", "format": "pdf"}, "input.format"), ({"title": "Q4", "limit": "ten"},
                       "input.limit"), ({"title": "Q4", "colour": "red"}, "input.colour"), ({}, "input.title")]:
        with pytest.raises(Invalid) as raised:
            await api.actions.trigger(workbook.id, "export", input=bad)
        assert [d["field"] for d in raised.value.details] == [field]
    with pytest.raises(Invalid, match="needs data"):
        await api.actions.trigger(workbook.id, "submit")
    await api.records.insert(workbook.sheets[0].id, [{"anything": 1}])
    assert (await api.actions.trigger(workbook.id, "submit")).job == "workbook:submit"
    with pytest.raises(NotFound) as missing:
        await api.actions.trigger(workbook.id, "import")
    assert missing.value.details == {"id": workbook.id, "operation": "import"}


async def test_a_commit_on_contacts_starts_a_custom_job_that_a_second_listener_completes(
    api: Api, platform: Platform
) -> None:
    committed = anyio.Event()

    async def on_commit(event: Event) -> None:
        await custom_job.on_commit(event)
        committed.set()

    starter = Listener("starter")
    starter.on("commit:created", {"sheet": "contacts"}, on_commit)
    worker = Listener("worker")
    worker.on("job:ready", {"job": "workbook:myCustomOperation"}, custom_job.my_custom_operation)

    async with serving(api, platform, starter, agent="starter"), serving(api, platform, worker, agent="worker"):
        space = await api.spaces.create(name="Custom jobs", namespace=custom_job.NAMESPACE)
        workbook = await api.workbooks.create(name="Sales Leads", space_id=space.id, sheets=[
            {"name": "Contacts", "slug": "contacts", "fields": [{"key": "name"}, {"key": "email"}]},
            {"name": "Companies", "slug": "companies", "fields": [{"key": "name"}]}])
        await api.records.insert(workbook.sheets[1].id, [{"name": "Acme"}])  # not contacts: no job
        await api.records.insert(workbook.sheets[0].id, [{"name": "Katherine Johnson", "email": "kj@example.com"},
                                                         {"name": "Dorothy Vaughan", "email": "dv@example.com"}])
        with anyio.fail_after(10):
            await committed.wait()
        [started] = (await api.jobs.list(operation="myCustomOperation")).items
        job = await api.jobs.wait(started.id, timeout=10)

    assert (job.status, job.source, job.progress) == (S.COMPLETE, workbook.id, 100)
    assert job.outcome is not None
    assert job.outcome.message == "Successfully completed my custom operation: Sales Leads has 3 contacts."
    assert job.created_by == ("admin" if isinstance(api, Client) else "agent:starter")
    acked = [e for e in await api.events.list(job_id=job.id) if e.topic == "job:updated"]
    assert [(e.payload["progress"], e.payload["info"]) for e in acked] == [(10, "Starting my custom operation.")]


async def test_the_error_log_survives_failure(api: Any) -> None:
    job = await api.jobs.create(type="workbook", operation="import")
    await api.jobs.ack(job.id)
    assert await api.jobs.log_error(job.id, item="row 7", message="email is not valid") == 1
    assert await api.jobs.log_errors(job.id, [{"item": "row 9", "message": "age must be a number"},
                                              {"message": "3 rows skipped"}]) == 3
    await api.jobs.update(job.id, processed=10, total=10)
    await api.jobs.fail(job.id, error="Too many invalid rows")
    page = await api.jobs.errors(job.id, limit=2)
    assert page.total == 3 and [(e.item, e.message) for e in page.items] == [("row 7", "email is not valid"),
                                                                             ("row 9", "age must be a number")]
    assert page.items[0].created_at is not None
    assert (await api.jobs.errors(job.id, offset=2)).items[0].item is None
    failed = await api.jobs.get(job.id)
    assert (failed.status.value, failed.processed, failed.total) == ("failed", 10, 10), "partial results stay"
    with pytest.raises(Invalid, match="message"):
        await api.jobs.log_error(job.id, message="")
    with pytest.raises(NotFound):
        await api.jobs.log_error("jb_missing", message="x")
    again = await api.jobs.retry_failed_items(job.id)  # the items the log names: row 7 and row 9
    assert (again.retry_of, again.input, again.job) == (job.id, {"items": ["row 7", "row 9"]}, "workbook:import")
    with pytest.raises(Conflict, match="has ended") as refused:
        await api.jobs.retry_failed_items(again.id)
    assert refused.value.details == {"jobId": again.id, "status": "ready", "move": "retry_failed_items"}


async def test_wait_and_refresh_update_the_job_in_place_as_fiddlers_code_expects(api: Api, platform: Platform) -> None:
    job = await api.jobs.create(type="workbook", operation="export")
    same = job
    await platform.api.jobs.ack(job.id, progress=30)  # changed elsewhere: this object does not know yet
    assert job.status is S.READY
    assert await job.refresh() is same
    assert (job.status, job.progress) == (S.EXECUTING, 30)
    seen: list[int] = []
    # Fiddler's polling loop, as its docs write it (with await).
    while job.status in [S.READY, S.EXECUTING]:
        seen.append(job.progress)
        if job.progress < 90:
            await platform.api.jobs.update(job.id, progress=job.progress + 30)
        else:
            await platform.api.jobs.complete(job.id, outcome={"message": "Published."})
        await job.refresh()
    assert seen == [30, 60, 90] and job.status is S.COMPLETE
    other = await api.jobs.create(type="workbook", operation="export")
    await platform.api.jobs.ack(other.id)
    await platform.api.jobs.fail(other.id, error="The model is gone.")
    assert await other.wait(timeout=5) is other
    assert other.status is S.FAILED and other.error_message == "The model is gone."
    assert other == await platform.api.jobs.get(other.id)


async def test_schedules_make_jobs_and_answer_alike(api: Api, platform: Platform) -> None:
    clock: Any = platform.clock
    start = clock.now()
    schedule = await api.schedules.create(job="workbook:export", cron="@hourly", timezone="Europe/Berlin",
                                          input={"format": "csv"})
    assert (schedule.created_by, schedule.input, schedule.description) == (actor(api), {"format": "csv"},
                                                                          "At the start of every hour")
    assert len(schedule.upcoming) == 5 and schedule.upcoming[0] == schedule.next_run_at
    assert await api.schedules.get(schedule.id) == schedule
    assert await api.schedules.list() == [schedule]
    clock.advance(3600)
    assert await platform.schedule_runner.sweep() == 1
    [job] = [j for j in (await api.jobs.list()).items if j.created_by == f"schedule:{schedule.id}"]
    assert (job.job, job.input) == ("workbook:export", {"format": "csv"})
    paused = await api.schedules.pause(schedule.id)
    assert (paused.paused, paused.next_run_at, paused.last_job_id) == (True, None, job.id)
    resumed = await api.schedules.resume(schedule.id)
    assert resumed.next_run_at is not None and resumed.next_run_at > start
    updated = await api.schedules.update(schedule.id, cron="0 3 * * *", input={"format": "xlsx"})
    assert (updated.cron, updated.input, updated.timezone) == ("0 3 * * *", {"format": "xlsx"}, "Europe/Berlin")
    with pytest.raises(Invalid) as raised:
        await api.schedules.create(job="workbook:export", cron="0 25 * * *")
    assert [d["field"] for d in raised.value.details] == ["cron"]
    with pytest.raises(Invalid) as raised:
        await api.schedules.update(schedule.id, timezone="Europe/Nowhere")
    assert [d["field"] for d in raised.value.details] == ["timezone"]
    await api.schedules.delete(schedule.id)
    with pytest.raises(NotFound, match=schedule.id):
        await api.schedules.get(schedule.id)
    with pytest.raises(NotFound, match=schedule.id):
        await api.schedules.resume(schedule.id)


async def test_search_sort_and_counts(api: Api, clock: ManualClock) -> None:
    jobs = api.jobs
    tagged = await jobs.create(type="voters", operation="geocode", metadata={"batch": 7, "customer": "acme"})
    other = await jobs.create(type="voters", operation="geocode", metadata={"batch": "8"},
                              info="Waiting for 100% of it")
    quick = await jobs.ack((await jobs.create(type="sheet", operation="tidy")).id, info="Reading rows")
    clock.advance(2)
    await jobs.complete(quick.id)
    slow = await jobs.ack((await jobs.create(type="sheet", operation="tidy")).id)
    clock.advance(30)
    await jobs.fail(slow.id, error="Geocoder UNAVAILABLE")
    manual = await jobs.create(type="sheet", operation="tidy", trigger="manual")

    assert [j.id for j in (await jobs.list(search=tagged.id)).items] == [tagged.id], "an id is a key lookup"
    prefixed = await jobs.list(search=tagged.id[:12])
    assert tagged.id in [j.id for j in prefixed.items] and all(j.id.startswith(tagged.id[:12]) for j in prefixed.items)
    assert (await jobs.list(search="jb_nothing-like-this")).total == 0
    assert [j.id for j in (await jobs.list(search="geocoder unavailable")).items] == [slow.id], "the error, any case"
    assert [j.id for j in (await jobs.list(search="reading")).items] == [quick.id], "the info"
    assert [j.id for j in (await jobs.list(search="100%")).items] == [other.id], "% is a character, not a wildcard"
    assert [j.id for j in (await jobs.list(metadata={"batch": 7})).items] == [tagged.id]
    assert [j.id for j in (await jobs.list(metadata=["batch=8"])).items] == [other.id], "a string as it is"
    assert (await jobs.list(metadata={"batch": 7, "customer": "other"})).total == 0, "every term must match"
    assert [j.id for j in (await jobs.list(metadata=["customer=acme"], status="ready")).items] == [tagged.id]

    assert [j.id for j in (await jobs.list(sort="-duration")).items] == [slow.id, quick.id], "only ended jobs"
    assert [j.id for j in (await jobs.list(sort="duration")).items] == [quick.id, slow.id]
    assert [j.id for j in (await jobs.list(sort="-started")).items] == [slow.id, quick.id]
    assert [j.id for j in (await jobs.list(sort="ended", type="sheet")).items] == [quick.id, slow.id]
    assert [j.id for j in (await jobs.list(sort="created", limit=2)).items] == [tagged.id, other.id]
    assert (await jobs.list(sort="-created", limit=1)).items[0].id == manual.id

    counts = await jobs.counts()
    assert (counts.ready, counts.created, counts.complete, counts.failed, counts.executing, counts.total) == (
        2, 1, 1, 1, 0, 5)
    by_type = await jobs.counts(type="sheet", operation=["tidy"])
    assert (by_type.ready, by_type.created, by_type.total) == (0, 1, 3)
    assert (await jobs.counts(is_part=True)).total == 0
    assert (await jobs.counts(is_part=False)).total == 5
    assert (await jobs.counts(created_by="nobody")).total == 0

    for field, call in (("sort", lambda: jobs.list(sort="sideways")),
                        ("metadata.0", lambda: jobs.list(metadata=["no equals sign"])),
                        ("search", lambda: jobs.list(search="x" * 201)),
                        ("type.0", lambda: jobs.counts(type="Not A Type"))):
        with pytest.raises(Invalid) as raised:
            await call()
        assert field in [d["field"] for d in raised.value.details] and field in raised.value.message


async def test_bulk_moves_each_job_through_its_own_state_machine(api: Api, platform: Platform) -> None:
    jobs = api.jobs
    ready = [await jobs.create(type="voters", operation="geocode", metadata={"batch": 1}) for _ in range(3)]
    done = await jobs.complete((await jobs.ack((await jobs.create(type="voters", operation="geocode",
                                                                  metadata={"batch": 1})).id)).id)
    result = await jobs.bulk("cancel", ids=[ready[0].id, done.id, "jb_missing", ready[0].id])
    assert (result.action, result.matched, result.changed, result.changed_ids) == ("cancel", 3, 1, [ready[0].id])
    assert [(r.id, r.code) for r in result.refused] == [(done.id, "conflict"), ("jb_missing", "not_found")]
    assert result.refused[0].message.startswith(f"Cannot cancel job {done.id} (voters:geocode): it is complete")
    assert [e.topic for e in await api.events.list(job_id=ready[0].id)][-1] == "job:cancelled", "its own event"

    head = await platform.store.head()
    matching = {"status": ["ready"], "metadata": ["batch=1"]}
    with pytest.raises(Conflict) as raised:  # the confirmation: 2 jobs match now, not 3
        await jobs.bulk("cancel", filter=matching, expected_count=3)
    assert raised.value.details == {"field": "expectedCount", "expected": 3, "matched": 2}
    assert "expectedCount" in raised.value.message
    assert await platform.store.head() == head, "a refused confirmation moves nothing"
    result = await jobs.bulk("cancel", filter=matching, expected_count=2)
    assert (result.matched, result.changed, result.refused) == (2, 2, [])
    assert set(result.changed_ids) == {ready[1].id, ready[2].id}
    assert {j.id for j in (await jobs.list(status="cancelled")).items} == {j.id for j in ready}

    failed = await jobs.fail((await jobs.ack((await jobs.create(type="voters", operation="geocode")).id)).id,
                             error="Geocoder unavailable")
    result = await jobs.bulk("retry", ids=[failed.id, done.id])
    assert (result.changed_ids, [r.id for r in result.refused]) == ([failed.id], [done.id])
    assert (await jobs.get(failed.id)).status is S.READY
    result = await jobs.bulk("delete", filter={"status": ["cancelled"]}, expected_count=3)
    assert result.changed == 3
    with pytest.raises(NotFound):
        await jobs.get(ready[0].id)

    for field, call in (("ids", lambda: jobs.bulk("cancel")),
                        ("expectedCount", lambda: jobs.bulk("cancel", filter={"type": ["voters"]})),
                        ("filter", lambda: jobs.bulk("cancel", ids=[done.id], filter={})),
                        ("expectedCount", lambda: jobs.bulk("cancel", ids=[done.id], expected_count=1)),
                        ("action", lambda: jobs.bulk("explode", ids=[done.id])),
                        ("ids", lambda: jobs.bulk("cancel", ids=[f"jb_{i}" for i in range(1001)]))):
        with pytest.raises(Invalid) as raised:
            await call()
        assert field in [d["field"] for d in raised.value.details] and field in raised.value.message


async def test_webhooks_are_managed_alike(api: Api, platform: Platform) -> None:
    from listener.webhooks import WebhookStatus

    new = await api.webhooks.create(url="https://example.com/hooks", topics=["job:failed"],
                                    filter={"job": "workbook:*"}, description="failures")
    hook = new.webhook
    assert new.secret.startswith("whsec_") and len(new.secret) > 30
    assert (hook.url, hook.topics, hook.filter, hook.status, hook.created_by) == (
        "https://example.com/hooks", ["job:failed"], {"job": "workbook:*"}, WebhookStatus.ACTIVE, actor(api))
    assert hook.cursor == await platform.store.head(), "from now on, as a new agent"
    assert await api.webhooks.list() == [hook] == [await api.webhooks.get(hook.id)]
    assert (await api.webhooks.pause(hook.id)).status is WebhookStatus.PAUSED
    assert (await api.webhooks.resume(hook.id)).status is WebhookStatus.ACTIVE
    assert await api.webhooks.deliveries(hook.id, limit=5) == []
    with pytest.raises(Invalid) as raised:
        await api.webhooks.create(url="file:///etc/passwd", topics=["job:*"])
    assert [d["field"] for d in raised.value.details] == ["url"]
    await api.webhooks.delete(hook.id)
    for call in (api.webhooks.get, api.webhooks.delete, api.webhooks.pause):
        with pytest.raises(NotFound):
            await call(hook.id)


async def test_dedupe_and_debounce_say_what_they_did_alike(api: Api, platform: Platform, clock: ManualClock) -> None:
    first = await api.jobs.create(type="sheet", operation="reindex", dedupe_key="sheet:1", debounce_seconds=10,
                                  input={"n": 1})
    assert (first.dedupe, first.status, first.dedupe_key, first.debounce_seconds) == (
        "created", S.SCHEDULED, "sheet:1", 10)
    pushed = await api.jobs.create(type="sheet", operation="reindex", dedupe_key="sheet:1", debounce_seconds=10,
                                   input={"n": 2})
    assert (pushed.id, pushed.dedupe, pushed.input) == (first.id, "debounced", {"n": 2})
    same = await api.jobs.create(type="sheet", operation="reindex", dedupe_key="sheet:1", input={"n": 3})
    assert (same.id, same.dedupe, same.input) == (first.id, "deduplicated", {"n": 2})
    assert same == await api.jobs.get(first.id) and (await api.jobs.get(first.id)).dedupe is None
    assert (await api.jobs.create(type="sheet", operation="reindex")).dedupe is None
    with pytest.raises(Invalid, match="debounceSeconds needs a dedupeKey"):
        await api.jobs.create(type="sheet", operation="reindex", debounce_seconds=5)
    clock.advance(10)
    await platform.scheduler.sweep()
    await api.jobs.ack(first.id)
    again = await api.jobs.create(type="sheet", operation="reindex", dedupe_key="sheet:1", debounce_seconds=10)
    assert again.id != first.id and again.dedupe == "created"


async def test_priorities_and_keys_reach_the_worker_high_first(api: Api, platform: Platform) -> None:
    """A backlog with priorities and keys, served on this transport: claimed by priority, and a key's limit holds."""
    await api.jobs.configure("workbook:import", max_running_per_key=1)
    jobs = [await api.jobs.create(type="workbook", operation="import", priority=p, concurrency_key=k)
            for p, k in ((0, "a"), (3, "b"), (9, "c"), (3, "d"))]
    waiting = await api.jobs.create(type="workbook", operation="import", priority=50, concurrency_key="a")
    assert [j.priority for j in jobs] == [0, 3, 9, 3] and waiting.status is S.SCHEDULED
    assert waiting.waiting_for == "key_concurrency" and waiting.concurrency_key == "a"
    moved = await api.jobs.set_priority(waiting.id, 60)
    assert moved.priority == 60 and moved.status is S.SCHEDULED
    seen: list[str] = []
    listener = Listener("prioritized")

    @listener.on("job:ready", job="workbook:import")
    async def run(event: Event) -> None:
        assert event.context.job_id is not None
        await event.api.jobs.ack(event.context.job_id)
        seen.append(event.context.job_id)
        await event.api.jobs.complete(event.context.job_id)

    async with serving(api, platform, listener, agent="prioritized", concurrency=1):
        with anyio.fail_after(10):
            for job in [*jobs, waiting]:
                assert (await api.jobs.wait(job.id)).status is S.COMPLETE
    assert seen[:4] == [jobs[2].id, jobs[1].id, jobs[3].id, jobs[0].id], "the backlog by priority, FIFO within one"
    assert seen[4] == waiting.id, "a's second job waited for a's first"
