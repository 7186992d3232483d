"""Bearer tokens and roles over a real server: who may call what, and what members cannot see."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest

from listener import Job, Outcome, Platform
from listener.models import new_id
from listener.platform.auth import Users
from listener.platform.server import serve
from listener.platform.store.sqlite import SqliteStore
from tests.conftest import ManualClock, Server
from tests.platform.test_server import API, assert_error, call, snapshot

pytestmark = pytest.mark.anyio

ROLES = ("admin", "member", "agent", "none", "bad")
NAMES = {"admin": "admin", "member": "alice", "agent": "worker"}
CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}


@dataclass
class Actors:
    server: Server
    tokens: dict[str, str | None]  # by role; "none" sends no header, "bad" a token nobody has
    bob: str  # another member


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def actors(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Actors]:
    """One server for the whole matrix (each case makes the objects it needs, so cases stay independent)."""
    db = tmp_path_factory.mktemp("auth") / "listener.db"
    async with Platform.open(str(db), clock=ManualClock()) as platform, anyio.create_task_group() as tg:
        users = Users(platform.store, platform.clock)
        admin = await users.ensure_admin()
        assert admin is not None
        port = await tg.start(functools.partial(serve, platform, port=0, users=users, shutdown_timeout=5))
        server = Server(f"http://127.0.0.1:{port}", platform, users, admin)
        tokens: dict[str, str | None] = {
            "admin": admin,
            "member": await server.token("alice", "member"),
            "agent": await server.token("worker", "agent"),
            "none": None,
            "bad": "lst_" + "x" * 43,
        }
        yield Actors(server, tokens, await server.token("bob", "member"))
        tg.cancel_scope.cancel()


# -- the matrix ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    body: Any = None
    job: str | None = None  # the state of the job the path names ({job}), if it names one
    owner: str = "own"  # whose job: the caller's ("own") or another member's ("other")


_n = itertools.count()
OPS: dict[str, Op] = {
    "jobs read: get own job": Op("GET", "/jobs/{job}", job="ready"),
    "jobs read: get other's job": Op("GET", "/jobs/{job}", job="ready", owner="other"),
    "jobs read: list": Op("GET", "/jobs?status=ready&limit=100"),
    "jobs create": Op("POST", "/jobs", {"type": "workbook", "operation": "export"}),
    "jobs operate: ack own job": Op("POST", "/jobs/{job}/ack", {"progress": 1}, job="ready"),
    "jobs operate: ack other's job": Op("POST", "/jobs/{job}/ack", {}, job="ready", owner="other"),
    "jobs operate: update own job": Op("PATCH", "/jobs/{job}", {"progress": 50}, job="executing"),
    "jobs operate: update other's job": Op("PATCH", "/jobs/{job}", {"progress": 50}, job="executing", owner="other"),
    "jobs operate: complete own job": Op("POST", "/jobs/{job}/complete", {}, job="executing"),
    "jobs operate: complete other's job": Op("POST", "/jobs/{job}/complete", {}, job="executing", owner="other"),
    "jobs operate: fail own job": Op("POST", "/jobs/{job}/fail", {"error": "x"}, job="executing"),
    "jobs operate: fail other's job": Op("POST", "/jobs/{job}/fail", {"error": "x"}, job="executing", owner="other"),
    "jobs cancel: own job": Op("POST", "/jobs/{job}/cancel", {}, job="ready"),
    "jobs cancel: other's job": Op("POST", "/jobs/{job}/cancel", {}, job="ready", owner="other"),
    "jobs execute: own job": Op("POST", "/jobs/{job}/execute", job="created"),
    "jobs execute: other's job": Op("POST", "/jobs/{job}/execute", job="created", owner="other"),
    "jobs acknowledge: own job": Op("POST", "/jobs/{job}/outcome/acknowledge", job="complete"),
    "jobs acknowledge: other's job": Op("POST", "/jobs/{job}/outcome/acknowledge", job="complete", owner="other"),
    "jobs delete: own job": Op("DELETE", "/jobs/{job}", job="ready"),
    "jobs delete: other's job": Op("DELETE", "/jobs/{job}", job="ready", owner="other"),
    "spaces: create": Op("POST", "/spaces", {"name": "Red"}),
    "spaces: list": Op("GET", "/spaces"),
    "spaces: get": Op("GET", "/spaces/{space}"),
    "workbooks: create": Op("POST", "/workbooks", {"name": "W", "sheets": [{"name": "S"}]}),
    "workbooks: list": Op("GET", "/workbooks"),
    "workbooks: get": Op("GET", "/workbooks/{workbook}"),
    "workbooks: delete": Op("DELETE", "/workbooks/{workbook}"),
    "sheets: list": Op("GET", "/sheets?workbookId={workbook}"),
    "sheets: get": Op("GET", "/sheets/{sheet}"),
    "records: get": Op("GET", "/sheets/{sheet}/records"),
    "records: insert": Op("POST", "/sheets/{sheet}/records", {"records": [{"email": "b@x.io"}]}),
    "records: update": Op("PATCH", "/sheets/{sheet}/records", {"records": [{"id": "{record}", "values": {}}]}),
    "records: delete": Op("POST", "/sheets/{sheet}/records/delete", {"ids": ["{record}"]}),
    "actions: trigger": Op("POST", "/actions/trigger", {"sourceId": "{workbook}", "operation": "export"}),
    "events: list": Op("GET", "/events?after=0&limit=10"),
    "events: head": Op("GET", "/events/head"),
    "events: stream": Op("WS", "/events/stream?after=0"),
    "agents: cursor": Op("GET", "/agents/worker/cursor"),
    "users: create": Op("POST", "/users", {"name": "user{n}", "role": "member"}),
    "users: me": Op("GET", "/users/me"),
    "openapi.json": Op("GET", "/openapi.json"),
    "health": Op("GET", "/health"),
}

# What each role gets. Members see only the jobs they created: another member's job answers 404
# as if it did not exist, except for the operators' moves (ack/update/complete/fail), which a
# member may never make (403). Only health answers without a valid token.
#                                          admin member agent none bad
MATRIX: dict[str, tuple[int, int, int, int, int]] = {
    "jobs read: get own job":               (200, 200, 200, 401, 401),
    "jobs read: get other's job":           (200, 404, 200, 401, 401),
    "jobs read: list":                      (200, 200, 200, 401, 401),
    "jobs create":                          (202, 202, 202, 401, 401),
    "jobs operate: ack own job":            (200, 403, 200, 401, 401),
    "jobs operate: ack other's job":        (200, 403, 200, 401, 401),
    "jobs operate: update own job":         (200, 403, 200, 401, 401),
    "jobs operate: update other's job":     (200, 403, 200, 401, 401),
    "jobs operate: complete own job":       (200, 403, 200, 401, 401),
    "jobs operate: complete other's job":   (200, 403, 200, 401, 401),
    "jobs operate: fail own job":           (200, 403, 200, 401, 401),
    "jobs operate: fail other's job":       (200, 403, 200, 401, 401),
    "jobs cancel: own job":                 (200, 200, 200, 401, 401),
    "jobs cancel: other's job":             (200, 404, 200, 401, 401),
    "jobs execute: own job":                (200, 200, 200, 401, 401),
    "jobs execute: other's job":            (200, 404, 200, 401, 401),
    "jobs acknowledge: own job":            (200, 200, 200, 401, 401),
    "jobs acknowledge: other's job":        (200, 404, 200, 401, 401),
    "jobs delete: own job":                 (204, 204, 204, 401, 401),
    "jobs delete: other's job":             (204, 404, 204, 401, 401),
    "spaces: create":                       (201, 201, 201, 401, 401),
    "spaces: list":                         (200, 200, 200, 401, 401),
    "spaces: get":                          (200, 200, 200, 401, 401),
    "workbooks: create":                    (201, 201, 201, 401, 401),
    "workbooks: list":                      (200, 200, 200, 401, 401),
    "workbooks: get":                       (200, 200, 200, 401, 401),
    "workbooks: delete":                    (204, 403, 204, 401, 401),
    "sheets: list":                         (200, 200, 200, 401, 401),
    "sheets: get":                          (200, 200, 200, 401, 401),
    "records: get":                         (200, 200, 200, 401, 401),
    "records: insert":                      (201, 201, 201, 401, 401),
    "records: update":                      (200, 200, 200, 401, 401),
    "records: delete":                      (200, 200, 200, 401, 401),
    "actions: trigger":                     (202, 202, 202, 401, 401),
    "events: list":                         (200, 200, 200, 401, 401),
    "events: head":                         (200, 200, 200, 401, 401),
    "events: stream":                       (101, 101, 101, 401, 401),
    "agents: cursor":                       (200, 403, 200, 401, 401),
    "users: create":                        (201, 403, 403, 401, 401),
    "users: me":                            (200, 200, 200, 401, 401),
    "openapi.json":                         (200, 200, 200, 401, 401),
    "health":                               (200, 200, 200, 200, 200),
}  # fmt: skip

CASES = [(op, role, MATRIX[op][i]) for op in OPS for i, role in enumerate(ROLES)]


async def make_job(actors: Actors, owner: str, state: str) -> Job:
    api = actors.server.platform.api
    job = await api.as_actor(owner).jobs.create(type="workbook", operation="export",
                                                trigger="manual" if state == "created" else "immediate")
    if state in ("executing", "complete"):
        job = await api.jobs.ack(job.id)
    if state == "complete":
        job = await api.jobs.complete(job.id, outcome=Outcome(message="Done."))
    assert job.status == state
    return job


async def fill(actors: Actors, op: Op, role: str) -> tuple[str, Any, Job | None]:
    """The op's path and body with fresh objects of their own, and the job it names."""
    api = actors.server.platform.api.as_actor("admin")
    values: dict[str, Any] = {"n": next(_n)}
    job = None
    if op.job is not None:
        owner = "bob" if op.owner == "other" else NAMES.get(role, "alice")
        job = await make_job(actors, owner, op.job)
        values["job"] = job.id
    if "{space}" in op.path:
        values["space"] = (await api.spaces.create(name="S")).id
    if any(k in op.path + str(op.body) for k in ("{workbook}", "{sheet}", "{record}")):
        wb = await api.workbooks.create(name="W", sheets=[{"name": "Contacts", "fields": [{"key": "email"}]}],
                                        actions=[{"operation": "export", "label": "Export"}])
        values["workbook"], values["sheet"] = wb.id, wb.sheets[0].id
        values["record"] = (await api.records.insert(wb.sheets[0].id, [{"email": "a@x.io"}]))[0].id

    def sub(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**values)
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        return value

    return sub(op.path), sub(op.body), job


