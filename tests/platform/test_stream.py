"""The event stream websocket and the paged event log, over a real server and real websockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest

from listener import Job
from listener.platform import stream as stream_module
from tests.conftest import Server
from tests.platform.test_server import API, assert_error, call, snapshot

pytestmark = pytest.mark.anyio

Params = dict[str, Any] | list[tuple[str, str]]


@asynccontextmanager
async def stream(server: Server, token: str, params: Params | None = None) -> AsyncIterator[Stream]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session, session.ws_connect(
            f"{server.url}{API}/events/stream", params=params) as ws:
        yield Stream(ws)


class Stream:
    """A client of the stream that reads with a deadline, never by sleeping."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[int] = []  # how many events each event message held, in order

    async def message(self) -> dict[str, Any]:
        with anyio.fail_after(5):
            message: dict[str, Any] = await self.ws.receive_json()
        return message

    async def ready(self) -> dict[str, Any]:
        message = await self.message()
        assert message["type"] == "ready", message
        return message

    async def events(self, n: int) -> list[dict[str, Any]]:
        """The next n events, whether they come one a message or batched (`?batch=true`)."""
        out: list[dict[str, Any]] = []
        while len(out) < n:
            message = await self.message()
            assert message["type"] in ("event", "events"), message
            batch = [message["event"]] if message["type"] == "event" else message["events"]
            self.frames.append(len(batch))
            out.extend(batch)
        assert len(out) == n, f"{len(out) - n} event(s) more than expected: {out[n:]}"
        return out

    async def seqs(self, n: int) -> list[int]:
        return [e["seq"] for e in await self.events(n)]

    async def ack(self, seq: int) -> None:
        await self.ws.send_json({"type": "ack", "seq": seq})


async def new_job(server: Server, actor: str = "admin", **kw: Any) -> Job:
    return await server.platform.api.as_actor(actor).jobs.create(**{"type": "workbook", "operation": "export", **kw})


async def test_the_stream_sends_the_log_from_after_then_live_events(server: Server) -> None:
    jobs = [await new_job(server) for _ in range(3)]  # events 1-6
    async with stream(server, server.admin_token, {"after": 2}) as s:
        assert await s.ready() == {"type": "ready", "position": 2, "head": 6, "calls": True,
                                  "listens": True}
        backlog = await s.events(4)
        assert [(e["seq"], e["topic"], e["context"]["jobId"]) for e in backlog] == [
            (3, "job:created", jobs[1].id), (4, "job:ready", jobs[1].id),
            (5, "job:created", jobs[2].id), (6, "job:ready", jobs[2].id)]
        live = await new_job(server)
        events = await s.events(2)
        assert [(e["seq"], e["topic"], e["context"]["jobId"]) for e in events] == [
            (7, "job:created", live.id), (8, "job:ready", live.id)]
        assert events[1]["payload"]["status"] == "ready" and events[1]["context"]["job"] == "workbook:export"


async def test_topics_and_filter_are_applied_on_the_server(server: Server) -> None:
    export = await new_job(server)                                  # 1 created, 2 ready
    await new_job(server, type="sheet", operation="dedupe")         # 3, 4
    await server.platform.api.spaces.create(name="Red")             # 5 space:created
    await server.platform.api.jobs.cancel(export.id)                # 6 job:cancelled
    params = [("after", "0"), ("topic", "job:ready"), ("topic", "job:cancelled"),
              ("filter", json.dumps({"job": "workbook:export"}))]
    async with stream(server, server.admin_token, params) as s, \
            stream(server, server.admin_token, {"after": "0", "topic": "*:created"}) as created:
        await s.ready()
        await created.ready()
        assert [(e["seq"], e["topic"]) for e in await s.events(2)] == [(2, "job:ready"), (6, "job:cancelled")]
        assert [(e["seq"], e["topic"]) for e in await created.events(3)] == [
            (1, "job:created"), (3, "job:created"), (5, "space:created")]
        # Nothing else was on its way: the next message of each is the next event that matches.
        await new_job(server, type="sheet", operation="dedupe")    # 7, 8: matches neither of s
        marker = await new_job(server)                              # 9 created, 10 ready
        assert [(e["seq"], e["topic"]) for e in await s.events(1)] == [(10, "job:ready")]
        assert [(e["seq"], e["context"]["jobId"]) for e in await created.events(2)][1] == (9, marker.id)


