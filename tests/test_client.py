"""The HTTP Client against a real server: the lifecycle, every error class, wait, streams, failover, run_listener."""

from __future__ import annotations

import functools
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup, TaskStatus

from listener import (
    Action,
    Conflict,
    Event,
    Forbidden,
    Invalid,
    Job,
    JobStatus,
    Listener,
    ListenerError,
    NotFound,
    Outcome,
    Platform,
    RateLimited,
    TooLarge,
    Unauthorized,
)
from listener.client import Client, ClientState, EventStream, ServerUnavailable, error_from_body, run_listener
from listener.platform.auth import Users
from listener.platform.server import serve
from plugins.job_handler import Tick, job_handler
from tests.conftest import Server

S = JobStatus
pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(server: Server) -> AsyncIterator[Client]:
    async with Client(server.url, token=server.admin_token) as c:
        yield c


async def take(events: EventStream, n: int, timeout: float = 10) -> list[Event]:
    """The next `n` events of a stream (TimeoutError rather than a hang if they never come)."""
    with anyio.fail_after(timeout):
        return [await events.__anext__() for _ in range(n)]


@contextmanager
def stream_attached(platform: Platform) -> Iterator[anyio.Event]:
    """An Event set when the server next subscribes to the event log: a websocket stream is now live.

    That subscription is the only sign a test can see that a client's stream has started; it
    is read through pyee's `new_listener`, which fires whenever a subscriber attaches.
    """
    attached = anyio.Event()

    def on_new(event: str, _listener: Any) -> None:
        if event == "batch":
            attached.set()

    emitter = platform.eventlog._emitter
    emitter.on("new_listener", on_new)
    try:
        yield attached
    finally:
        emitter.remove_listener("new_listener", on_new)