async def open_stream(server: Server, path: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as session:
        try:
            async with session.ws_connect(server.url + API + path) as ws:
                with anyio.fail_after(5):
                    ready = await ws.receive_json()
                assert ready["type"] == "ready"
                return 101, ready
        except aiohttp.WSServerHandshakeError as exc:
            status = exc.status
        # The handshake was refused: the same URL without the upgrade tells why.
        async with session.get(server.url + API + path) as r:
            assert r.status == status
            return status, await r.json()


@pytest.mark.parametrize(("op", "role", "expected"), CASES, ids=[f"{role} | {op}" for op, role, _ in CASES])
async def test_auth_matrix(actors: Actors, op: str, role: str, expected: int) -> None:
    server = actors.server
    path, body, job = await fill(actors, OPS[op], role)
    head, before = await server.platform.store.head(), await snapshot(server)
    token = actors.tokens[role]
    if OPS[op].method == "WS":
        status, answer = await open_stream(server, path, token)
    else:
        status, answer = await call(server, OPS[op].method, API + path, token,
                                    **({"json": body} if body is not None else {}))
    if expected >= 400:
        message = assert_error(status, answer, expected, CODES[expected])
        if expected == 404 and job is not None:
            # As if the job did not exist: the same answer as for an id nobody has.
            assert message == f"Job {job.id} not found."
        assert await server.platform.store.head() == head
        assert await snapshot(server) == before
        if job is not None:
            assert await server.platform.api.jobs.get(job.id) == job
    else:
        assert status == expected, answer


# -- tokens -------------------------------------------------------------------------------------------


async def test_tokens_are_stored_only_as_their_hash(server: Server) -> None:
    status, created = await call(server, "POST", f"{API}/users", server.admin_token,
                                 json={"name": "dave", "role": "agent"})
    assert status == 201
    tokens = {"admin": server.admin_token, "dave": created["token"], "erin": await server.token("erin")}
    database = await snapshot(server)
    rows = database["users"]
    assert {r[1] for r in rows} == set(tokens)
    for _, name, _, token_hash, _ in rows:
        assert token_hash == hashlib.sha256(tokens[name].encode()).hexdigest()
    for token in tokens.values():
        assert token not in repr(database), "no table holds a token"
    if isinstance(server.platform.store, SqliteStore):
        path = server.platform.store.path
        files = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert all(token.encode() not in files for token in tokens.values()), "nor the file or its WAL"
    # ... and the hash itself is not a token: sending it gets nowhere.
    status, body = await call(server, "GET", f"{API}/users/me", rows[0][3])
    assert_error(status, body, 401, "unauthorized")


async def test_a_new_user_gets_its_token_once(server: Server) -> None:
    status, created = await call(server, "POST", f"{API}/users", server.admin_token, json={"name": "frank"})
    assert status == 201 and set(created) == {"user", "token"}
    assert created["user"]["role"] == "member" and created["token"].startswith("lst_")
    status, me = await call(server, "GET", f"{API}/users/me", created["token"])
    assert status == 200 and me == created["user"] and "token" not in str(me)
    status, body = await call(server, "POST", f"{API}/users", created["token"], json={"name": "mallory",
                                                                                     "role": "admin"})
    assert "admin" in assert_error(status, body, 403, "forbidden")
    assert await server.users.get("mallory") is None


HEADERS = {
    "no header": (None, 401),
    "empty bearer": ("Bearer ", 401),
    "another scheme": ("Basic {token}", 401),
    "token alone": ("{token}", 401),
    "lowercase scheme": ("bearer {token}", 200),
    "extra spaces": ("Bearer   {token}  ", 200),
    "token one character short": ("Bearer {short}", 401),
}


@pytest.mark.parametrize(("header", "expected"), list(HEADERS.values()), ids=list(HEADERS))
async def test_authorization_header_forms(server: Server, header: str | None, expected: int) -> None:
    token = server.admin_token
    headers = {"Authorization": header.format(token=token, short=token[:-1])} if header is not None else {}
    async with aiohttp.ClientSession(headers=headers) as session, session.get(f"{server.url}{API}/jobs") as r:
        body = await r.json()
    if expected == 401:
        assert_error(r.status, body, 401, "unauthorized")
    else:
        assert r.status == 200 and body["total"] == 0


# -- what a member sees --------------------------------------------------------------------------------


async def test_a_member_sees_only_its_own_jobs(server: Server) -> None:
    alice, bob = await server.token("alice"), await server.token("bob")
    agent = await server.token("worker", "agent")
    api = server.platform.api
    mine = [await api.as_actor("alice").jobs.create(type="workbook", operation="export") for _ in range(2)]
    theirs = await api.as_actor("bob").jobs.create(type="workbook", operation="export")
    admins = await api.as_actor("admin").jobs.create(type="sheet", operation="dedupe")

    async def listed(token: str, query: str = "") -> tuple[list[str], int]:
        status, page = await call(server, "GET", f"{API}/jobs{query}", token)
        assert status == 200, page
        return [j["id"] for j in page["items"]], page["total"]

    own = ([mine[1].id, mine[0].id], 2)
    assert await listed(alice) == own
    assert await listed(alice, "?createdBy=bob") == own  # asking for bob's jobs does not show them
    assert await listed(alice, "?status=ready&limit=1") == ([mine[1].id], 2)
    assert await listed(bob) == ([theirs.id], 1)
    everything = ([admins.id, theirs.id, mine[1].id, mine[0].id], 4)
    assert await listed(server.admin_token) == everything
    assert await listed(agent) == everything

    # Bob's job by id, and cancelling it, answer exactly as for a job that does not exist.
    status, hidden = await call(server, "GET", f"{API}/jobs/{theirs.id}", alice)
    status_none, missing = await call(server, "GET", f"{API}/jobs/jb_nope", alice)
    assert (status, status_none) == (404, 404)
    assert hidden["error"]["message"].replace(theirs.id, "jb_nope") == missing["error"]["message"]
    status, body = await call(server, "POST", f"{API}/jobs/{theirs.id}/cancel", alice, json={})
    assert_error(status, body, 404, "not_found")
    assert await api.jobs.get(theirs.id) == theirs
    status, body = await call(server, "POST", f"{API}/jobs/{theirs.id}/cancel", bob, json={})
    assert (status, body["status"]) == (200, "cancelled")


# -- no probing: another member's id answers as one that does not exist ---------------------------------


@dataclass(frozen=True)
class Probe:
    """A call that names an id: {id} is the one probed (another member's, or one nobody has); {mine} is a
    job of the caller's own. `own` is what the call answers when {id} is the caller's own instead (None: the
    same refusal, the role may not make the call at all)."""

    method: str
    path: str
    body: Any = None
    kind: str = "job"  # what {id} names: a "job", a "parent" (a job split into two parts) or a "file"
    state: str = "ready"  # the state of the job {id} names, one the call works in when the job is the caller's
    own: int | None = 200


PROBES: dict[str, Probe] = {
    "create: predecessorIds": Probe("POST", "/jobs", {"type": "workbook", "operation": "export",
                                                      "predecessorIds": ["{id}"]}, own=202),
    "create: predecessorIds after one's own": Probe("POST", "/jobs", {"type": "workbook", "operation": "export",
                                                                      "predecessorIds": ["{mine}", "{id}"]}, own=202),
    "create: source (a file)": Probe("POST", "/jobs", {"type": "file", "operation": "extract", "source": "{id}"},
                                     kind="file", own=202),
    "actions trigger: sourceId (a file)": Probe("POST", "/actions/trigger", {"sourceId": "{id}",
                                                                             "operation": "extract"},
                                                kind="file", own=202),
    "list jobs: parentId": Probe("GET", "/jobs?parentId={id}", kind="parent"),
    "list events: jobId": Probe("GET", "/events?jobId={id}"),
    "get job": Probe("GET", "/jobs/{id}"),
    "job errors": Probe("GET", "/jobs/{id}/errors"),
    "job data.csv": Probe("GET", "/jobs/{id}/data.csv", state="complete"),
    "job errors.csv": Probe("GET", "/jobs/{id}/errors.csv"),
    "execute": Probe("POST", "/jobs/{id}/execute", state="created"),
    "cancel": Probe("POST", "/jobs/{id}/cancel", {}),
    "retry": Probe("POST", "/jobs/{id}/retry", state="failed"),
    "acknowledge outcome": Probe("POST", "/jobs/{id}/outcome/acknowledge", state="complete"),
    "delete job": Probe("DELETE", "/jobs/{id}", own=204),
    "get file": Probe("GET", "/files/{id}", kind="file"),
    "download file": Probe("GET", "/files/{id}/content", kind="file"),
    "delete file": Probe("DELETE", "/files/{id}", kind="file", own=204),
    # Moves only operators make: a member is refused before any id is looked at.
    "attach: fileId": Probe("POST", "/jobs/{mine}/files", {"fileId": "{id}", "role": "input"}, kind="file", own=None),
    "complete: outcome next id": Probe("POST", "/jobs/{mine}/complete",
                                       {"outcome": {"next": {"type": "id", "id": "{id}"}}}, own=None),
    "complete: outcome next files": Probe("POST", "/jobs/{mine}/complete",
                                          {"outcome": {"next": {"type": "files", "files": [{"fileId": "{id}"}]}}},
                                          kind="file", own=None),
}


async def probed(server: Server, owner: str, probe: Probe) -> str:
    """An object of `owner` of the kind the probe names, in the state it needs."""
    api = server.platform.api
    if probe.kind == "file":
        file = await api.as_actor(owner).files.upload(b"email\na@x.io\n", name="a.csv",
                                                      actions=[{"operation": "extract", "label": "Extract"}])
        return file.id
    job = await api.as_actor(owner).jobs.create(type="workbook", operation="export",
                                                trigger="manual" if probe.state == "created" else "immediate")
    if probe.kind == "parent" or probe.state in ("complete", "failed"):
        await api.jobs.ack(job.id)
    if probe.kind == "parent":
        await api.jobs.split(job.id, parts=2)
    elif probe.state == "complete":
        await api.jobs.write_data(job.id, [{"email": "a@x.io"}])
        await api.jobs.complete(job.id, outcome=Outcome(message="Done."))
    elif probe.state == "failed":
        await api.jobs.fail(job.id, error="It broke.")
    return job.id


@pytest.mark.parametrize("name", list(PROBES))
async def test_another_members_id_answers_exactly_as_one_that_does_not_exist(server: Server, name: str) -> None:
    """Was a probe: a predecessor of another member's answered 202 (and the job waited on it), where an id
    nobody has is a 422; every other field and path that takes an id is held to the same answer."""
    probe = PROBES[name]
    alice = await server.token("alice")
    mine = (await server.platform.api.as_actor("alice").jobs.create(type="workbook", operation="export")).id
    theirs = await probed(server, "bob", probe)
    nobodys = new_id(theirs.split("_", 1)[0])  # the same kind of id, made up

    async def answer(object_id: str) -> tuple[int, Any]:
        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return value.replace("{id}", object_id).replace("{mine}", mine)
            if isinstance(value, list):
                return [fill(v) for v in value]
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            return value

        return await call(server, probe.method, API + fill(probe.path), alice,
                          **({"json": fill(probe.body)} if probe.body is not None else {}))

    before = await snapshot(server)
    hidden = await answer(theirs)
    missing = await answer(nobodys)
    assert hidden[0] in (200, 403, 404, 422), hidden  # a refusal, or a listing with nothing in it
    # The same status, code, message and details; only the id, echoed back, differs.
    assert json.dumps(hidden) == json.dumps(missing).replace(nobodys, theirs)
    assert await snapshot(server) == before, "neither answer changed anything"

    own = await answer(await probed(server, "alice", probe))
    if probe.own is None:
        assert own[0] == hidden[0] == 403, own
    else:
        assert own[0] == probe.own and own[1] != hidden[1], own  # not vacuous: one's own id is answered for