async def test_a_new_agent_starts_at_the_newest_event_and_resumes_after_its_last_ack(server: Server) -> None:
    token = await server.token("worker", "agent")
    await new_job(server)  # 1, 2: before the agent ever connected
    async with stream(server, token, {"agent": "w1"}) as s:
        assert await s.ready() == {"type": "ready", "position": 2, "head": 2, "calls": True,
                                  "listens": True}
        await new_job(server)
        assert await s.seqs(2) == [3, 4]  # no backlog before the live events
        await new_job(server)
        assert await s.seqs(2) == [5, 6]
        await s.ack(4)
    # The server handled the ack before answering the close, so the cursor is saved.
    assert await call(server, "GET", f"{API}/agents/w1/cursor", token) == (200, {"agent": "w1", "seq": 4})
    await new_job(server)  # 7, 8 while the agent was away
    async with stream(server, token, {"agent": "w1"}) as s:
        assert (await s.ready())["position"] == 4
        assert await s.seqs(4) == [5, 6, 7, 8]  # exactly after the last acked seq
        await s.ack(8)
        await s.ack(3)  # a late, smaller ack never moves the cursor back
    async with stream(server, token, {"agent": "w1"}) as s:
        assert await s.ready() == {"type": "ready", "position": 8, "head": 8, "calls": True,
                                  "listens": True}
        await new_job(server)
        assert await s.seqs(1) == [9]
    async with stream(server, token, {"agent": "w1", "after": 0}) as s:
        assert (await s.ready())["position"] == 0  # an explicit `after` wins over the cursor
        assert await s.seqs(2) == [1, 2]


async def test_an_agent_that_never_acked_resumes_where_it_started(server: Server) -> None:
    token = await server.token("worker", "agent")
    await new_job(server)
    async with stream(server, token, {"agent": "fresh"}) as s:
        assert (await s.ready())["position"] == 2
    await new_job(server)
    async with stream(server, token, {"agent": "fresh"}) as s:
        assert await s.ready() == {"type": "ready", "position": 2, "head": 4, "calls": True,
                                  "listens": True}
        assert await s.seqs(2) == [3, 4]


async def test_agents_of_different_users_have_cursors_of_their_own(server: Server) -> None:
    one, two = await server.token("team-one", "agent"), await server.token("team-two", "agent")
    await new_job(server)
    async with stream(server, one, {"agent": "exporter", "after": 0}) as s:
        await s.ready()
        assert await s.seqs(2) == [1, 2]
        await s.ack(2)
    await new_job(server)
    async with stream(server, two, {"agent": "exporter"}) as s:
        assert (await s.ready())["position"] == 4  # a new agent for team-two, not team-one's cursor
    assert await call(server, "GET", f"{API}/agents/exporter/cursor", one) == (200, {"agent": "exporter", "seq": 2})
    assert await call(server, "GET", f"{API}/agents/exporter/cursor", two) == (200, {"agent": "exporter", "seq": 4})
    assert await server.platform.store.get_cursor("team-one/exporter") == 2


@pytest.mark.parametrize("batch", [False, True], ids=["one-a-frame", "batched"])
async def test_a_slow_client_gets_the_backlog_not_a_dropped_connection(server: Server, batch: bool) -> None:
    server.platform.eventlog.buffer = 5
    await new_job(server)
    async with stream(server, server.admin_token, {"after": 2, "batch": str(batch).lower()}) as s:
        assert (await s.ready())["position"] == 2
        # 100 events in a few big commits, while the client reads nothing.
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(new_job, server)
        assert await server.platform.store.head() == 102
        assert await s.seqs(100) == list(range(3, 103))
        assert not s.ws.closed
        await new_job(server)
        assert await s.seqs(2) == [103, 104]


