"""The REST API over a real server: statuses, error bodies, bad input that writes nothing, limits, shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from anyio.abc import TaskStatus

from listener import Outcome, Platform
from listener.platform.auth import Users
from listener.platform.server import create_app, serve
from tests.conftest import Server
from tests.conftest import snapshot as database_rows

pytestmark = pytest.mark.anyio

API = "/api/v1"


async def call(server: Server, method: str, path: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.request(method, server.url + path, headers=headers,
                                                                    **kw) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


async def snapshot(server: Server) -> dict[str, list[Any]]:
    """Every row of every table of the platform's database."""
    return await database_rows(server.platform)


def assert_error(status: int, body: Any, expected_status: int, code: str) -> str:
    """The error body has exactly the documented shape; returns its message."""
    assert status == expected_status, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert message
    return message


async def test_health_needs_no_token_and_nothing_else_answers_without_one(server: Server) -> None:
    assert await call(server, "GET", "/api/v1/health") == (200, {"status": "ok", "version": "0.1.0"})
    status, body = await call(server, "GET", "/api/v1/jobs")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await call(server, "GET", "/api/v1/jobs", token="lst_not-a-real-token-at-all")
    assert status == 401


async def test_create_answers_202_with_location(server: Server) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.admin_token}"}) as session:
        async with session.post(f"{server.url}/api/v1/jobs", json={"type": "workbook", "operation": "export"}) as r:
            assert r.status == 202
            job = await r.json()
            assert r.headers["Location"] == f"/api/v1/jobs/{job['id']}"
        async with session.get(server.url + r.headers["Location"]) as r:
            assert r.status == 200 and (await r.json())["status"] == "ready"
        async with session.get(f"{server.url}/api/v1/jobs", params={"status": "ready", "limit": "100"}) as r:
            page = await r.json()
            assert page["total"] == 1 and page["items"][0]["id"] == job["id"]


# -- the happy paths --------------------------------------------------------------


async def test_cocoa_canvas_calls_work_as_written(server: Server) -> None:
    """`GET /api/v1/jobs/{jobId}` and `GET /api/v1/jobs?status=failed&limit=100`, with a bearer header."""
    api = server.platform.api.as_actor("admin")
    failed = await api.jobs.ack((await api.jobs.create(type="workbook", operation="export")).id)
    failed = await api.jobs.fail(failed.id, error="The export broke.")
    await api.jobs.create(type="workbook", operation="export")  # ready: must not be listed as failed
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(f"{server.url}/api/v1/jobs/{failed.id}") as r:
            assert r.status == 200 and r.content_type == "application/json"
            job = await r.json()
        async with session.get(f"{server.url}/api/v1/jobs?status=failed&limit=100") as r:
            assert r.status == 200
            page = await r.json()
    assert job["id"] == failed.id and job["status"] == "failed" and job["error"]["message"] == "The export broke."
    assert job["job"] == "workbook:export" and job["createdBy"] == "admin"
    assert page == {"items": [job], "total": 1, "limit": 100, "offset": 0}


async def test_list_filters_pages_and_counts(server: Server) -> None:
    admin = server.platform.api.as_actor("admin")
    bob = server.platform.api.as_actor("bob")
    exports = [await admin.jobs.create(type="workbook", operation="export") for _ in range(3)]
    sheet_job = await bob.jobs.create(type="sheet", operation="dedupe")
    manual = await admin.jobs.create(type="workbook", operation="import", trigger="manual")
    t = server.admin_token

    async def ids(query: str) -> tuple[list[str], int]:
        status, page = await call(server, "GET", f"{API}/jobs?{query}", t)
        assert status == 200, page
        return [j["id"] for j in page["items"]], page["total"]

    assert await ids("type=sheet") == ([sheet_job.id], 1)
    assert await ids("operation=export") == ([j.id for j in reversed(exports)], 3)
    assert await ids("status=created") == ([manual.id], 1)
    assert await ids("createdBy=bob") == ([sheet_job.id], 1)
    assert await ids("status=ready&type=workbook") == ([j.id for j in reversed(exports)], 3)
    assert await ids("operation=export,dedupe") == ([sheet_job.id, *(j.id for j in reversed(exports))], 4)
    assert await ids("operation=export&operation=import") == ([manual.id, *(j.id for j in reversed(exports))], 4)
    # Newest first, paged with limit and offset; the total counts every match.
    assert await ids("limit=2&offset=1") == ([sheet_job.id, exports[2].id], 5)
    assert await ids("limit=2&offset=4") == ([exports[0].id], 5)
    assert await ids("limit=2&offset=10") == ([], 5)


