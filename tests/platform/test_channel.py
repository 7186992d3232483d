"""The worker channel at the protocol level: job calls as frames on the event stream's websocket.

Every answer is what the same call over REST answers (status, body or error), a call sent again with
its id is answered again and not run twice, a bad frame or call harms nothing else, and the stream's
window keeps a socket that must always be read from being sent more than its client took.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest

from listener import JobStatus
from listener.channel import CHANNEL_ROUTES, takes
from listener.platform.server import serve
from tests.conftest import Server
from tests.platform.test_server import API, call, snapshot
from tests.platform.test_stream import new_job

pytestmark = pytest.mark.anyio


class Socket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def message(self, kind: str | None = None) -> dict[str, Any]:
        """The next message (of `kind`, skipping events)."""
        with anyio.fail_after(5):
            while True:
                message: dict[str, Any] = await self.ws.receive_json()
                if kind is None or message["type"] == kind:
                    return message

    async def calls(self, *calls: dict[str, Any]) -> dict[Any, dict[str, Any]]:
        """Send the calls in one frame; their answers by id."""
        await self.ws.send_json({"type": "calls", "calls": list(calls)})
        answers: dict[Any, dict[str, Any]] = {}
        while len(answers) < len(calls):
            for answer in (await self.message("answers"))["answers"]:
                answers[answer["id"]] = answer
        return answers


@asynccontextmanager
async def socket(server: Server, token: str, **params: str) -> AsyncIterator[Socket]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session, session.ws_connect(
            f"{server.url}{API}/events/stream", params={"agent": "w", "topic": "nothing:*", **params}) as ws:
        s = Socket(ws)
        ready = await s.message("ready")
        assert ready["calls"] is True, "the server says it takes calls on this socket"
        yield s


def same_as_rest(answer: dict[str, Any], status: int, body: Any) -> None:
    assert answer["status"] == status, (answer, body)
    if status >= 400:
        assert answer["error"] == body["error"], (answer, body)
    else:
        assert answer.get("body") == body


async def test_calls_in_one_frame_are_answered_as_rest_answers_them(server: Server) -> None:
    token = await server.token("worker", "agent")
    first, second = await new_job(server), await new_job(server)
    async with socket(server, token) as s:
        answers = await s.calls(
            {"id": 1, "method": "POST", "path": f"/jobs/{first.id}/ack", "body": {"info": "Accepted", "progress": 0}},
            {"id": "b", "method": "POST", "path": f"/jobs/{second.id}/ack", "body": {}})
        assert answers[1]["status"] == answers["b"]["status"] == 200
        assert answers[1]["body"]["status"] == "executing" and answers[1]["body"]["info"] == "Accepted"
        answers = await s.calls(
            {"id": 2, "method": "PATCH", "path": f"/jobs/{first.id}", "body": {"progress": 50, "attempt": 1}},
            {"id": 3, "method": "POST", "path": f"/jobs/{first.id}/errors", "body": {"errors": [
                {"item": "row 2", "message": "no email"}]}},
            {"id": 4, "method": "POST", "path": f"/jobs/{second.id}/data", "body": {"rows": [{"a": 1}]}},
            {"id": 5, "method": "POST", "path": f"/jobs/{second.id}/heartbeat", "body": {"attempt": 1}},
            {"id": 6, "method": "POST", "path": f"/jobs/{second.id}/checkpoint", "body": {"state": {"n": 1}}})
        assert answers[2]["body"]["progress"] == 50
        assert answers[3]["body"] == {"total": 1} and answers[4]["body"] == {"total": 1}
        assert answers[5]["status"] == answers[6]["status"] == 200
        answers = await s.calls(
            {"id": 7, "method": "POST", "path": f"/jobs/{first.id}/complete",
             "body": {"outcome": {"message": "Done."}}},
            {"id": 8, "method": "POST", "path": f"/jobs/{second.id}/fail", "body": {"error": "Boom."}})
    for answer, job in ((answers[7], first), (answers[8], second)):
        status, body = await call(server, "GET", f"{API}/jobs/{job.id}", server.admin_token)
        same_as_rest(answer, status, body)
    assert (await server.platform.api.jobs.get(first.id)).status is JobStatus.COMPLETE
    assert (await server.platform.api.jobs.get(second.id)).status is JobStatus.FAILED


@pytest.mark.parametrize("case", ["conflict", "fenced", "invalid_body", "unknown_field", "no_job", "not_a_channel_call",
                                  "member_forbidden", "nul_in_id"])
async def test_every_refusal_is_the_one_rest_gives(server: Server, case: str) -> None:
    token = await server.token("worker", "agent")
    member = await server.token("ann", "member")
    job = await new_job(server)
    await server.platform.api.jobs.ack(job.id)
    method, path, body, who = {
        "conflict": ("POST", f"/jobs/{job.id}/ack", {}, token),
        "fenced": ("POST", f"/jobs/{job.id}/complete", {"attempt": 7}, token),
        "invalid_body": ("PATCH", f"/jobs/{job.id}", {"progress": 101}, token),
        "unknown_field": ("POST", f"/jobs/{job.id}/heartbeat", {"atempt": 1}, token),
        "no_job": ("POST", "/jobs/jb_nope/ack", {}, token),
        "not_a_channel_call": ("POST", f"/jobs/{job.id}/cancel", {}, token),
        "member_forbidden": ("POST", f"/jobs/{job.id}/complete", {}, member),
        "nul_in_id": ("POST", "/jobs/jb%00x/ack", {}, token),
    }[case]
    async with socket(server, who) as s:
        before = await snapshot(server)
        (answer,) = (await s.calls({"id": "x", "method": method, "path": path, "body": body})).values()
        assert await snapshot(server) == before, "a refused call changes nothing"
    status, rest = await call(server, method, API + path, who, json=body)
    if case == "not_a_channel_call":  # REST has it; the channel says it is not one of its calls
        assert status == 200 and answer["status"] == 404 and answer["error"]["code"] == "not_found"
        assert "over the worker channel" in answer["error"]["message"]
        return
    same_as_rest(answer, status, rest)


async def test_a_call_sent_again_with_its_id_gets_its_answer_and_does_not_run_twice(server: Server) -> None:
    token = await server.token("worker", "agent")
    job = await new_job(server)
    ack = {"id": "s.1", "method": "POST", "path": f"/jobs/{job.id}/ack", "body": {}}
    async with socket(server, token) as s:
        first = (await s.calls(ack))["s.1"]
    async with socket(server, token) as s:  # the answer was lost with the socket: the worker sends it again
        again = (await s.calls(ack))["s.1"]
        other = (await s.calls({**ack, "id": "s.2"}))["s.2"]
    assert first == again and first["status"] == 200
    assert other["status"] == 409, "a new call is a new claim"
    events = await server.platform.api.events.list(job_id=job.id)
    assert [e.topic for e in events] == ["job:created", "job:ready", "job:updated"], "acked once"
    async with socket(server, await server.token("bob", "agent")) as s:  # ids are per user
        assert (await s.calls(ack))["s.1"]["status"] == 409


async def test_a_bad_frame_or_call_is_refused_and_harms_nothing_else(server: Server) -> None:
    token = await server.token("worker", "agent")
    job = await new_job(server)
    async with socket(server, token) as s, socket(server, token) as other:
        await s.ws.send_str('{"type": "calls", "calls": [')
        assert (await s.message("error"))["error"]["code"] == "invalid"
        await s.ws.send_json({"type": "calls", "calls": "no"})
        assert "calls" in (await s.message("error"))["error"]["message"]
        await s.ws.send_json({"type": "calls", "calls": [{"method": "POST", "path": "/x"}]})
        assert "id" in (await s.message("error"))["error"]["message"]
        answers = await s.calls({"id": 1, "path": f"/jobs/{job.id}/ack"}, {"id": 2, "method": "POST", "path": 7})
        assert answers[1]["status"] == answers[2]["status"] == 422
        assert {answers[1]["error"]["details"][0]["field"], answers[2]["error"]["details"][0]["field"]} == {
            "method", "path"}
        # The socket still works, and so does the other one.
        ok = await other.calls({"id": 3, "method": "POST", "path": f"/jobs/{job.id}/ack", "body": {}})
        assert ok[3]["status"] == 200
        assert (await s.calls({"id": 4, "method": "POST", "path": f"/jobs/{job.id}/heartbeat", "body": {}}))[4][
            "status"] == 200


async def test_the_window_bounds_the_events_sent_ahead_and_answers_always_get_through(server: Server) -> None:
    token = await server.token("worker", "agent")
    jobs = [await new_job(server) for _ in range(5)]
    async with socket(server, token, batch="true", window="2", topic="job:ready", after="0") as s:
        sent = []
        while len(sent) < 2:
            sent += (await s.message("events"))["events"]
        assert len(sent) == 2, "no more than the window"
        # Unread events wait on the server; a call's answer does not wait behind them.
        answer = (await s.calls({"id": 1, "method": "POST", "path": f"/jobs/{jobs[0].id}/ack", "body": {}}))[1]
        assert answer["status"] == 200
        await s.ws.send_json({"type": "window", "events": 3})
        while len(sent) < 5:
            sent += (await s.message("events"))["events"]
        assert [e["context"]["jobId"] for e in sent] == [j.id for j in jobs]
        await s.ws.send_json({"type": "window", "events": 0})
        assert "window" in (await s.message("error"))["error"]["message"]


def test_the_channel_carries_creates_and_the_moves_of_a_running_job_and_nothing_else() -> None:
    assert takes("POST", "/jobs/jb_1/ack") and takes("PATCH", "/jobs/jb%2F1") and takes("POST", "/jobs/x/data")
    assert takes("POST", "/jobs")
    assert not takes("GET", "/jobs/jb_1") and not takes("GET", "/jobs") and not takes("POST", "/jobs/a/b/ack")
    assert len(CHANNEL_ROUTES) == 9


async def test_a_create_sent_again_is_the_same_job_on_this_server_after_a_restart_or_on_another(
        server: Server) -> None:
    token = await server.token("ann", "member")
    create = {"id": "c.1", "method": "POST", "path": "/jobs", "body": {"type": "workbook", "operation": "export",
                                                                      "metadata": {"n": 1}}}
    async with socket(server, token) as s:
        first = (await s.calls(create))["c.1"]
    status, rest = await call(server, "GET", f"{API}/jobs/{first['body']['id']}", token)
    assert first["status"] == 202 and status == 200 and first["body"] == rest, "answered as REST's create"
    assert rest["createdBy"] == "ann"
    async with socket(server, token) as s:  # the answer was lost with the socket: sent again, answered from memory
        assert (await s.calls(create))["c.1"] == first
    # Another server (a replica, or this one restarted) has not seen the call: the create's key finds the job.
    async with anyio.create_task_group() as tg:
        port = await tg.start(functools.partial(serve, server.platform, port=0, users=server.users,
                                                shutdown_timeout=5))
        other = Server(f"http://127.0.0.1:{port}", server.platform, server.users, server.admin_token)
        async with socket(other, token) as s:
            elsewhere = (await s.calls(create))["c.1"]
            another = (await s.calls({**create, "id": "c.2"}))["c.2"]
        tg.cancel_scope.cancel()
    assert elsewhere["status"] == 202 and elsewhere["body"]["id"] == first["body"]["id"]
    assert another["status"] == 202 and another["body"]["id"] != first["body"]["id"], "a new call is a new job"
    assert (await server.platform.api.jobs.list()).total == 2
    bad = {"id": "c.3", "method": "POST", "path": "/jobs", "body": {"type": "workbook"}}
    async with socket(server, token) as s:
        before = await snapshot(server)
        refused = (await s.calls(bad))["c.3"]
        assert await snapshot(server) == before
    status, rest = await call(server, "POST", f"{API}/jobs", token, json=bad["body"])
    same_as_rest(refused, status, rest)


async def test_the_answers_kept_for_calls_sent_again_are_bounded_in_number_and_size() -> None:
    from listener.platform.channel import Answers

    runs: list[str] = []

    def serve(answer: str) -> Any:
        async def run() -> str:
            runs.append(answer)
            return answer
        return run

    answers = Answers(size=3, max_bytes=10)
    for n in range(5):
        assert await answers.once(("u", str(n)), serve(f"a{n}")) == f"a{n}"
    assert await answers.once(("u", "4"), serve("again")) == "a4", "a recent one is answered from memory"
    assert await answers.once(("u", "0"), serve("again")) == "again", "the oldest were forgotten"
    assert answers.bytes <= 10 and runs == ["a0", "a1", "a2", "a3", "a4", "again"]
    assert await answers.once(("u", "big"), serve("x" * 50)) == "x" * 50
    assert answers.bytes == 0, "an answer larger than the budget is not kept"