async def test_a_batched_stream_sends_the_same_events_in_order_in_fewer_frames(server: Server) -> None:
    jobs = [await new_job(server) for _ in range(3)]  # events 1-6
    async with stream(server, server.admin_token, {"after": 0, "batch": "true"}) as s, \
            stream(server, server.admin_token, {"after": 0}) as plain:
        assert await s.ready() == {"type": "ready", "position": 0, "head": 6, "calls": True,
                                  "listens": True}
        await plain.ready()
        backlog = await s.events(6)
        assert s.frames == [6]  # the backlog, read from the store in one go, is one frame
        assert [(e["seq"], e["topic"], e["context"]["jobId"]) for e in backlog] == [
            (seq, topic, job.id) for job, seq in zip(jobs, (1, 3, 5), strict=True)
            for seq, topic in ((seq, "job:created"), (seq + 1, "job:ready"))]
        assert backlog == await plain.events(6)  # the same events, the same JSON
        async with anyio.create_task_group() as tg:  # 100 live events in a few commits
            for _ in range(50):
                tg.start_soon(new_job, server)
        live = await s.events(100)
        assert [e["seq"] for e in live] == list(range(7, 107))  # in order, none left out, none twice
        assert len(s.frames) < 1 + 100
        assert live == await plain.events(100)


async def test_a_batched_frame_stays_under_the_size_limit(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "_BATCH_BYTES", 1)  # every event is over it: one event a frame
    for _ in range(3):
        await new_job(server)
    async with stream(server, server.admin_token, {"after": 0, "batch": "true"}) as s:
        await s.ready()
        assert await s.seqs(6) == [1, 2, 3, 4, 5, 6]
        assert s.frames == [1] * 6
        await new_job(server)
        assert await s.seqs(2) == [7, 8]


async def test_members_see_only_their_own_jobs_events_in_the_stream(server: Server) -> None:
    alice = await server.token("alice")
    async with stream(server, alice, {"after": 0}) as mine, stream(server, server.admin_token, {"after": 0}) as all_:
        await mine.ready()
        await all_.ready()
        await new_job(server, "bob")                                  # 1, 2
        await server.platform.api.as_actor("admin").spaces.create(name="Red")  # 3: about no job
        await new_job(server, "admin")                                # 4, 5
        own = await new_job(server, "alice")                          # 6, 7
        await server.platform.api.as_actor("bob").jobs.cancel(own.id)  # 8: about alice's job
        await new_job(server, "bob")                                  # 9, 10
        await server.platform.api.as_actor("alice").spaces.create(name="Blue")  # 11
        assert [(e["seq"], e["topic"]) for e in await mine.events(5)] == [
            (3, "space:created"), (6, "job:created"), (7, "job:ready"), (8, "job:cancelled"), (11, "space:created")]
        assert await all_.seqs(11) == list(range(1, 12))


async def test_ack_messages_that_are_not_acks_get_an_error_and_the_stream_goes_on(server: Server) -> None:
    token = await server.token("worker", "agent")
    async with stream(server, token, {"agent": "w"}) as s:
        await s.ready()
        for bad in ("hello", "[1]", '{"type": "ack"}', '{"type": "ack", "seq": "x"}', '{"type": "nack", "seq": 1}'):
            await s.ws.send_str(bad)
            message = await s.message()
            assert message["type"] == "error" and message["error"]["code"] == "invalid", (bad, message)
            assert "ack" in message["error"]["message"]
        await new_job(server)
        assert await s.seqs(2) == [1, 2]
    assert await server.platform.store.get_cursor("worker/w") == 0