async def test_other_systems_status_words_and_types_of_their_own_over_rest(server: Server) -> None:
    """Fiddler's, Cocoa Canvas's and Zoltar's words in `?status=`, any case, one or several; `?type=voters`."""
    api = server.platform.api.as_actor("admin")
    done = await api.jobs.complete((await api.jobs.ack((await api.jobs.create(type="voters",
                                                                                operation="geocode")).id)).id)
    slow = await api.jobs.ack((await api.jobs.create(type="import_voters", operation="run")).id)
    slow = await api.jobs.fail(slow.id, error="ran too long", kind="timeout")
    flaky = await api.jobs.ack((await api.jobs.create(type="voters", operation="geocode",
                                                      retry={"max_attempts": 2, "base_seconds": 3600})).id)
    flaky = await api.jobs.fail(flaky.id, error="geocoder busy", retryable=True)
    waiting = await api.jobs.create(type="voters", operation="geocode")
    t = server.admin_token

    async def ids(query: str) -> list[str]:
        status, page = await call(server, "GET", f"{API}/jobs?{query}", t)
        assert status == 200, page
        assert page["total"] == len(page["items"])
        return [j["id"] for j in page["items"]]

    assert await ids("status=SUCCESS") == await ids("status=completed") == await ids("status=success") == [done.id]
    assert await ids("status=TIMEOUT") == await ids("status=Timeout&type=import_voters") == [slow.id]
    assert await ids("status=FAILURE") == await ids("status=failed") == [slow.id]
    assert await ids("status=RETRY") == [flaky.id]
    assert await ids("status=PENDING") == await ids("status=pending&type=voters") == [waiting.id]
    assert await ids("status=PENDING,RETRY") == await ids("status=pending&status=retry") == [waiting.id, flaky.id]
    assert await ids("status=SUCCESS,TIMEOUT&type=voters") == [done.id]
    assert await ids("type=voters") == [waiting.id, flaky.id, done.id]
    assert await ids("type=import_voters,voters&status=processing") == []
    # A job's JSON says its status in Fiddler's words too, beside ours.
    for job, ours, fiddler in ((done, "complete", "SUCCESS"), (slow, "failed", "FAILURE"),
                               (flaky, "scheduled", "RETRY"), (waiting, "ready", "PENDING")):
        status, body = await call(server, "GET", f"{API}/jobs/{job.id}", t)
        assert (status, body["status"], body["fiddlerStatus"], body["type"]) == (200, ours, fiddler, job.type)
    # Created over REST: Cocoa Canvas's types, a 202 like any other.
    status, body = await call(server, "POST", f"{API}/jobs", t, json={"type": "import_voters", "operation": "csv"})
    assert (status, body["job"], body["fiddlerStatus"]) == (202, "import_voters:csv", "PENDING")
    before = await snapshot(server)
    status, body = await call(server, "POST", f"{API}/jobs", t, json={"type": "Import Voters", "operation": "csv"})
    assert "type" in assert_error(status, body, 422, "invalid")
    assert await snapshot(server) == before, "nothing written"


async def test_an_unknown_status_word_is_a_422_listing_the_accepted_ones(server: Server) -> None:
    for query in ("status=done", "status=failed,SUCCEEDED", "status=", "status=REVO%E2%84%AAED"):
        status, body = await call(server, "GET", f"{API}/jobs?{query}", server.admin_token)
        message = assert_error(status, body, 422, "invalid")
        assert "status" in message and body["error"]["details"][0]["field"].startswith("status.")
        for word in ("created", "cancelled", "pending", "processing", "completed", "PENDING", "STARTED", "SUCCESS",
                     "FAILURE", "RETRY", "REVOKED", "TIMEOUT"):
            assert word in message, (query, word)
    status, body = await call(server, "GET", f"{API}/jobs?type=Voters", server.admin_token)
    assert "type" in assert_error(status, body, 422, "invalid")


