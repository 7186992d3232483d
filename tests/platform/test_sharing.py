"""An agent's sockets share its job:ready events: the group's rules, then over a real server and websockets."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio
import pytest

from listener import JobStatus, Listener, Outcome
from listener.client import Client, run_listener
from listener.models import Event, EventContext
from listener.platform.sharing import AgentGroup, AgentGroups
from tests.conftest import Server
from tests.platform.test_server import API, assert_error, call, snapshot
from tests.platform.test_stream import Stream, new_job, stream


def event(seq: int, topic: str = "job:ready", job_id: str | None = None) -> Event:
    return Event.trusted(id=f"ev_{seq:012d}", seq=seq, topic=topic, context=EventContext(job_id=job_id or f"jb_{seq}"),
                         payload={}, created_at=datetime.now(UTC))


def everything(_: Event) -> bool:
    return True


def test_each_ready_job_goes_to_one_socket_the_least_loaded_and_other_events_to_all() -> None:
    group = AgentGroup("admin/w")
    a, b = group.join(everything, 0, 0), group.join(everything, 0, 0)
    # a reads first: a tie goes to the reader, then the other socket has fewer in hand.
    assert [group.take(a, event(seq), True) for seq in (1, 2, 3, 4)] == [True, False, True, False]
    assert group.take(a, event(5, "job:updated"), True)
    assert [group.take(b, event(seq), True) for seq in (1, 2, 3, 4)] == [False, True, False, True]
    assert group.take(b, event(5, "job:updated"), True)
    assert a.pending == {1: "jb_1", 3: "jb_3"} and b.pending == {2: "jb_2", 4: "jb_4"}


def test_a_socket_past_the_event_or_not_wanting_it_is_never_chosen() -> None:
    group = AgentGroup("admin/w")
    ahead = group.join(everything, 10, 0)  # resumed past seq 5: it will never read it
    picky = group.join(lambda e: e.context.job_id != "jb_6", 0, 0)
    reader = group.join(everything, 0, 0)
    reader.pending = {1: "jb_1", 2: "jb_2"}  # busier than both others
    assert group.take(reader, event(5), True) is False and group.take(picky, event(5), True) is True
    assert group.take(reader, event(6), True) is True  # picky does not want jb_6, ahead is past it
    assert 6 not in ahead.pending and 6 not in picky.pending


def test_the_cursor_never_passes_a_ready_job_another_socket_holds() -> None:
    group = AgentGroup("admin/w")
    a, b = group.join(everything, 0, 0), group.join(everything, 0, 0)
    assert [group.take(a, event(seq), True) for seq in (1, 2, 3)] == [True, False, True]
    assert group.take(b, event(1), True) is False and group.take(b, event(2), True) is True
    assert group.ack(a, 3) is None  # b has acked nothing: the cursor stays at 0
    assert group.ack(b, 1) == 1  # b handled nothing up to 1 (its first is 2): 1 is safe
    assert group.ack(b, 3) == 3
    assert group.ack(a, 2) is None  # late and smaller: nothing moves back


def test_a_socket_sent_nothing_or_that_acked_all_it_was_sent_does_not_hold_the_cursor_back() -> None:
    group = AgentGroup("admin/w")
    busy = group.join(everything, 0, 0)
    idle = group.join(lambda e: e.context.job_id == "jb_none", 0, 0)
    resumed = group.join(everything, 4, 0)  # resumed past the cursor: what it got before 4 is not known handled
    for seq in (1, 2, 3, 4, 5, 6):
        assert group.take(busy, event(seq, "job:updated"), True) is True
        assert group.take(idle, event(seq, "job:updated"), False) is False
    assert [group.take(resumed, event(seq, "job:updated"), True) for seq in (5, 6)] == [True, True]
    assert group.ack(busy, 6) is None  # resumed has acked nothing yet: 0 still
    assert group.ack(resumed, 5) == 5
    assert group.ack(resumed, 6) == 6  # idle, sent nothing, does not hold it back


def test_a_socket_that_leaves_gives_back_what_it_held_and_the_last_one_gives_nothing() -> None:
    groups = AgentGroups()
    group, formed = groups.get("admin/w")
    assert formed and groups.get("admin/w") == (group, False)
    a, b = group.join(everything, 0, 0), group.join(everything, 0, 0)
    assert [group.take(a, event(seq), True) for seq in (1, 2, 3, 4)] == [True, False, True, False]
    group.ack(a, 1)
    # b held nothing it had read, but it was chosen for 2 and 4 and had not read them yet.
    assert groups.leave(group, b) == ["jb_2", "jb_4"]
    assert groups.leave(group, a) == []  # the cursor (0) is still before jb_3: the next socket gets it
    assert groups.get("admin/w")[1] is True  # the group ended with its last socket


# -- over a real server --------------------------------------------------------------------


async def ready_jobs(s: Stream, until: str = "space:created") -> dict[str, int]:
    """job id → seq of the job:ready events `s` gets before the next `until` event (batched or not)."""
    out: dict[str, int] = {}
    while True:
        message = await s.message()
        for e in [message["event"]] if message["type"] == "event" else message["events"]:
            if e["topic"] == until:
                return out
            if e["topic"] == "job:ready":
                out[e["context"]["jobId"]] = e["seq"]


async def acked(s: Stream, seq: int) -> None:
    """Ack `seq`, and know the server has handled it: it answers the next message, a bad one, in order."""
    await s.ack(seq)
    await s.ws.send_json({"type": "sync"})
    assert (await s.message())["type"] == "error"


async def cursor(server: Server, token: str, agent: str) -> Any:
    status, body = await call(server, "GET", f"{API}/agents/{agent}/cursor", token)
    assert status == 200, body
    return body["seq"]


@pytest.mark.anyio
async def test_two_sockets_of_one_agent_split_the_ready_jobs_and_both_get_the_rest(server: Server) -> None:
    token = await server.token("worker", "agent")
    params = {"agent": "w", "batch": "true", "share": "true"}
    async with stream(server, token, params) as a, stream(server, token, params) as b:
        await a.ready()
        await b.ready()
        jobs = {(await new_job(server)).id for _ in range(6)}
        await server.platform.api.spaces.create(name="marker")
        got_a, got_b = await ready_jobs(a), await ready_jobs(b)
    assert got_a and got_b and not set(got_a) & set(got_b)
    assert set(got_a) | set(got_b) == jobs
    # A socket of another agent, or of this one that does not share, still gets every ready job.
    for params in ({"agent": "other", "after": 0}, {"agent": "w", "after": 0}):
        async with stream(server, token, params) as other:
            await other.ready()
            assert set(await ready_jobs(other)) == jobs


@pytest.mark.anyio
async def test_sharing_needs_an_agent(server: Server) -> None:
    before = await snapshot(server)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with stream(server, server.admin_token, {"share": "true"}):
            pass
    assert refused.value.status == 422
    status, body = await call(server, "GET", f"{API}/events/stream", server.admin_token, params={"share": "true"})
    assert "share" in assert_error(status, body, 422, "invalid")
    assert await snapshot(server) == before
    async with Client(server.url, token=server.admin_token) as client:
        with pytest.raises(ValueError, match="agent"):
            client.stream(share=True)


@pytest.mark.anyio
async def test_a_socket_that_goes_away_holding_ready_jobs_has_them_announced_to_the_others(server: Server) -> None:
    token = await server.token("worker", "agent")
    async with stream(server, token, {"agent": "w", "share": "true"}) as a:
        await a.ready()
        async with stream(server, token, {"agent": "w", "share": "true"}) as b:
            await b.ready()
            first, second = await new_job(server), await new_job(server)  # 1-4
            await server.platform.api.spaces.create(name="marker")  # 5
            got_a, got_b = await ready_jobs(a), await ready_jobs(b)
            assert len(got_a) == len(got_b) == 1 and {*got_a, *got_b} == {first.id, second.id}
            held = min(got_b.values())
            before = await server.platform.api.jobs.get(next(iter(got_b)))
            server.platform.clock.advance(5)  # type: ignore[attr-defined]
            await acked(a, 5)
            await acked(b, held - 1)
            assert await cursor(server, token, "w") == held - 1  # not past what b holds
        # b went away without acking: its job is still ready, and a is told of it again.
        (job_id,) = got_b
        announced = await a.events(1)
        assert [(e["topic"], e["context"]["jobId"]) for e in announced] == [("job:ready", job_id)]
        assert announced[0]["seq"] == 6
        job = await server.platform.api.jobs.get(job_id)
        assert job.status.value == "ready"
        assert job.updated_at == before.updated_at, "announcing the job again changed nothing about it"
        assert datetime.fromisoformat(announced[0]["createdAt"]) > job.updated_at, "the event is new, though"
        await acked(a, 6)
        assert await cursor(server, token, "w") == 6


@pytest.mark.anyio
async def test_a_socket_resuming_past_the_cursor_has_the_ready_jobs_in_between_announced(server: Server) -> None:
    token = await server.token("worker", "agent")
    async with stream(server, token, {"agent": "w", "share": "true"}) as s:
        await s.ready()
        job = await new_job(server)  # 1 created, 2 ready
        done = await new_job(server)  # 3, 4
        assert await s.seqs(4) == [1, 2, 3, 4]
    await server.platform.api.jobs.ack(done.id)  # 5: claimed meanwhile, so not announced again
    assert await cursor(server, token, "w") == 0  # nothing was acked
    # The client reconnects after what it received, as EventStream does; the server that knew what it held is new.
    async with stream(server, token, {"agent": "w", "after": 4, "share": "true"}) as s:
        await s.ready()
        announced = await s.events(2)
        assert [(e["seq"], e["topic"], e["context"]["jobId"]) for e in announced] == [
            (5, "job:updated", done.id), (6, "job:ready", job.id)]


@pytest.mark.anyio
async def test_two_workers_of_one_agent_each_run_some_jobs_and_no_job_reaches_both(server: Server) -> None:
    seen: list[tuple[str, str]] = []

    def worker(name: str) -> Listener:
        listener = Listener(name)

        @listener.on("job:ready", job="workbook:export")
        async def run(event: Event) -> None:
            job_id = event.context.job_id
            assert job_id is not None
            seen.append((name, job_id))
            await event.api.jobs.ack(job_id)
            await event.api.jobs.complete(job_id, outcome=Outcome(message=f"Done by {name}."))

        return listener

    async with Client(server.url, token=server.admin_token) as one, \
            Client(server.url, token=server.admin_token) as two, anyio.create_task_group() as tg:
        await tg.start(functools.partial(run_listener, one, worker("one"), agent="shared"))
        await tg.start(functools.partial(run_listener, two, worker("two"), agent="shared"))
        jobs = [await one.jobs.create(type="workbook", operation="export") for _ in range(20)]
        done = [await job.wait(timeout=10) for job in jobs]
        tg.cancel_scope.cancel()
    assert all(job.status is JobStatus.COMPLETE for job in done)
    assert sorted(job_id for _, job_id in seen) == sorted(job.id for job in jobs)  # one delivery each: no lost ack race
    assert {name for name, _ in seen} == {"one", "two"}


def test_choices_every_socket_has_passed_are_forgotten() -> None:
    group = AgentGroup("admin/w")
    a, b = group.join(everything, 0, 0), group.join(everything, 0, 0)
    for seq in range(1, 3001):
        group.take(a, event(seq), True)
        group.take(b, event(seq), True)
        group.ack(a, seq)
        group.ack(b, seq)
    assert len(group._chosen) <= 1024
    stuck = group.join(everything, 3000, 3000)  # reads nothing more: what it may still read is kept
    for seq in range(3001, 6001):
        group.take(a, event(seq), True)
    assert len(group._chosen) > 1024 and min(group._chosen) > 3000
    assert sum(seq in stuck.pending for seq in range(3001, 6001)) == len(stuck.pending) > 0
