"""Managing users over a real server: list, revoke and rotate tokens, refused at once on REST, streams and channels.

Both stores (the `server` fixture's), real sockets. A revoke made by another process sharing the store
(another replica, `listener users revoke` on the database) is refused once the server's cached entry runs
out: the tests move the injected clock past AUTH_CACHE_SECONDS instead of waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest

from listener import Platform
from listener.platform.auth import AUTH_CACHE_SECONDS, Users
from listener.platform.stream import REVOKED_CLOSE
from tests.conftest import ManualClock, Server
from tests.platform.test_server import API, assert_error, call
from tests.platform.test_stream import new_job

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def stream(server: Server, token: str, **params: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session, session.ws_connect(
            f"{server.url}{API}/events/stream", params=params) as ws:
        assert (await receive(ws))["type"] == "ready"
        yield ws


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    with anyio.fail_after(5):
        message = await ws.receive()
    assert message.type is aiohttp.WSMsgType.TEXT, (message.type, ws.close_code)
    data: dict[str, Any] = message.json()
    return data


async def closed(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """The socket's close code, once the server has closed it (messages before the close are skipped)."""
    with anyio.fail_after(5):
        while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            pass
    return ws.close_code


def ack_call(job_id: str) -> dict[str, Any]:
    return {"type": "calls", "calls": [{"id": "c1", "method": "POST", "path": f"/jobs/{job_id}/ack", "body": {}}]}


async def test_an_admin_lists_users_and_no_one_else_may(server: Server) -> None:
    alice = await server.token("alice", "member")
    await server.token("worker", "agent")
    status, body = await call(server, "GET", f"{API}/users", server.admin_token)
    assert status == 200
    assert [(u["name"], u["role"]) for u in body["items"]] == [("admin", "admin"), ("alice", "member"),
                                                                ("worker", "agent")]
    assert set(body["items"][0]) == {"id", "name", "role", "createdAt", "rotatedAt", "revokedAt"}, \
        "no token, nor its hash, ever leaves the server"
    for path in ("/users", "/users/alice/revoke", "/users/alice/rotate"):
        status, body = await call(server, "GET" if path == "/users" else "POST", API + path, alice)
        assert_error(status, body, 403, "forbidden")
    assert (await call(server, "GET", f"{API}/users/me", alice))[0] == 200, "refused changes changed nothing"


async def test_a_revoked_token_is_refused_by_rest_at_once_and_rotate_gives_a_new_one(server: Server) -> None:
    alice = await server.token("alice", "member")
    status, body = await call(server, "POST", f"{API}/users/alice/revoke", server.admin_token)
    assert status == 200 and body["name"] == "alice" and body["revokedAt"] is not None
    assert_error(*await call(server, "GET", f"{API}/jobs", alice), 401, "unauthorized")
    assert (await call(server, "POST", f"{API}/users/alice/revoke", server.admin_token))[0] == 200, "idempotent"

    status, body = await call(server, "POST", f"{API}/users/alice/rotate", server.admin_token)
    assert status == 200 and body["user"]["revokedAt"] is None and body["user"]["rotatedAt"] is not None
    new = body["token"]
    assert new.startswith("lst_") and new != alice
    assert (await call(server, "GET", f"{API}/users/me", new))[1]["name"] == "alice"
    status, again = await call(server, "POST", f"{API}/users/alice/rotate", server.admin_token)
    assert_error(*await call(server, "GET", f"{API}/users/me", new), 401, "unauthorized")
    assert (await call(server, "GET", f"{API}/users/me", again["token"]))[0] == 200

    message = assert_error(*await call(server, "POST", f"{API}/users/nobody/revoke", server.admin_token),
                           404, "not_found")
    assert "nobody" in message
    assert_error(*await call(server, "POST", f"{API}/users/bad%20name/rotate", server.admin_token), 422, "invalid")