async def test_a_job_through_its_life_over_rest(server: Server) -> None:
    agent = await server.token("worker", "agent")
    member = await server.token("carol", "member")
    status, job = await call(server, "POST", f"{API}/jobs", member, json={"type": "workbook", "operation": "export",
                                                                         "input": {"format": "csv"}})
    assert status == 202 and job["status"] == "ready" and job["createdBy"] == "carol"
    path = f"{API}/jobs/{job['id']}"
    status, job = await call(server, "POST", f"{path}/ack", agent, json={"info": "Starting", "progress": 10})
    assert (status, job["status"], job["progress"], job["info"]) == (200, "executing", 10, "Starting")
    assert job["attempt"] == 1
    status, job = await call(server, "PATCH", path, agent, json={"progress": 60, "metadata": {"rows": 3}})
    assert (status, job["progress"], job["info"], job["metadata"]) == (200, 60, "Starting", {"rows": 3})
    outcome = {"message": "Exported 3 records.", "acknowledge": True,
               "next": {"type": "download", "url": "/files/export.csv", "fileName": "export.csv"}}
    status, job = await call(server, "POST", f"{path}/complete", agent, json={"outcome": outcome})
    assert (status, job["status"], job["progress"]) == (200, "complete", 100)
    assert job["outcome"]["next"] == {"type": "download", "url": "/files/export.csv", "fileName": "export.csv",
                                      "label": None}
    status, job = await call(server, "POST", f"{path}/outcome/acknowledge", member)
    assert status == 200 and job["outcomeAcknowledgedAt"] is not None
    assert await call(server, "DELETE", path, member) == (204, "")
    status, body = await call(server, "GET", path, server.admin_token)
    assert status == 404 and job["id"] in body["error"]["message"]
    topics = [e.topic for e in await server.platform.api.events.list(job_id=job["id"])]
    assert topics == ["job:created", "job:ready", "job:updated", "job:updated", "job:completed",
                      "job:outcome-acknowledged", "job:deleted"]


async def test_manual_jobs_execute_fail_and_cancel_over_rest(server: Server) -> None:
    t = server.admin_token
    status, job = await call(server, "POST", f"{API}/jobs", t, json={"type": "sheet", "operation": "dedupe",
                                                                    "trigger": "manual"})
    assert status == 202 and job["status"] == "created"
    status, job = await call(server, "POST", f"{API}/jobs/{job['id']}/execute", t)
    assert (status, job["status"]) == (200, "ready")
    await call(server, "POST", f"{API}/jobs/{job['id']}/ack", t, json={})
    status, job = await call(server, "POST", f"{API}/jobs/{job['id']}/fail", t,
                             json={"error": "Bad rows.", "kind": "invalid_input", "outcome": {"message": "Fix it"}})
    assert (status, job["status"], job["error"]) == (200, "failed", {"message": "Bad rows.", "kind": "invalid_input",
                                                                     "retryable": False, "attempt": 1})
    status, other = await call(server, "POST", f"{API}/jobs", t, json={"type": "sheet", "operation": "dedupe"})
    status, other = await call(server, "POST", f"{API}/jobs/{other['id']}/cancel", t, json={"info": "Not needed"})
    assert (status, other["status"], other["info"]) == (200, "cancelled", "Not needed")