async def test_an_ack_without_an_agent_is_refused_by_name(server: Server) -> None:
    async with stream(server, server.admin_token, {"after": 0}) as s:
        await s.ready()
        await s.ack(0)
        message = await s.message()
        assert message["type"] == "error" and "agent" in message["error"]["message"]


BAD_STREAMS: dict[str, tuple[Params, int, str, str]] = {
    "negative after": ({"after": "-1"}, 422, "invalid", "after"),
    "after not a number": ({"after": "soon"}, 422, "invalid", "after"),
    "empty topic segment": ({"topic": "job::ready"}, 422, "invalid", "job::ready"),
    "malformed filter": ({"filter": "{"}, 422, "invalid", "filter"),
    "unknown filter key": ({"filter": '{"jbo": "workbook:export"}'}, 422, "invalid", "jbo"),
    "filter not an object": ({"filter": "[1]"}, 422, "invalid", "filter"),
    "agent name with spaces": ({"agent": "my agent"}, 422, "invalid", "agent"),
    "unknown parameter": ({"topics": "job:*"}, 422, "invalid", "topics"),
}


@pytest.mark.parametrize(("params", "status", "code", "names"), list(BAD_STREAMS.values()), ids=list(BAD_STREAMS))
async def test_bad_stream_parameters_are_refused_before_the_upgrade(server: Server, params: Params, status: int,
                                                                    code: str, names: str) -> None:
    await new_job(server)
    head, before = await server.platform.store.head(), await snapshot(server)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with stream(server, server.admin_token, {**params, "agent": params.get("agent", "w")}):
            pass
    assert refused.value.status == status
    status_, body = await call(server, "GET", f"{API}/events/stream", server.admin_token, params=params)
    assert names in assert_error(status_, body, status, code)
    assert await server.platform.store.head() == head
    assert await snapshot(server) == before


async def test_a_plain_get_of_the_stream_is_refused_and_saves_no_cursor(server: Server) -> None:
    await new_job(server)
    before = await snapshot(server)
    status, body = await call(server, "GET", f"{API}/events/stream", server.admin_token, params={"agent": "w"})
    assert_error(status, body, 400, "bad_request")
    assert await snapshot(server) == before
    assert await server.platform.store.get_cursor("admin/w") is None


# -- GET /events ----------------------------------------------------------------------------------------


async def test_events_are_paged_in_order(server: Server) -> None:
    jobs = [await new_job(server) for _ in range(3)]
    t = server.admin_token

    async def page(query: str) -> list[int]:
        status, body = await call(server, "GET", f"{API}/events?{query}", t)
        assert status == 200, body
        return [e["seq"] for e in body["items"]]

    assert await page("after=0&limit=4") == [1, 2, 3, 4]
    assert await page("after=4&limit=4") == [5, 6]
    assert await page("after=6") == []
    assert await page(f"jobId={jobs[1].id}") == [3, 4]
    assert await call(server, "GET", f"{API}/events/head", t) == (200, {"seq": 6})


async def test_members_see_only_their_own_jobs_events_in_the_log(server: Server) -> None:
    alice = await server.token("alice")
    for _ in range(5):
        await new_job(server, "bob")                       # 1-10
    own = await new_job(server, "alice")                   # 11, 12
    await server.platform.api.spaces.create(name="Red")    # 13
    await new_job(server, "bob")                           # 14, 15

    async def page(query: str, token: str = alice) -> list[int]:
        status, body = await call(server, "GET", f"{API}/events?{query}", token)
        assert status == 200, body
        return [e["seq"] for e in body["items"]]

    assert await page("after=0") == [11, 12, 13]
    # A page holds `limit` events the member may see, however many it may not lie before them.
    assert await page("after=0&limit=2") == [11, 12]
    assert await page("after=12&limit=2") == [13]
    assert await page(f"jobId={own.id}") == [11, 12]
    bobs = (await server.platform.api.jobs.list(created_by="bob")).items[0]
    assert await page(f"jobId={bobs.id}") == []
    assert await page("after=0&limit=2", server.admin_token) == [1, 2]