async def test_the_last_admin_with_a_working_token_cannot_be_revoked(server: Server) -> None:
    status, body = await call(server, "POST", f"{API}/users/admin/revoke", server.admin_token)
    message = assert_error(status, body, 409, "conflict")
    assert "last admin" in message and body["error"]["details"]["reason"] == "last_admin"
    assert (await call(server, "GET", f"{API}/users/me", server.admin_token))[0] == 200

    root = await server.token("root", "admin")
    assert (await call(server, "POST", f"{API}/users/admin/revoke", root))[0] == 200, "another admin works"
    assert_error(*await call(server, "POST", f"{API}/users/root/revoke", root), 409, "conflict")
    # Rotating a revoked admin gives it a working token again, and then either may go.
    status, body = await call(server, "POST", f"{API}/users/admin/rotate", root)
    assert (await call(server, "POST", f"{API}/users/root/revoke", body["token"]))[0] == 200


async def test_an_open_channel_s_calls_are_refused_after_revoke_and_the_socket_closes(server: Server) -> None:
    worker = await server.token("worker", "agent")
    job = await new_job(server)
    async with stream(server, worker, agent="w", topic="nothing:*") as ws:
        assert (await call(server, "POST", f"{API}/users/worker/revoke", server.admin_token))[0] == 200
        await ws.send_json(ack_call(job.id))
        answer = (await receive(ws))["answers"][0]
        assert (answer["id"], answer["status"], answer["error"]["code"]) == ("c1", 401, "unauthorized")
        error = await receive(ws)
        assert error["type"] == "error" and error["error"]["code"] == "unauthorized"
        assert await closed(ws) == REVOKED_CLOSE
    assert (await server.platform.api.jobs.get(job.id)).status.value == "ready", "the refused ack did nothing"


async def test_an_open_stream_gets_no_event_after_its_token_is_rotated(server: Server) -> None:
    alice = await server.token("alice", "member")
    async with stream(server, alice) as ws:
        first = await new_job(server, "alice")
        assert (await receive(ws))["event"]["context"]["jobId"] == first.id
        status, body = await call(server, "POST", f"{API}/users/alice/rotate", server.admin_token)
        assert status == 200
        await new_job(server, "alice")
        while (message := await receive(ws))["type"] == "event":
            assert message["event"]["context"]["jobId"] == first.id, "no event after the rotate goes out"
        assert message["type"] == "error" and message["error"]["code"] == "unauthorized"
        assert await closed(ws) == REVOKED_CLOSE
    async with stream(server, body["token"]) as ws:  # the new token streams
        third = await new_job(server, "alice")
        assert (await receive(ws))["event"]["context"]["jobId"] == third.id


async def test_a_revoke_by_another_process_on_the_store_is_refused_within_the_cache_bound(
        server: Server, db_url: str, clock: ManualClock) -> None:
    worker = await server.token("worker", "agent")
    job = await new_job(server)
    async with stream(server, worker, agent="w", topic="nothing:*") as ws:
        assert (await call(server, "GET", f"{API}/users/me", worker))[0] == 200  # cached on this server now
        # Another replica (or `listener users revoke` on the database) shares the store, not this server's cache.
        async with Platform.open(db_url, clock=clock, sweep_interval=None, retention=None,
                                 system_jobs=False) as other:
            await Users(other.store, clock).revoke("worker")
        clock.advance(AUTH_CACHE_SECONDS)
        assert_error(*await call(server, "GET", f"{API}/users/me", worker), 401, "unauthorized")
        await ws.send_json(ack_call(job.id))
        answer = (await receive(ws))["answers"][0]
        assert (answer["status"], answer["error"]["code"]) == (401, "unauthorized")
        assert await closed(ws) == REVOKED_CLOSE


async def test_a_signed_link_of_a_revoked_user_is_refused(server: Server) -> None:
    alice = await server.token("alice", "member")
    job = await new_job(server, "alice")
    status, link = await call(server, "POST", f"{API}/links", alice, json={"path": f"{API}/jobs/{job.id}/errors.csv"})
    assert status == 200
    assert (await call(server, "GET", link["url"]))[0] == 200
    await call(server, "POST", f"{API}/users/alice/revoke", server.admin_token)
    assert_error(*await call(server, "GET", link["url"]), 401, "unauthorized")