async def test_spaces_workbooks_sheets_records_and_actions(server: Server) -> None:
    t = server.admin_token
    status, space = await call(server, "POST", f"{API}/spaces", t, json={"name": "Red", "namespace": "red"})
    assert status == 201 and space["namespace"] == "red"
    assert await call(server, "GET", f"{API}/spaces/{space['id']}", t) == (200, space)
    assert await call(server, "GET", f"{API}/spaces", t) == (200, {"items": [space]})
    status, wb = await call(server, "POST", f"{API}/workbooks", t, json={
        "name": "October", "spaceId": space["id"],
        "sheets": [{"name": "Contacts", "fields": [{"key": "email"}, {"key": "age", "type": "number"}]}],
        "actions": [{"operation": "export", "label": "Export",
                     "inputForm": {"fields": [{"key": "format", "label": "Format", "type": "enum",
                                               "config": {"options": [{"value": "csv"}, {"value": "xlsx"}]}}]}}]})
    assert status == 201 and [s["slug"] for s in wb["sheets"]] == ["contacts"]
    sheet = wb["sheets"][0]
    assert await call(server, "GET", f"{API}/workbooks/{wb['id']}", t) == (200, wb)
    assert await call(server, "GET", f"{API}/workbooks?spaceId={space['id']}", t) == (200, {"items": [wb]})
    assert await call(server, "GET", f"{API}/workbooks?spaceId=sp_other", t) == (200, {"items": []})
    assert await call(server, "GET", f"{API}/sheets?workbookId={wb['id']}", t) == (200, {"items": [sheet]})
    assert await call(server, "GET", f"{API}/sheets/{sheet['id']}", t) == (200, sheet)

    records_path = f"{API}/sheets/{sheet['id']}/records"
    status, inserted = await call(server, "POST", records_path, t,
                                  json={"records": [{"email": "a@x.io", "age": 30}, {"email": "b@x.io"}]})
    assert status == 201 and [r["values"] for r in inserted["items"]] == [{"email": "a@x.io", "age": 30},
                                                                          {"email": "b@x.io"}]
    first, second = (r["id"] for r in inserted["items"])
    status, commit = await call(server, "PATCH", records_path, t, json={"records": [{"id": first,
                                                                                     "values": {"age": 31}}]})
    assert (status, commit["updated"], commit["sheetId"]) == (200, 1, sheet["id"])
    status, commit = await call(server, "POST", f"{records_path}/delete", t, json={"ids": [second]})
    assert (status, commit["deleted"]) == (200, 1)
    status, page = await call(server, "GET", f"{records_path}?limit=10", t)
    assert status == 200 and page["total"] == 1 and page["items"][0]["values"] == {"email": "a@x.io", "age": 31}

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {t}"}) as session:
        async with session.post(f"{server.url}{API}/actions/trigger", json={
                "sourceId": wb["id"], "operation": "export", "input": {"format": "xlsx"}}) as r:
            assert r.status == 202
            job = await r.json()
            assert r.headers["Location"] == f"{API}/jobs/{job['id']}"
    assert (job["job"], job["source"], job["input"], job["status"]) == ("workbook:export", wb["id"],
                                                                       {"format": "xlsx"}, "ready")
    assert await call(server, "DELETE", f"{API}/workbooks/{wb['id']}", t) == (204, "")
    status, body = await call(server, "GET", f"{API}/sheets/{sheet['id']}", t)
    assert status == 404 and sheet["id"] in body["error"]["message"]


# -- bad input: the status of DESIGN §5, a message naming what was wrong, and nothing written ----------------


@dataclass
class World:
    """Objects in every state the bad-input cases need, made through the in-process Api."""

    ready: str
    executing: str
    complete: str
    acknowledged: str
    manual: str
    workbook: str
    sheet: str
    record: str

    def fill(self, template: str) -> str:
        return template.format(**self.__dict__)


async def make_world(server: Server) -> World:
    api = server.platform.api.as_actor("admin")
    ready = await api.jobs.create(type="workbook", operation="export")
    executing = await api.jobs.ack((await api.jobs.create(type="workbook", operation="export")).id)
    complete = await api.jobs.ack((await api.jobs.create(type="workbook", operation="export")).id)
    complete = await api.jobs.complete(complete.id, outcome=Outcome(message="Done."))
    acknowledged = await api.jobs.ack((await api.jobs.create(type="workbook", operation="export")).id)
    acknowledged = await api.jobs.acknowledge_outcome((await api.jobs.complete(acknowledged.id)).id)
    manual = await api.jobs.create(type="workbook", operation="import", trigger="manual")
    wb = await api.workbooks.create(name="W", sheets=[{"name": "Contacts", "fields": [
        {"key": "email"}, {"key": "age", "type": "number"}]}], actions=[{"operation": "export", "label": "Export"}])
    record = (await api.records.insert(wb.sheets[0].id, [{"email": "a@x.io", "age": 1}]))[0]
    return World(ready.id, executing.id, complete.id, acknowledged.id, manual.id, wb.id, wb.sheets[0].id, record.id)


@dataclass(frozen=True)
class Bad:
    method: str
    path: str
    status: int
    code: str
    names: tuple[str, ...]  # what the message must name (templates over World)
    json: Any = None
    data: bytes | None = None