def closed_port() -> int:
    """A local port nothing listens on, so connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Replica:
    """A `serve()` of a platform that a test can stop and start again on the same port."""

    def __init__(self, platform: Platform, users: Users) -> None:
        self.platform, self.users = platform, users
        self.port = 0
        self._scope = anyio.CancelScope()
        self._stopped = anyio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, tg: TaskGroup) -> str:
        self._scope, self._stopped = anyio.CancelScope(), anyio.Event()

        async def run(*, task_status: TaskStatus[int]) -> None:
            try:
                with self._scope:
                    await serve(self.platform, port=self.port, users=self.users, shutdown_timeout=5,
                                task_status=task_status)
            finally:
                self._stopped.set()

        self.port = await tg.start(run)
        return self.url

    async def stop(self) -> None:
        self._scope.cancel()
        await self._stopped.wait()


@asynccontextmanager
async def replicas(platform: Platform, n: int) -> AsyncIterator[tuple[list[Replica], str]]:
    """`n` servers over one platform, and an admin token for them."""
    users = Users(platform.store, platform.clock)
    _, token = await users.create("admin", "admin")
    async with anyio.create_task_group() as tg:
        started = [Replica(platform, users) for _ in range(n)]
        for replica in started:
            await replica.start(tg)
        yield started, token
        tg.cancel_scope.cancel()


# -- the job lifecycle ---------------------------------------------------------------


async def test_lifecycle_create_ack_update_complete(client: Client, server: Server) -> None:
    job = await client.jobs.create(type="workbook", operation="export", info="queued", metadata={"a": 1},
                                   input={"column": "email"})
    assert (job.status, job.job, job.info, job.created_by) == (S.READY, "workbook:export", "queued", "admin")
    assert (job.metadata, job.input) == ({"a": 1}, {"column": "email"})
    job = await client.jobs.ack(job.id, info="Starting submit job...", progress=10)
    assert (job.status, job.progress, job.info, job.attempt) == (S.EXECUTING, 10, "Starting submit job...", 1)
    job = await client.jobs.update(job.id, progress=50)
    assert (job.progress, job.info) == (50, "Starting submit job..."), "fields not given stay as they were"
    job = await client.jobs.update(job.id, info=None)
    assert (job.progress, job.info) == (50, None), "a field given as None is cleared"
    eta = datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    job = await client.jobs.update(job.id, estimated_completion_at=eta, metadata={"b": 2})
    assert (job.estimated_completion_at, job.metadata) == (eta, {"b": 2})
    outcome = Outcome.model_validate({
        "message": "Exported 12 records.", "acknowledge": True, "buttonText": "Get it",
        "next": {"type": "download", "url": "/files/export.csv", "fileName": "export.csv", "label": "Download"}})
    job = await client.jobs.complete(job.id, outcome=outcome)
    assert (job.status, job.progress, job.outcome, job.error_message) == (S.COMPLETE, 100, outcome, None)
    assert job.outcome is not None and job.outcome.next is not None
    assert job.outcome.next.model_dump(by_alias=False)["file_name"] == "export.csv"
    assert job == await server.platform.api.jobs.get(job.id), "the client sees what the platform stored"
    job = await client.jobs.acknowledge_outcome(job.id)
    assert job.outcome_acknowledged_at is not None
    topics = [e.topic for e in await client.events.list(job_id=job.id)]
    assert topics == ["job:created", "job:ready", "job:updated", "job:updated", "job:updated", "job:updated",
                      "job:completed", "job:outcome-acknowledged"]


async def test_manual_execute_fail_cancel_delete(client: Client) -> None:
    manual = await client.jobs.create(type="sheet", operation="dedupe", trigger="manual")
    assert manual.status is S.CREATED
    assert (await client.jobs.execute(manual.id)).status is S.READY
    await client.jobs.ack(manual.id)
    failed = await client.jobs.fail(manual.id, outcome={"message": "This Job failed due to an error."}, kind="timeout")
    assert failed.status is S.FAILED and failed.error is not None
    assert (failed.error_message, failed.error.kind) == ("This Job failed due to an error.", "timeout")
    other = await client.jobs.create(type="workbook", operation="export")
    cancelled = await client.jobs.cancel(other.id, info="Not needed")
    assert (cancelled.status, cancelled.info) == (S.CANCELLED, "Not needed")
    await client.jobs.delete(other.id)
    with pytest.raises(NotFound):
        await client.jobs.get(other.id)


async def test_create_from_a_spec(client: Client) -> None:
    from listener.models import JobCreate

    job = await client.jobs.create_from(JobCreate.model_validate({"type": "file", "operation": "extract",
                                                                   "mode": "background", "trigger": "manual"}))
    assert (job.job, job.mode.value, job.status) == ("file:extract", "background", S.CREATED)


async def test_refresh_fetches_the_job_again(client: Client, server: Server) -> None:
    job = await client.jobs.create(type="workbook", operation="export")
    await server.platform.api.jobs.ack(job.id, progress=30, info="Working")
    fresh = await job.refresh()
    assert fresh is job, "as in Fiddler, refresh updates the job itself (and returns it)"
    assert (job.status, job.progress, job.info) == (S.EXECUTING, 30, "Working")
    await server.platform.api.jobs.complete(job.id)
    assert (await job.refresh()).status is S.COMPLETE, "still bound to the client"


async def test_list_filters_and_pages(client: Client, server: Server) -> None:
    for operation in ("export", "export", "import"):
        await client.jobs.create(type="workbook", operation=operation)
    async with Client(server.url, token=await server.token("ann", "member")) as ann:
        mine = await ann.jobs.create(type="sheet", operation="export", trigger="manual")
        page = await ann.jobs.list()
        assert [j.id for j in page.items] == [mine.id], "a member sees only its own jobs"
    everything = await client.jobs.list()
    assert everything.total == 4 and everything.items[0].id == mine.id, "newest first"
    assert (await client.jobs.list(status="created")).total == 1
    assert (await client.jobs.list(status=[S.READY, "created"])).total == 4
    assert (await client.jobs.list(type="workbook", operation="export")).total == 2
    assert (await client.jobs.list(operation=["export", "import"], type=["workbook"])).total == 3
    assert (await client.jobs.list(created_by="ann")).total == 1
    page = await client.jobs.list(limit=3, offset=2)
    assert (len(page.items), page.total, page.limit, page.offset) == (2, 4, 3, 2)
    assert (await page.items[0].refresh()) == page.items[0], "listed jobs are bound to the client"
    with pytest.raises(Invalid, match="status"):
        await client.jobs.list(status="done")


# -- errors ----------------------------------------------------------------------------


async def test_every_error_comes_back_as_its_class(client: Client, server: Server) -> None:
    with pytest.raises(NotFound) as missing:
        await client.jobs.get("jb_missing")
    assert (missing.value.message, missing.value.details) == ("Job jb_missing not found.", {"jobId": "jb_missing"})

    job = await client.jobs.create(type="workbook", operation="export")
    with pytest.raises(Conflict) as illegal:
        await client.jobs.complete(job.id)
    assert illegal.value.details == {"jobId": job.id, "status": "ready", "move": "complete"}
    assert "Cannot complete job" in illegal.value.message

    with pytest.raises(Invalid) as invalid:
        await client.jobs.create(type="workbook", operation="export", source="wb_nope")
    assert [d["field"] for d in invalid.value.details] == ["source"]
    assert "wb_nope" in invalid.value.message

    async with Client(server.url, token="lst_not-a-real-token-at-all") as stranger:
        with pytest.raises(Unauthorized, match="not valid"):
            await stranger.jobs.list()
    async with Client(server.url) as anonymous:
        with pytest.raises(Unauthorized, match="bearer token is required"):
            await anonymous.jobs.list()

    async with Client(server.url, token=await server.token("ann", "member")) as ann:
        with pytest.raises(Forbidden) as forbidden:
            await ann.jobs.ack(job.id)
    assert forbidden.value.details == {"role": "member"}
    assert (await client.jobs.get(job.id)).status is S.READY, "a refused ack changes nothing"

    with pytest.raises(ListenerError) as other:
        await client.request("PUT", "/jobs")
    assert type(other.value) is ListenerError, "a code with no class of its own is a plain ListenerError"
    assert "PUT" in other.value.message


async def test_a_body_over_the_limit_is_too_large(client: Client) -> None:
    workbook = await client.workbooks.create(name="Big", sheets=[{"name": "Notes", "fields": [{"key": "text"}]}])
    with pytest.raises(TooLarge) as raised:
        await client.records.insert(workbook.sheets[0].id, [{"text": "x" * 1_100_000}])
    assert raised.value.details == {"limit": 1024 * 1024}


async def test_bad_arguments_are_refused_before_anything_is_sent(client: Client, server: Server) -> None:
    job = await client.jobs.ack((await client.jobs.create(type="workbook", operation="export")).id)
    head = await server.platform.store.head()
    with pytest.raises(Invalid) as raised:
        await client.jobs.update(job.id, progress=101)
    assert [d["field"] for d in raised.value.details] == ["progress"]
    with pytest.raises(Invalid, match=re.escape("outcome.mesage")):
        await client.jobs.complete(job.id, outcome={"mesage": "typo"})
    assert await server.platform.store.head() == head
    assert await client.jobs.get(job.id) == job


@pytest.mark.parametrize(("code", "cls"), [
    ("not_found", NotFound), ("conflict", Conflict), ("invalid", Invalid), ("unauthorized", Unauthorized),
    ("forbidden", Forbidden), ("too_large", TooLarge), ("rate_limited", RateLimited), ("internal", ListenerError),
    ("teapot", ListenerError),
])
def test_error_codes_map_to_classes(code: str, cls: type[ListenerError]) -> None:
    body = b'{"error": {"code": "%s", "message": "Nope.", "details": {"k": 1}}}' % code.encode()
    error = error_from_body(418, body, "GET /x")
    assert (type(error), error.message, error.details) == (cls, "Nope.", {"k": 1})


def test_an_error_without_a_listener_body_is_a_listener_error() -> None:
    error = error_from_body(502, b"<html>Bad gateway</html>", "GET /api/v1/jobs")
    assert type(error) is ListenerError
    assert "GET /api/v1/jobs answered 502" in error.message and "Bad gateway" in error.message


async def test_an_unreachable_server_raises_server_unavailable() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with Client(url, token="lst_whatever-it-does-not-matter") as client:
        with pytest.raises(ServerUnavailable) as raised:
            await client.jobs.list()
        assert isinstance(raised.value, ConnectionError)
        assert url in str(raised.value) and raised.value.urls == [url]
        with pytest.raises(ServerUnavailable, match=re.escape("127.0.0.1")):
            async with client.stream():
                pass


# -- the client's own life -------------------------------------------------------------


async def test_a_client_opens_once_and_refuses_use_when_closed(server: Server) -> None:
    client = Client(server.url, token=server.admin_token)
    assert repr(client) == f"Client({server.url!r}, state=unopened)"
    with pytest.raises(RuntimeError, match="not open yet"):
        await client.jobs.list()
    async with client:
        opened = client.state
        assert (await client.jobs.list()).total == 0
        with pytest.raises(RuntimeError, match="more than once"):
            async with client:
                pass
    assert (opened, client.state) == (ClientState.OPENED, ClientState.CLOSED)
    with pytest.raises(RuntimeError, match=re.escape("Cannot send a request, as the client has been closed.")):
        await client.jobs.list()
    with pytest.raises(RuntimeError, match=re.escape("Cannot reopen a client instance, once it has been closed.")):
        async with client:
            pass
    with pytest.raises(RuntimeError, match="has been closed"):
        async with client.stream():
            pass


def test_a_client_needs_a_url() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Client([])
    assert Client("http://h:1/api/v1/").url == "http://h:1", "the API prefix and slash are optional"


# -- wait -----------------------------------------------------------------------------


async def test_wait_is_woken_by_the_stream(client: Client, server: Server) -> None:
    job = await client.jobs.ack((await client.jobs.create(type="workbook", operation="export")).id)
    waited: list[Job] = []

    async def wait() -> None:
        waited.append(await job.wait(timeout=10))

    with stream_attached(server.platform) as attached:
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await attached.wait()  # the wait has read the job and now only its stream can wake it
            await server.platform.api.jobs.update(job.id, progress=90)
            await server.platform.api.jobs.complete(job.id, outcome={"message": "Done remotely."})
    [done] = waited
    assert (done.status, done.progress) == (S.COMPLETE, 100)
    assert done.outcome is not None and done.outcome.message == "Done remotely."


async def test_wait_returns_at_once_for_an_ended_job(client: Client) -> None:
    job = await client.jobs.cancel((await client.jobs.create(type="workbook", operation="export")).id)
    assert (await client.jobs.wait(job.id, timeout=5)) == job


async def test_wait_raises_not_found_when_the_job_is_deleted(client: Client, server: Server) -> None:
    job = await client.jobs.create(type="workbook", operation="export")
    raised: list[BaseException] = []

    async def wait() -> None:
        try:
            await client.jobs.wait(job.id, timeout=10)
        except NotFound as exc:
            raised.append(exc)

    with stream_attached(server.platform) as attached:
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await attached.wait()
            await server.platform.api.jobs.delete(job.id)
    assert len(raised) == 1 and job.id in str(raised[0])


async def test_wait_times_out(client: Client) -> None:
    job = await client.jobs.create(type="workbook", operation="export")
    with pytest.raises(TimeoutError):
        await client.jobs.wait(job.id, timeout=0.2)
    with pytest.raises(NotFound):
        await client.jobs.wait("jb_missing", timeout=5)


# -- workbooks, records, actions ------------------------------------------------------------


async def test_workbooks_records_and_actions_round_trip(client: Client) -> None:
    space = await client.spaces.create(name="Reports", namespace="red", metadata={"team": "sales"})
    assert await client.spaces.get(space.id) == space
    assert space in await client.spaces.list()
    export = Action.model_validate({
        "operation": "export", "label": "Export", "primary": True,
        "inputForm": {"fields": [{"key": "format", "label": "Format", "type": "enum",
                                  "config": {"options": [{"value": "csv"}, {"value": "xlsx"}]},
                                  "constraints": [{"type": "required"}]}]}})
    workbook = await client.workbooks.create(
        name="October", space_id=space.id, labels=["pinned"], actions=[export],
        sheets=[{"name": "Contacts", "slug": "contacts", "fields": [{"key": "name"}, {"key": "age", "type": "number"}],
                 "actions": [{"operation": "dedupe", "label": "Dedupe"}]}])
    assert (workbook.labels, workbook.actions, workbook.space_id) == (["pinned"], [export], space.id)
    assert await client.workbooks.get(workbook.id) == workbook
    assert [w.id for w in await client.workbooks.list(space_id=space.id)] == [workbook.id]
    [sheet] = workbook.sheets
    assert sheet.actions[0].operation == "dedupe"
    assert await client.sheets.get(sheet.id) == sheet
    assert await client.sheets.list(workbook_id=workbook.id) == [sheet]

    ann, bob = await client.records.insert(sheet.id, [{"name": "Ann", "age": 30}, {"name": "Bob"}])
    assert (ann.values, bob.sheet_id) == ({"name": "Ann", "age": 30}, sheet.id)
    page = await client.records.get(sheet.id, limit=1, offset=1)
    assert (page.items, page.total) == ([bob], 2)
    updated = await client.records.update(sheet.id, [{"id": ann.id, "values": {"age": 31}}])
    assert (updated.updated, updated.workbook_id) == (1, workbook.id)
    deleted = await client.records.delete(sheet.id, [bob.id])
    assert deleted.deleted == 1
    [row] = (await client.records.get(sheet.id)).items
    assert row.values == {"name": "Ann", "age": 31}
    with pytest.raises(Invalid) as bad:
        await client.records.insert(sheet.id, [{"name": "Cy", "age": "old"}])
    assert [d["field"] for d in bad.value.details] == ["records.0.age"]
    commits = [e for e in await client.events.list() if e.topic == "commit:created"]
    assert [(e.payload["inserted"], e.payload["updated"], e.payload["deleted"]) for e in commits] == [
        (2, 0, 0), (0, 1, 0), (0, 0, 1)]
    assert {e.context.sheet_slug for e in commits} == {"contacts"}

    job = await client.actions.trigger(workbook.id, "export", input={"format": "xlsx"})
    assert (job.job, job.source, job.input, job.status) == ("workbook:export", workbook.id, {"format": "xlsx"},
                                                            S.READY)
    assert (await job.refresh()).id == job.id
    with pytest.raises(Invalid) as not_an_option:
        await client.actions.trigger(workbook.id, "export", input={"format": "pdf"})
    assert [d["field"] for d in not_an_option.value.details] == ["input.format"]
    with pytest.raises(Invalid, match="required"):
        await client.actions.trigger(workbook.id, "export")
    with pytest.raises(NotFound, match="no action 'import'"):
        await client.actions.trigger(workbook.id, "import")

    await client.workbooks.delete(workbook.id)
    with pytest.raises(NotFound):
        await client.workbooks.get(workbook.id)


# -- the event stream --------------------------------------------------------------------


async def test_stream_sends_the_backlog_then_live_events_in_order(client: Client, server: Server) -> None:
    api = server.platform.api
    for _ in range(2):
        await api.jobs.create(type="workbook", operation="export")
    async with client.stream(after=0) as events:
        backlog = await take(events, 4)
        assert events.start == 0
        await api.jobs.create(type="sheet", operation="import")
        live = await take(events, 2)
    assert [e.seq for e in backlog + live] == [1, 2, 3, 4, 5, 6]
    assert [e.topic for e in live] == ["job:created", "job:ready"]
    assert live[0].context.job == "sheet:import"
    assert events.position == 6


async def test_stream_topics_and_filter(client: Client, server: Server) -> None:
    api = server.platform.api
    await api.jobs.create(type="workbook", operation="export")
    wanted = await api.jobs.create(type="sheet", operation="import")
    async with client.stream(after=0, topics="job:ready", filter={"operation": "import"}) as events:
        [event] = await take(events, 1)
        assert (event.topic, event.context.job_id) == ("job:ready", wanted.id)
        later = await api.jobs.create(type="workbook", operation="import")
        [event] = await take(events, 1)
        assert event.context.job_id == later.id


async def test_stream_refused_raises_the_servers_error(server: Server) -> None:
    async with Client(server.url, token="lst_not-a-real-token-at-all") as stranger:
        with pytest.raises(Unauthorized, match=re.escape("The bearer token is not valid.")):
            async with stranger.stream():
                pass
    async with Client(server.url, token=server.admin_token) as client:
        with pytest.raises(Invalid) as raised:
            async with client.stream(filter={"colour": "red"}):
                pass
        assert "colour" in raised.value.message


async def test_an_agent_stream_resumes_from_its_acked_cursor(client: Client, server: Server) -> None:
    api = server.platform.api
    await api.jobs.create(type="workbook", operation="old")
    async with client.stream(agent="w1") as events:
        assert events.start == 2, "a new agent starts at the newest event"
        await api.jobs.create(type="workbook", operation="export")
        created, ready = await take(events, 2)
        await events.ack(created.seq)
        await events.ack(ready.seq)
        await events.ack(created.seq)  # behind the cursor: dropped
    # The stream closed with a close handshake, so the server has handled its acks.
    assert await client.events.cursor("w1") == ready.seq
    await api.jobs.create(type="workbook", operation="import")
    async with client.stream(agent="w1") as events:
        [event] = await take(events, 1)
    assert (events.start, event.seq) == (ready.seq, ready.seq + 1)
    async with client.stream() as anonymous:
        with pytest.raises(RuntimeError, match="no agent"):
            await anonymous.ack(1)


async def test_stream_reconnects_after_a_restart_without_gap_or_duplicate(platform: Platform) -> None:
    api = platform.api
    async with replicas(platform, 1) as ([replica], token), Client(replica.url, token=token) as client:
        async with client.stream(after=0, agent="follower", backoff_start=0.01, backoff_max=0.05) as events:
            for _ in range(3):
                await api.jobs.create(type="workbook", operation="export")
            before = await take(events, 6)
            async with anyio.create_task_group() as tg:
                await replica.stop()
                assert client.url == replica.url
                # The log moves on while the server is down, and the ack cannot be sent yet.
                for _ in range(2):
                    await api.jobs.create(type="sheet", operation="import")
                await events.ack(before[-1].seq)
                await replica.start(tg)
                await api.jobs.create(type="file", operation="extract")
                after = await take(events, 6)
                await replica.stop()
        assert [e.seq for e in before + after] == list(range(1, 13))
        assert [e.context.job for e in after] == ["sheet:import"] * 4 + ["file:extract"] * 2
        assert events.connections == 2
    assert await platform.store.get_cursor("admin/follower") == 6, "the ack made while down was sent on reconnect"


async def test_requests_and_streams_fail_over_to_the_next_url(platform: Platform) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    async with replicas(platform, 2) as ([first, second], token):
        async with Client([dead, first.url, second.url], token=token) as client:
            job = await client.jobs.create(type="workbook", operation="export")
            assert client.url == first.url, "a refused connection moves to the next URL"
            async with client.stream(after=0, backoff_start=0.01, backoff_max=0.05) as events:
                assert [e.seq for e in await take(events, 2)] == [1, 2]
                await first.stop()
                await platform.api.jobs.cancel(job.id)
                [cancelled] = await take(events, 1)
                assert (cancelled.seq, cancelled.topic) == (3, "job:cancelled")
                assert events.connections == 2 and client.url == second.url
            assert (await client.jobs.get(job.id)).status is S.CANCELLED


# -- run_listener -----------------------------------------------------------------------------


async def test_run_listener_runs_a_listener_remotely(client: Client, server: Server) -> None:
    async def export(event: Event, tick: Tick) -> Outcome:
        await tick(50, "Halfway there")
        workbooks = await event.api.workbooks.list()
        return Outcome(message=f"Exported {len(workbooks)} workbooks.")

    listener = Listener("remote").use(job_handler("workbook:export", export))
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(run_listener, client, listener, agent="exporter"))
        job = await client.jobs.create(type="workbook", operation="export")
        done = await job.wait(timeout=10)
        tg.cancel_scope.cancel()
    assert done.status is S.COMPLETE
    assert done.outcome is not None and done.outcome.message == "Exported 0 workbooks."
    events = await client.events.list(job_id=job.id)
    updates = [(e.payload["progress"], e.payload["info"], e.context.actor_id) for e in events
               if e.topic == "job:updated"]
    assert updates == [(0, "Accepted", "admin"), (50, "Halfway there", "admin")]
    ready = next(e for e in events if e.topic == "job:ready")
    cursor = await server.platform.store.get_cursor("admin/exporter")
    assert cursor is not None and cursor >= ready.seq, "the handled event was acknowledged"


async def test_run_listener_drains_in_flight_handlers_when_cancelled(client: Client, server: Server) -> None:
    started, release = anyio.Event(), anyio.Event()
    scope = anyio.CancelScope()
    seen_cancel: list[bool] = []
    listener = Listener()

    @listener.on("job:ready")
    async def slow(event: Event) -> None:
        assert event.context.job_id is not None
        await event.api.jobs.ack(event.context.job_id)
        started.set()
        await release.wait()
        seen_cancel.append(scope.cancel_called)
        await event.api.jobs.complete(event.context.job_id, outcome={"message": "Finished after the stop."})

    async def serve_listener(*, task_status: TaskStatus[None]) -> None:
        with scope:
            await run_listener(client, listener, agent="drainer", task_status=task_status)

    async with anyio.create_task_group() as tg:
        await tg.start(serve_listener)
        job = await client.jobs.create(type="workbook", operation="export")
        await started.wait()
        scope.cancel()
        await anyio.wait_all_tasks_blocked()  # run_listener has taken the cancellation and is draining
        release.set()
    assert seen_cancel == [True], "the handler ran on after the cancellation"
    done = await client.jobs.get(job.id)
    assert done.status is S.COMPLETE
    ready = next(e for e in await client.events.list(job_id=job.id) if e.topic == "job:ready")
    cursor = await server.platform.store.get_cursor("admin/drainer")
    assert cursor is not None and cursor >= ready.seq, "the drained event was acknowledged on the way out"


async def test_run_listener_gives_up_on_handlers_after_the_grace(client: Client, server: Server) -> None:
    started = anyio.Event()
    listener = Listener()

    @listener.on("job:ready")
    async def stuck(event: Event) -> None:
        started.set()
        await anyio.sleep_forever()

    with anyio.fail_after(10):  # the grace is 0.1 s: run_listener must not wait for the stuck handler
        async with anyio.create_task_group() as tg:
            await tg.start(functools.partial(run_listener, client, listener, agent="stuck", grace=0.1))
            job = await client.jobs.create(type="workbook", operation="export")
            await started.wait()
            tg.cancel_scope.cancel()
    assert (await client.jobs.get(job.id)).status is S.READY
    ready = next(e for e in await client.events.list(job_id=job.id) if e.topic == "job:ready")
    cursor = await server.platform.store.get_cursor("admin/stuck")
    assert cursor == ready.seq - 1, "the unfinished job:ready is delivered again; job:created had no handler"