J = {"type": "workbook", "operation": "export"}
BAD: dict[str, Bad] = {
    # malformed or missing bodies
    "create: malformed JSON": Bad("POST", "/jobs", 422, "invalid", ("JSON",), data=b'{"type": "workbook",'),
    "create: body not UTF-8": Bad("POST", "/jobs", 422, "invalid", ("JSON",), data=b'{"type": "\xff"}'),
    "create: empty body": Bad("POST", "/jobs", 422, "invalid", ("JSON body",), data=b""),
    "create: body is a list": Bad("POST", "/jobs", 422, "invalid", ("(body)",), json=[J]),
    # unknown and mistyped fields
    "create: unknown field": Bad("POST", "/jobs", 422, "invalid", ("colour",), json={**J, "colour": "red"}),
    "create: snake_case field": Bad("POST", "/jobs", 422, "invalid", ("created_by",), json={**J, "created_by": "x"}),
    "create: mistyped enum": Bad("POST", "/jobs", 422, "invalid", ("trigger",), json={**J, "trigger": "later"}),
    "create: type not an identifier": Bad("POST", "/jobs", 422, "invalid", ("type",), json={**J, "type": "A b"}),
    "create: mistyped bool": Bad("POST", "/jobs", 422, "invalid", ("managed",), json={**J, "managed": "maybe"}),
    "create: mistyped object": Bad("POST", "/jobs", 422, "invalid", ("input",), json={**J, "input": [1]}),
    "create: missing field": Bad("POST", "/jobs", 422, "invalid", ("operation",), json={"type": "workbook"}),
    "create: bad operation": Bad("POST", "/jobs", 422, "invalid", ("operation",), json={**J, "operation": "a b"}),
    "create: unknown source": Bad("POST", "/jobs", 422, "invalid", ("source",), json={**J, "source": "wb_nope"}),
    "create: priority out of range": Bad("POST", "/jobs", 422, "invalid", ("priority",), json={**J, "priority": 1001}),
    "create: priority not a number": Bad("POST", "/jobs", 422, "invalid", ("priority",), json={**J, "priority": "hi"}),
    "create: empty concurrency key": Bad("POST", "/jobs", 422, "invalid", ("concurrencyKey",),
                                         json={**J, "concurrencyKey": ""}),
    "priority: out of range": Bad("POST", "/jobs/{ready}/priority", 422, "invalid", ("priority",),
                                  json={"priority": -5000}),
    "priority: missing": Bad("POST", "/jobs/{ready}/priority", 422, "invalid", ("priority",), json={}),
    "priority: job started": Bad("POST", "/jobs/{executing}/priority", 409, "conflict", ("set_priority",),
                                 json={"priority": 1}),
    "settings: per-key limit zero": Bad("PUT", "/job-settings/workbook:export", 422, "invalid",
                                        ("maxRunningPerKey",), json={"maxRunningPerKey": 0}),
    "ack: unknown field": Bad("POST", "/jobs/{ready}/ack", 422, "invalid", ("progres",), json={"progres": 10}),
    "update: mistyped progress": Bad("PATCH", "/jobs/{executing}", 422, "invalid", ("progress",),
                                     json={"progress": "half"}),
    "update: progress over 100": Bad("PATCH", "/jobs/{executing}", 422, "invalid", ("progress",),
                                     json={"progress": 101}),
    "update: mistyped date": Bad("PATCH", "/jobs/{executing}", 422, "invalid", ("estimatedCompletionAt",),
                                 json={"estimatedCompletionAt": "tomorrow"}),
    "complete: javascript url": Bad("POST", "/jobs/{executing}/complete", 422, "invalid", ("outcome.next", "url"),
                                    json={"outcome": {"next": {"type": "url", "url": "javascript:alert(1)"}}}),
    "complete: unknown next type": Bad("POST", "/jobs/{executing}/complete", 422, "invalid", ("outcome.next",),
                                       json={"outcome": {"next": {"type": "teleport"}}}),
    "fail: unknown kind": Bad("POST", "/jobs/{executing}/fail", 422, "invalid", ("kind",), json={"kind": "boom"}),
    "cancel: unknown field": Bad("POST", "/jobs/{ready}/cancel", 422, "invalid", ("reason",), json={"reason": "x"}),
    "list: unknown parameter": Bad("GET", "/jobs?stauts=failed", 422, "invalid", ("stauts",)),
    "list: unknown status": Bad("GET", "/jobs?status=broken", 422, "invalid", ("status",)),
    "list: limit zero": Bad("GET", "/jobs?limit=0", 422, "invalid", ("limit",)),
    "list: limit not a number": Bad("GET", "/jobs?limit=ten", 422, "invalid", ("limit",)),
    "get: takes no parameters": Bad("GET", "/jobs/{ready}?verbose=1", 422, "invalid", ("verbose",)),
    "events: negative after": Bad("GET", "/events?after=-1", 422, "invalid", ("after",)),
    "space: missing name": Bad("POST", "/spaces", 422, "invalid", ("name",), json={"namespace": "red"}),
    "workbook: bad slug": Bad("POST", "/workbooks", 422, "invalid", ("sheets.0.slug",),
                              json={"name": "W", "sheets": [{"name": "S", "slug": "Bad Slug"}]}),
    "workbook: duplicate slug": Bad("POST", "/workbooks", 422, "invalid", ("sheets.1.slug",),
                                    json={"name": "W", "sheets": [{"name": "S"}, {"name": "s"}]}),
    "workbook: unknown space": Bad("POST", "/workbooks", 404, "not_found", ("sp_nope",),
                                   json={"name": "W", "spaceId": "sp_nope"}),
    "records: unknown field": Bad("POST", "/sheets/{sheet}/records", 422, "invalid", ("records.0.emial",),
                                  json={"records": [{"emial": "a@x.io"}]}),
    "records: mistyped value": Bad("POST", "/sheets/{sheet}/records", 422, "invalid", ("records.1.age",),
                                   json={"records": [{"age": 2}, {"age": "old"}]}),
    "records: update unknown record": Bad("PATCH", "/sheets/{sheet}/records", 404, "not_found", ("rc_nope",),
                                          json={"records": [{"id": "{record}", "values": {"age": 2}},
                                                            {"id": "rc_nope", "values": {"age": 3}}]}),
    "records: delete unknown record": Bad("POST", "/sheets/{sheet}/records/delete", 404, "not_found", ("rc_nope",),
                                          json={"ids": ["{record}", "rc_nope"]}),
    "records: delete none": Bad("POST", "/sheets/{sheet}/records/delete", 422, "invalid", ("ids",), json={"ids": []}),
    "trigger: missing source": Bad("POST", "/actions/trigger", 422, "invalid", ("sourceId",),
                                   json={"operation": "export"}),
    "trigger: unknown operation": Bad("POST", "/actions/trigger", 404, "not_found", ("import",),
                                      json={"sourceId": "{workbook}", "operation": "import"}),
    "users: unknown role": Bad("POST", "/users", 422, "invalid", ("role",), json={"name": "x", "role": "root"}),
    "users: name taken": Bad("POST", "/users", 409, "conflict", ("admin",), json={"name": "admin"}),
    # unknown ids
    "get: unknown job": Bad("GET", "/jobs/jb_nope", 404, "not_found", ("jb_nope",)),
    "ack: unknown job": Bad("POST", "/jobs/jb_nope/ack", 404, "not_found", ("jb_nope",), json={}),
    "update: unknown job": Bad("PATCH", "/jobs/jb_nope", 404, "not_found", ("jb_nope",), json={"progress": 1}),
    "complete: unknown job": Bad("POST", "/jobs/jb_nope/complete", 404, "not_found", ("jb_nope",), json={}),
    "fail: unknown job": Bad("POST", "/jobs/jb_nope/fail", 404, "not_found", ("jb_nope",), json={}),
    "cancel: unknown job": Bad("POST", "/jobs/jb_nope/cancel", 404, "not_found", ("jb_nope",), json={}),
    "execute: unknown job": Bad("POST", "/jobs/jb_nope/execute", 404, "not_found", ("jb_nope",)),
    "acknowledge: unknown job": Bad("POST", "/jobs/jb_nope/outcome/acknowledge", 404, "not_found", ("jb_nope",)),
    "delete: unknown job": Bad("DELETE", "/jobs/jb_nope", 404, "not_found", ("jb_nope",)),
    "get: unknown space": Bad("GET", "/spaces/sp_nope", 404, "not_found", ("sp_nope",)),
    "get: unknown workbook": Bad("GET", "/workbooks/wb_nope", 404, "not_found", ("wb_nope",)),
    "delete: unknown workbook": Bad("DELETE", "/workbooks/wb_nope", 404, "not_found", ("wb_nope",)),
    "get: unknown sheet": Bad("GET", "/sheets/sh_nope", 404, "not_found", ("sh_nope",)),
    "records: unknown sheet": Bad("POST", "/sheets/sh_nope/records", 404, "not_found", ("sh_nope",),
                                  json={"records": [{}]}),
    "trigger: unknown source": Bad("POST", "/actions/trigger", 404, "not_found", ("wb_nope",),
                                   json={"sourceId": "wb_nope", "operation": "export"}),
    "unknown endpoint": Bad("GET", "/jobz", 404, "not_found", ("/api/v1/jobz",)),
    "method not allowed": Bad("PUT", "/jobs/{ready}", 405, "method_not_allowed", ("PUT",), json={}),
    # illegal moves
    "complete: a ready job": Bad("POST", "/jobs/{ready}/complete", 409, "conflict", ("{ready}", "ready"), json={}),
    "update: a ready job": Bad("PATCH", "/jobs/{ready}", 409, "conflict", ("{ready}", "ready"), json={"progress": 5}),
    "ack: a second claim": Bad("POST", "/jobs/{executing}/ack", 409, "conflict", ("{executing}", "executing"),
                               json={}),
    "fail: a complete job": Bad("POST", "/jobs/{complete}/fail", 409, "conflict", ("{complete}", "complete"),
                                json={"error": "late"}),
    "cancel: a complete job": Bad("POST", "/jobs/{complete}/cancel", 409, "conflict", ("{complete}", "complete"),
                                  json={}),
    "execute: an immediate job": Bad("POST", "/jobs/{ready}/execute", 409, "conflict", ("{ready}", "manual")),
    "execute: twice": Bad("POST", "/jobs/{executing}/execute", 409, "conflict", ("{executing}", "executing")),
    "acknowledge: a ready job": Bad("POST", "/jobs/{ready}/outcome/acknowledge", 409, "conflict", ("{ready}",)),
    "acknowledge: twice": Bad("POST", "/jobs/{acknowledged}/outcome/acknowledge", 409, "conflict",
                              ("{acknowledged}", "already")),
    "delete: an executing job": Bad("DELETE", "/jobs/{executing}", 409, "conflict", ("{executing}", "Cancel it")),
    "ack: a manual job not executed": Bad("POST", "/jobs/{manual}/ack", 409, "conflict", ("{manual}", "created"),
                                          json={}),
}


def _fill(value: Any, world: World) -> Any:
    if isinstance(value, str):
        return world.fill(value)
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case", list(BAD.values()), ids=list(BAD))
async def test_bad_input_is_named_and_writes_nothing(server: Server, case: Bad) -> None:
    world = await make_world(server)
    head, before = await server.platform.store.head(), await snapshot(server)
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    kw: dict[str, Any] = {}
    if case.json is not None:
        kw["json"] = _fill(case.json, world)
    if case.data is not None:
        kw["data"] = case.data
        headers["Content-Type"] = "application/json"
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.request(case.method, server.url + API + world.fill(case.path), **kw) as response:
            status, body = response.status, await response.json()
    message = assert_error(status, body, case.status, case.code)
    for name in case.names:
        assert world.fill(name) in message, message
    assert await server.platform.store.head() == head
    assert await snapshot(server) == before


async def test_405_says_which_methods_are_allowed(server: Server) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.admin_token}"}) as session:
        async with session.put(f"{server.url}{API}/jobs") as r:
            assert r.status == 405
            assert set(r.headers["Allow"].split(",")) >= {"GET", "POST"}
            assert "GET" in (await r.json())["error"]["message"]


async def test_a_batch_with_one_unknown_record_changes_no_record(server: Server) -> None:
    world = await make_world(server)
    status, _ = await call(server, "PATCH", f"{API}/sheets/{world.sheet}/records", server.admin_token,
                           json={"records": [{"id": world.record, "values": {"age": 99}},
                                             {"id": "rc_nope", "values": {"age": 3}}]})
    assert status == 404
    page = await server.platform.api.records.get(world.sheet)
    assert [r.values for r in page.items] == [{"email": "a@x.io", "age": 1}]


# -- the body limit ---------------------------------------------------------------------


@asynccontextmanager
async def serving(platform: Platform, users: Users, **kw: Any) -> AsyncIterator[tuple[str, anyio.CancelScope]]:
    """`serve()` in a task of its own, with its base URL and the scope that cancels it."""
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def run(*, task_status: TaskStatus[int]) -> None:
            with scope:
                await serve(platform, port=0, users=users, task_status=task_status, **kw)

        port = await tg.start(run)
        yield f"http://127.0.0.1:{port}", scope
        scope.cancel()


@asynccontextmanager
async def app_runner(platform: Platform, users: Users, **kw: Any) -> AsyncIterator[str]:
    """`create_app()` behind a plain aiohttp runner."""
    runner = web.AppRunner(create_app(platform, users=users, **kw))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _job_body(size: int) -> bytes:
    """A valid job creation body of exactly `size` bytes."""
    head = b'{"type": "workbook", "operation": "export", "info": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


async def _limited(server: Server, starter: Callable[..., Any]) -> None:
    async with starter(server.platform, server.users, max_body=1000) as started:
        url = started[0] if isinstance(started, tuple) else started
        headers = {"Authorization": f"Bearer {server.admin_token}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(f"{url}{API}/jobs", data=_job_body(1000)) as r:
                assert r.status == 202, await r.text()
            head, before = await server.platform.store.head(), await snapshot(server)

            async def chunked() -> AsyncIterator[bytes]:
                body = _job_body(1001)
                yield body[:500]
                yield body[500:]

            for data in (_job_body(1001), _job_body(100_000), chunked()):
                async with session.post(f"{url}{API}/jobs", data=data) as r:
                    message = assert_error(r.status, await r.json(), 413, "too_large")
                    assert "body" in message and "1000" in message
            assert await server.platform.store.head() == head
            assert await snapshot(server) == before


async def test_serve_takes_a_body_limit(server: Server) -> None:
    await _limited(server, serving)


async def test_create_app_takes_a_body_limit(server: Server) -> None:
    await _limited(server, app_runner)


# -- graceful shutdown --------------------------------------------------------------------


async def test_shutdown_closes_streams_going_away_and_finishes_requests_in_flight(
        platform: Platform) -> None:
    users = Users(platform.store, platform.clock)
    token = await users.ensure_admin()
    headers = {"Authorization": f"Bearer {token}"}
    handling, release = anyio.Event(), anyio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        # With `Expect: 100-continue` the client sends the body only once the server has
        # started handling the request, so by now the request is in flight.
        handling.set()
        await release.wait()
        yield b'{"type": "workbook", "operation": "export"}'

    result: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with anyio.create_task_group() as tg, serving(platform, users, shutdown_timeout=5) as (url, scope):
            ws = await session.ws_connect(f"{url}{API}/events/stream")
            with anyio.fail_after(5):
                assert (await ws.receive_json())["type"] == "ready"

            async def post() -> None:
                async with session.post(f"{url}{API}/jobs", data=slow_body(), expect100=True,
                                        headers={"Content-Type": "application/json"}) as r:
                    result["status"], result["job"] = r.status, await r.json()

            tg.start_soon(post)
            with anyio.fail_after(5):
                await handling.wait()
            scope.cancel()
            with anyio.fail_after(5):
                message = await ws.receive()
            assert message.type is aiohttp.WSMsgType.CLOSE and message.data == aiohttp.WSCloseCode.GOING_AWAY
            assert ws.close_code == 1001
            assert "status" not in result  # still in flight while the server is shutting down
            release.set()
        # serve() has returned and the request in flight was answered, not cut off.
        assert result["status"] == 202
        assert (await platform.api.jobs.get(result["job"]["id"])).status == "ready"
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}{API}/health")


async def test_idempotency_key_returns_the_same_job(server: Server) -> None:
    ann, bob = await server.token("ann"), await server.token("bob")
    body = {"type": "workbook", "operation": "export", "input": {"format": "csv"}}

    async def create(token: str, key: str, json: dict[str, Any]) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.post(
                f"{server.url}{API}/jobs", json=json,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key}) as response:
            return response.status, await response.json()

    status, first = await create(ann, "k-1", body)
    assert status == 202
    head = await server.platform.store.head()
    status, again = await create(ann, "k-1", body)
    assert (status, again["id"]) == (202, first["id"]), "same key, same body, same caller: the same job"
    assert await server.platform.store.head() == head, "and nothing new was written"
    status, error = await create(ann, "k-1", {**body, "input": {"format": "xlsx"}})
    message = assert_error(status, error, 422, "invalid")
    assert "Idempotency-Key" in message
    status, other = await create(bob, "k-1", body)
    assert status == 202 and other["id"] != first["id"], "another caller's key is its own"
    assert (await server.platform.api.jobs.list()).total == 2


async def test_metrics_in_prometheus_text(server: Server) -> None:
    job = await server.platform.api.jobs.create(type="workbook", operation="export")
    await server.platform.api.jobs.create(type="sheet", operation="dedupe", trigger="manual")
    await server.platform.api.jobs.ack(job.id)
    await server.platform.store.set_cursor("admin/exporter", 1)
    status, text = await call(server, "GET", "/metrics", server.admin_token)
    assert status == 200
    assert 'listener_jobs{status="executing",type="workbook"} 1.0' in text
    assert 'listener_jobs{status="created",type="sheet"} 1.0' in text
    head = await server.platform.store.head()
    assert f"listener_event_log_head {float(head)}" in text
    assert f'listener_agent_lag_events{{agent="admin/exporter"}} {float(head - 1)}' in text
    assert "listener_handler_seconds" in text
    status, body = await call(server, "GET", "/metrics")
    assert_error(status, body, 401, "unauthorized")
    status, body = await call(server, "GET", "/metrics", await server.token("mel"))
    assert_error(status, body, 403, "forbidden")
