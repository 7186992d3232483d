"""Fuzz the REST API from its own OpenAPI document with schemathesis, against a real server.

Each operation of the document the server serves gets positive cases (valid by its schema)
and, when it takes a body or a query, negative ones (invalid by it). Every answer must be:

- never a 5xx;
- a status the document lists for that operation, its body matching the documented schema;
- for an error, the one `{"error": {"code", "message", "details"}}` shape;
- for a negative case, a refusal (4xx).

Random ids only ever reach 404s, so most examples point their path (and, for positive cases,
their body and query) at real objects made for that example: a space, a workbook with two
sheets, records, a snapshot and an `export` action with an input form, and a job in the state the
operation needs, or in a state it refuses (409). The rest keep their generated ids.

Left out: GET /events/stream, the websocket. It answers 101 and then speaks websocket frames,
which schemathesis does not check (tests/platform/test_stream.py covers it; the inputs it
parses by hand are tested at the end of this file).

Dates and numbers are pushed to their extremes: every `date-time` the document names is drawn
from ordinary dates, the ends of the calendar (years 1 and 9999, with offsets that move them past
it) and the first dates outside the range the API takes; and one positive example in three
has one of its date fields set to such a date, or one of its numbers (body or query) replaced
by a 64-bit end, a float's end or its smallest step.
The unit tests after the fuzzer hit each such field at its extremes on both backends.

Bounded for CI: hypothesis is derandomized (the same examples on every run, no example
database), `EXAMPLES` per operation and mode, one SQLite server per test. For a deeper run:
`LISTENER_FUZZ_EXAMPLES=200 .venv/bin/python -m pytest tests/platform/test_fuzz.py`.
The inputs JSON allows but hypothesis never generates (lone surrogates, 5000-digit numbers,
deep nesting, NaN) and the fixed bugs the fuzzer found are pinned by the tests after it.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import anyio
import anyio.from_thread
import anyio.to_thread
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from listener import Platform
from listener.models import MAX_DATE, MAX_INT64, MIN_DATE, MIN_RATE, new_id
from listener.platform import PlatformApi
from listener.platform.auth import Users
from listener.platform.routes import ROUTES, Route
from listener.platform.server import API, SPEC_ROUTE, serve
from listener.platform.store.base import StoredObject
from listener.types import SystemClock
from tests.conftest import ManualClock, Server
from tests.platform.test_server import assert_error, call, snapshot

pytestmark = pytest.mark.anyio

EXAMPLES = int(os.environ.get("LISTENER_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]

# The state a job must be in for each operation on /jobs/{jobId} to succeed.
JOB_STATE = {"get_job": "failed", "delete_job": "complete", "execute_job": "created", "ack_job": "ready",
             "update_job": "executing", "complete_job": "executing", "fail_job": "executing",
             "cancel_job": "ready", "acknowledge_outcome": "complete", "heartbeat_job": "executing",
             "retry_job": "failed", "checkpoint_job": "executing", "log_job_errors": "executing",
             "job_errors": "failed", "split_job": "executing", "attach_job_file": "complete",
             "write_job_data": "executing", "job_data_csv": "failed", "job_errors_csv": "failed",
             "sign_link": "failed", "set_job_priority": "ready", "retry_failed_items": "failed"}

EXPORT = {"operation": "export", "label": "Export", "inputForm": {"fields": [
    {"key": "format", "label": "Format", "type": "enum", "defaultValue": "csv",
     "config": {"options": [{"value": "csv"}, {"value": "xlsx"}]}},
    {"key": "rows", "label": "Rows", "type": "number"},
    {"key": "zip", "label": "Zip", "type": "boolean"}]}}

# Dates at the ends of what the API takes, of what Python's datetime holds, past them by an offset, and none.
EXTREME_DATES = ["9999-12-31T23:59:59.999999Z", "2026-06-01T12:00:00", "0001-01-01T00:00:00+23:59",
                 "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00Z", "0001-01-01T23:59:59-23:59",
                 MIN_DATE.isoformat(), (MIN_DATE - timedelta(microseconds=1)).isoformat(), MAX_DATE.isoformat(),
                 (MAX_DATE + timedelta(microseconds=1)).isoformat(), "9999-12-31T00:00:00+00:01"]
OFFSETS = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-1439, 1439))
DATE_TIMES = st.one_of(
    st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)).map(datetime.isoformat),
    st.sampled_from(EXTREME_DATES),
    st.datetimes(timezones=OFFSETS).map(datetime.isoformat),  # anywhere in years 1 to 9999, any offset
)
schemathesis.openapi.format("date-time", DATE_TIMES)

# Numbers a 64-bit column, a float or a timedelta cannot hold, and their neighbours.
EXTREME_NUMBERS = [2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 2**64, 10**30, 1e308, -1e308, 5e-324, -5e-324, 0, -1]
PUSH = st.sampled_from([False, False, True])  # whether a positive example gets values pushed to extremes


def numbers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where the numbers are in a body or query (bools are not numbers here)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [path]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [p for key, item in items for p in numbers(item, (*path, key))]


@functools.cache
def date_fields(method: str, path: str) -> list[str]:
    """The fields of a route's body that take a date-time, by their wire names."""
    route = next((r for r in ROUTES if r.method == method.upper() and API + r.path == path), None)
    if route is None or route.body is None:
        return []
    properties = route.body.model_json_schema(by_alias=True).get("properties", {})
    return [name for name, schema in properties.items() if '"date-time"' in json.dumps(schema)]


def push_to_extreme(case: Any, draw: Any) -> None:
    """Set one date field of the case's body to an extreme date (given or not), or replace one of its
    numbers (body or query) by an extreme one; one at a time, so that neither hides the other's answer."""
    dates = date_fields(case.operation.method, case.operation.path)
    if dates and isinstance(case.body, dict) and draw(st.sampled_from(["date", "number"])) == "date":
        case.body[draw(st.sampled_from(dates))] = draw(st.sampled_from(EXTREME_DATES))
        return
    places = [("body", p) for p in numbers(case.body)] + [("query", p) for p in numbers(case.query or {})]
    if not places:
        return
    where, path = draw(st.sampled_from(places))
    if not path:
        case.body = draw(st.sampled_from(EXTREME_NUMBERS))
        return
    container = case.body if where == "body" else case.query
    for key in path[:-1]:
        container = container[key]
    container[path[-1]] = draw(st.sampled_from(EXTREME_NUMBERS))


# Where an example's ids come from: objects fit for the operation (twice as often), the same
# with a job that has ended (most job moves refuse it: 409), or the ids hypothesis generated.
TARGETS = st.sampled_from(["fit", "fit", "ended", "generated"])


def negatable(route: Route) -> bool:
    # Path parameters are any string, so only a body or a query can be made invalid.
    return route.body is not None or route.query is not None


CASES = [pytest.param(route, mode, id=f"{route.method} {route.path} {mode.value}")
         for route in [*ROUTES, SPEC_ROUTE] for mode in GenerationMode
         if mode is GenerationMode.POSITIVE or negatable(route)]


@dataclass
class Live:
    url: str
    token: str
    api: PlatformApi


@pytest.fixture
async def live(db_url: str) -> AsyncIterator[Live]:
    """A real server on a fresh database (each backend) and a free port, and its admin's token."""
    async with Platform.open(db_url) as platform, anyio.create_task_group() as tg:
        users = Users(platform.store, platform.clock)
        token = await users.ensure_admin()
        assert token is not None
        port = await tg.start(functools.partial(serve, platform, port=0, users=users, shutdown_timeout=5))
        yield Live(f"http://127.0.0.1:{port}", token, platform.api.as_actor("admin"))
        tg.cancel_scope.cancel()


async def make_objects(api: PlatformApi, job_state: str | None) -> dict[str, Any]:
    """Real objects for one example, by the names paths, queries and bodies give their ids."""
    space = await api.spaces.create(name="Fuzz", namespace="fuzz")
    workbook = await api.workbooks.create(
        name="Fuzz", space_id=space.id, actions=[EXPORT],
        sheets=[{"name": "Contacts", "fields": [{"key": "email"}, {"key": "age", "type": "number"}]},
                {"name": "Notes", "actions": [EXPORT]}])
    contacts = workbook.sheets[0]
    records = await api.records.insert(contacts.id, [{"email": "a@example.com", "age": 1}, {"email": "b@x.io"}])
    ids: dict[str, Any] = {"spaceId": space.id, "workbookId": workbook.id, "sheetId": contacts.id,
                           "sourceId": workbook.id, "source": workbook.id, "recordIds": [r.id for r in records],
                           "job": "workbook:export"}
    document = await api.documents.create(title="Fuzz", body="# Fuzz\n\n<b>bold</b>", space_id=space.id,
                                          actions=[EXPORT])
    ids["documentId"] = document.id
    ids["snapshotId"] = (await api.snapshots.create(contacts.id, label="Fuzz")).id
    ids["scheduleId"] = (await api.schedules.create(job="workbook:export", cron="@daily", source=workbook.id)).id
    ids["webhookId"] = (await api.webhooks.create(url="http://127.0.0.1:9/hook", topics=["job:failed"])).webhook.id
    ids["name"] = f"fuzz-{new_id('u')[-8:]}"  # a user to revoke or rotate (never the last admin)
    await Users(api._store, SystemClock()).create(ids["name"], "member")
    file = await api.files.upload(b"email\na@example.com\n", name="fuzz.csv", space_id=space.id, actions=[EXPORT])
    ids["fileId"] = file.id
    if "fileId" not in ids:  # a file to attach to jobs, if no upload made one above
        file_id = new_id("fl")
        doc = {"id": file_id, "name": "a.csv", "size": 0, "mimeType": "text/csv", "sha256": "0" * 64,
               "createdAt": "2026-01-01T00:00:00Z"}
        await api._store.put_objects([StoredObject(file_id, "file", None, doc)], [])
        ids["fileId"] = file_id
    if job_state is not None:
        job = await api.jobs.create(type="workbook", operation="export", source=workbook.id,
                                    trigger="manual" if job_state == "created" else "immediate")
        if job_state in ("executing", "complete", "failed"):
            await api.jobs.ack(job.id, progress=5)
            await api.jobs.write_data(job.id, [{"email": "a@example.com", "score": 1}])
            await api.jobs.log_error(job.id, item="row 2", message="no email")  # an item to retry if it fails
        if job_state == "complete":
            await api.jobs.complete(job.id, outcome={"message": "Done", "next": {"type": "url", "url": "/x"}})
        elif job_state == "failed":
            await api.jobs.fail(job.id, error="It broke.")
        elif job_state == "cancelled":
            await api.jobs.cancel(job.id)
        ids["jobId"] = job.id
    return ids


def point_at(case: Any, ids: dict[str, Any], positive: bool) -> None:
    """Point a generated case at real objects: its path always, its query and body when it is positive."""
    for name in list(case.path_parameters or {}):
        if name in ids:
            case.path_parameters[name] = ids[name]
    if not positive:
        return  # a negative case must stay invalid
    for name in list(case.query or {}):
        if name in ids:
            case.query[name] = ids[name]
    body = case.body
    if not isinstance(body, dict):
        return
    for name in ("sourceId", "spaceId", "source", "fileId", "sheetId"):
        if isinstance(body.get(name), str) and name in ids:
            body[name] = ids[name]
    if isinstance(body.get("path"), str) and "jobId" in ids:
        body["path"] = f"/api/v1/jobs/{ids['jobId']}/errors.csv"  # a download to sign a link for
    if "sourceId" in body:
        body["operation"] = "export"  # the action the workbook has; its input stays generated
    if isinstance(body.get("url"), str) and isinstance(body.get("topics"), list):  # a webhook's
        body.update(url="http://127.0.0.1:9/hook", topics=["job:*"], filter={})
    for name, valid in (("cron", "0 3 * * *"), ("timezone", "Europe/Berlin"), ("job", ids["job"])):
        if isinstance(body.get(name), str) and "operation" not in body:  # a schedule's: free text reads as none
            body[name] = valid
    if isinstance(body.get("ids"), list):
        body["ids"] = ids["recordIds"][: max(1, len(body["ids"]))]
    records = body.get("records")
    if isinstance(records, list) and all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in records):
        for record, record_id in zip(records, ids["recordIds"], strict=False):
            record["id"] = record_id


def assert_error_shape(body: Any) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


async def served_schema(live: Live) -> Any:
    """The document the server serves, loaded as schemathesis sees it."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {live.token}"}) as session:
        async with session.get(f"{live.url}{API}/openapi.json") as response:
            assert response.status == 200
            document = await response.json()
    # The admin's token on every case, never negated: these tests are about inputs (test_auth.py is about tokens).
    # An explicit config, so no schemathesis.toml on the machine changes what runs.
    config = schemathesis.Config()
    config.projects.default.update(headers={"Authorization": f"Bearer {live.token}"})
    config.projects.default.generation.update(with_security_parameters=False)
    return schemathesis.openapi.from_dict(document, config=config)


@pytest.mark.parametrize(("route", "mode"), CASES)
async def test_every_answer_is_documented_and_no_input_is_a_server_error(
        live: Live, route: Route, mode: GenerationMode) -> None:
    operation = (await served_schema(live))[API + route.path][route.method]
    fit_state = JOB_STATE.get(route.operation_id)
    positive = mode is GenerationMode.POSITIVE
    statuses: Counter[int] = Counter()
    # A query string carries only text: schemathesis's "negative" `createdBy=false` (a boolean, to it) is a
    # valid string here, so for GET the rejection check would flag good behaviour. Bad numbers and unknown
    # enum values in queries are still required to be refused by the 422 count below.
    checks = CHECKS if route.method.upper() != "GET" else [c for c in CHECKS if c is not negative_data_rejection]

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), target=TARGETS, push=PUSH, data=st.data())
    def fuzz(case: Any, target: str, push: bool, data: st.DataObject) -> None:
        if target != "generated":
            state = fit_state if target == "fit" or fit_state is None else "cancelled"
            point_at(case, anyio.from_thread.run(make_objects, live.api, state), positive)
        if push and positive:  # a negative case must stay invalid, and pushing a number could make it valid
            push_to_extreme(case, data.draw)
        response = case.call(base_url=live.url, timeout=10)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as failures:
            # A BaseException, which kills anyio's pytest runner (and the fixture's teardown with it):
            # the same report (the failed checks and a curl command that reproduces it), as a test failure.
            raise AssertionError(str(failures)) from None
        if response.status_code >= 400:
            assert_error_shape(response.json())

    # Schemathesis calls with `requests`, which blocks: off the event loop the server runs on.
    await anyio.to_thread.run_sync(fuzz)
    if positive:
        # Not vacuous: valid input (with real ids) got through to the handler and succeeded.
        assert any(200 <= status < 300 for status in statuses), statuses
    else:
        assert any(status == 422 for status in statuses), statuses


# -- what the fuzzer found, and JSON it cannot generate ------------------------------------------------


async def request(live: Live, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {live.token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.request(method, f"{live.url}{API}{path}", data=body) as response:
            return response.status, await response.json()


def assert_invalid(status: int, body: Any, *words: str) -> None:
    assert status == 422, body
    assert_error_shape(body)
    assert body["error"]["code"] == "invalid", body
    for word in words:
        assert word in body["error"]["message"], body


@pytest.mark.parametrize("path", ["/jobs?offset=", "/sheets/{sheet}/records?offset=", "/events?after="])
async def test_a_position_past_64_bits_is_refused_naming_it(live: Live, path: str) -> None:
    """Was a 500: SQLite raised OverflowError on `?offset=112191967128651399168`."""
    ids = await make_objects(live.api, None)
    path = path.replace("{sheet}", ids["sheetId"])
    status, body = await request(live, "GET", path + str(MAX_INT64 + 1))
    assert_invalid(status, body, path.rsplit("?", 1)[1].rstrip("="))
    status, body = await request(live, "GET", path + str(MAX_INT64))
    assert status == 200, body


@pytest.mark.parametrize(("move", "field"), [("ack", "progress"), ("update", "progress"), ("update", "metadata")])
async def test_null_is_refused_for_what_a_job_always_has(live: Live, move: str, field: str) -> None:
    """Was a 200 with `"progress": null` (outside the Job schema); the stored job then failed every read."""
    api = live.api
    job = await api.jobs.create(type="workbook", operation="export")
    if move == "update":
        await api.jobs.ack(job.id)
    method, path = ("POST", f"/jobs/{job.id}/ack") if move == "ack" else ("PATCH", f"/jobs/{job.id}")
    status, body = await request(live, method, path, b'{"%s": null}' % field.encode())
    assert_invalid(status, body, field)
    status, got = await request(live, "GET", f"/jobs/{job.id}")
    assert status == 200 and got["progress"] == 0 and got["metadata"] == {}, got
    assert got["status"] == ("ready" if move == "ack" else "executing"), got  # the refused move changed nothing
    status, got = await request(live, method, path, b'{"info": null, "progress": 40}')
    assert status == 200 and got["progress"] == 40 and got["info"] is None, got  # null still clears info


@pytest.mark.parametrize("body", [
    pytest.param(b'{"name": "a", "metadata": {"x": 1%s}}' % (b"0" * 5000), id="5000-digit number"),
    pytest.param(b'{"name": "a", "metadata": %s%s}' % (b"[" * 100_000, b"]" * 100_000), id="deep nesting"),
    pytest.param(b'{"name": "\\ud800"}', id="escaped lone surrogate"),
    pytest.param(b'{"name": "a", "metadata": {"\\udfff": 1}}', id="lone surrogate key"),
    pytest.param(b'{"name": "\xed\xa0\x80"}', id="encoded lone surrogate"),
    pytest.param(b'{"name": "a", "metadata": {"x": NaN}}', id="NaN"),
])
async def test_json_that_python_takes_but_cannot_store_or_answer_is_refused(live: Live, body: bytes) -> None:
    """Were 500s (ValueError, RecursionError, UnicodeEncodeError when answering), or NaN stored as null."""
    status, answer = await request(live, "POST", "/spaces", body)
    assert_invalid(status, answer, "not valid JSON")
    assert await live.api.spaces.list() == []
    status, answer = await request(live, "POST", "/spaces", '{"name": "\\ud83d\\ude00 \u00e9"}'.encode())
    assert status == 201 and answer["name"] == "\U0001f600 \u00e9", answer  # a surrogate pair is a character


async def test_an_empty_source_is_refused_like_any_unknown_one(live: Live) -> None:
    """Was a 202: a job whose source is "" (no object), where any other unknown source is a 422."""
    status, body = await request(live, "POST", "/jobs", b'{"type": "workbook", "operation": "export", "source": ""}')
    assert_invalid(status, body, "source")
    assert (await live.api.jobs.list()).total == 0


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/jobs/{job}/fail", b'{"outcome": {"acknowledge": 0}}', "outcome.acknowledge"),
    ("/jobs/{job}/ack", b'{"progress": "50"}', "progress"),
    ("/jobs/{job}/ack", b'{"estimatedCompletionAt": 1767225600}', "estimatedCompletionAt"),
    ("/jobs", b'{"type": "workbook", "operation": "export", "managed": 1}', "managed"),
])
async def test_a_body_is_read_as_its_schema_says_without_coercion(live: Live, path: str, body: bytes,
                                                                   field: str) -> None:
    """Were accepted: `0` taken for false, `"50"` for 50, a number for a date-time, against the document's types."""
    job = await live.api.jobs.create(type="workbook", operation="export")
    if path.endswith("/fail"):
        await live.api.jobs.ack(job.id)
    status, answer = await request(live, "POST", path.replace("{job}", job.id), body)
    assert_invalid(status, answer, field)
    assert (await live.api.jobs.get(job.id)).status == ("executing" if path.endswith("/fail") else "ready")
    assert (await live.api.jobs.list()).total == 1
    status, answer = await request(live, "POST", f"/jobs/{job.id}/ack",
                                   b'{"progress": 50, "estimatedCompletionAt": "2026-01-01T00:00:00Z"}')
    if path.endswith("/fail"):
        assert status == 409, answer  # already acked
    else:
        assert status == 200 and answer["progress"] == 50, answer  # the JSON types themselves are taken


@pytest.mark.parametrize("query", ["status=", "status=failed,", "type=&status=ready"])
async def test_an_empty_list_value_is_refused_not_ignored(live: Live, query: str) -> None:
    """Was a 200 listing every job: `?status=` read as no filter at all, though "" is no status."""
    await live.api.jobs.create(type="workbook", operation="export")
    status, body = await request(live, "GET", f"/jobs?{query}")
    assert_invalid(status, body, query.split("=")[0])
    status, body = await request(live, "GET", "/jobs?status=failed,ready&status=created")
    assert status == 200 and body["total"] == 1, body


async def test_the_stream_refuses_bad_json_and_positions_past_64_bits(live: Live) -> None:
    """The websocket's inputs: its `filter` query and the acks it reads are parsed as strictly as bodies."""
    headers = {"Authorization": f"Bearer {live.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for query in [f"after={MAX_INT64 + 1}", "filter=" + "[" * 1200 + "]" * 1200, "filter=1" + "0" * 5000]:
            async with session.get(f"{live.url}{API}/events/stream?{query}") as response:
                assert response.status == 422, query[:40]
                assert_error_shape(await response.json())
        await make_objects(live.api, None)
        seq = (await live.api.events.list(after=0, limit=1000))[-1].seq
        # From the head: no backlog, so every message that comes is an answer to ours.
        async with session.ws_connect(f"{live.url}{API}/events/stream", params={"agent": "fuzz", "after": seq}) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "ready"
            for message in [{"type": "ack", "seq": MAX_INT64 + 1}, {"type": "ack", "seq": -1}]:
                await ws.send_json(message)
                answer = await ws.receive_json(timeout=5)
                assert answer["type"] == "error" and "seq" in answer["error"]["message"], answer
            await ws.send_str('{"type": "ack", "seq": ' + "[" * 3000 + "]" * 3000 + "}")
            assert (await ws.receive_json(timeout=5))["type"] == "error"
            # The socket still works: a good ack moves the cursor (its answer is the error that follows it).
            await ws.send_json({"type": "ack", "seq": seq})
            await ws.send_json({"type": "nonsense"})
            assert (await ws.receive_json(timeout=5))["type"] == "error"
        async with session.get(f"{live.url}{API}/agents/fuzz/cursor") as response:
            assert (await response.json())["seq"] == seq


# -- dates and numbers at their extremes, field by field, on both backends -------------------------------

# Past either end of the dates the API takes (0001-01-02 to 9998-12-31 UTC), at the ends of Python's own, moved
# past them by an offset, and no moment at all (no offset).
BAD_DATES = ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59-12:00", "9999-01-01T00:00:00Z",
             "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "0001-01-01T23:59:59.999999Z",
             "2026-06-01T00:00:00"]
BIG = [2**63, 2**64, 10**30]
SMALL = [-(2**63) - 1, -(2**63)]
HUGE = [1e308, -1e308]

# (method, path, the body or query with X where the value goes, the field the refusal names, the values).
# {job} is a job in the state the move needs: ready for ack, executing for the rest.
EXTREMES: dict[str, tuple[str, str, Any, str, list[Any]]] = {
    "runAt": ("POST", "/jobs", {"type": "workbook", "operation": "export", "runAt": "X"}, "runAt", BAD_DATES),
    "runAt with the longest timeout": (
        "POST", "/jobs", {"type": "workbook", "operation": "export", "runAt": "X", "timeoutSeconds": 365 * 86_400},
        "runAt", BAD_DATES),
    "ack estimatedCompletionAt": ("POST", "/jobs/{job}/ack", {"estimatedCompletionAt": "X"},
                                  "estimatedCompletionAt", BAD_DATES),
    "update estimatedCompletionAt": ("PATCH", "/jobs/{job}", {"estimatedCompletionAt": "X"},
                                     "estimatedCompletionAt", BAD_DATES),
    "error log createdAt": ("POST", "/jobs/{job}/errors", {"errors": [{"message": "m", "createdAt": "X"}]},
                            "errors.0.createdAt", BAD_DATES),
    "timeoutSeconds": ("POST", "/jobs", {"type": "workbook", "operation": "export", "timeoutSeconds": "X"},
                       "timeoutSeconds", BIG + SMALL),
    "leaseSeconds": ("POST", "/jobs", {"type": "workbook", "operation": "export", "leaseSeconds": "X"},
                     "leaseSeconds", BIG + SMALL),
    "retry.maxAttempts": ("POST", "/jobs", {"type": "workbook", "operation": "export", "retry": {"maxAttempts": "X"}},
                          "retry.maxAttempts", BIG + SMALL),
    "retry.baseSeconds": ("POST", "/jobs", {"type": "workbook", "operation": "export", "retry": {"baseSeconds": "X"}},
                          "retry.baseSeconds", BIG + HUGE),
    "retry.factor": ("POST", "/jobs", {"type": "workbook", "operation": "export", "retry": {"factor": "X"}},
                     "retry.factor", BIG + HUGE),
    "retry.capSeconds": ("POST", "/jobs", {"type": "workbook", "operation": "export", "retry": {"capSeconds": "X"}},
                         "retry.capSeconds", BIG + HUGE),
    "ack leaseSeconds": ("POST", "/jobs/{job}/ack", {"leaseSeconds": "X"}, "leaseSeconds", BIG + SMALL),
    "ack progress": ("POST", "/jobs/{job}/ack", {"progress": "X"}, "progress", BIG + SMALL),
    "update progress": ("PATCH", "/jobs/{job}", {"progress": "X"}, "progress", BIG + SMALL),
    "update processed": ("PATCH", "/jobs/{job}", {"processed": "X", "total": 10}, "processed", BIG + SMALL),
    "update total": ("PATCH", "/jobs/{job}", {"processed": 1, "total": "X"}, "total", BIG + SMALL),
    "update attempt": ("PATCH", "/jobs/{job}", {"progress": 1, "attempt": "X"}, "attempt", BIG + SMALL),
    "split parts": ("POST", "/jobs/{job}/split", {"parts": "X"}, "parts", BIG + SMALL),
    "maxRunning": ("PUT", "/job-settings/workbook:export", {"maxRunning": "X"}, "maxRunning", BIG + SMALL),
    "startsPerSecond": ("PUT", "/job-settings/workbook:export", {"startsPerSecond": "X"}, "startsPerSecond",
                        [5e-324, 1e-7, *HUGE]),
    "job-settings timeoutSeconds": ("PUT", "/job-settings/workbook:export", {"timeoutSeconds": "X"},
                                    "timeoutSeconds", BIG + SMALL),
    "jobs limit": ("GET", "/jobs", {"limit": "X"}, "limit", BIG + SMALL),
    "jobs offset": ("GET", "/jobs", {"offset": "X"}, "offset", BIG + SMALL),
    "error log limit": ("GET", "/jobs/{job}/errors", {"limit": "X"}, "limit", BIG + SMALL),
    "error log offset": ("GET", "/jobs/{job}/errors", {"offset": "X"}, "offset", BIG + SMALL),
    "events after": ("GET", "/events", {"after": "X"}, "after", BIG + SMALL),
    "events limit": ("GET", "/events", {"limit": "X"}, "limit", BIG + SMALL),
}


def put_value(template: Any, value: Any) -> Any:
    if template == "X":
        return value
    if isinstance(template, dict):
        return {k: put_value(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [put_value(v, value) for v in template]
    return template


@pytest.mark.parametrize("name", list(EXTREMES))
async def test_a_date_or_number_at_its_extremes_is_a_422_naming_it_and_changes_nothing(server: Server,
                                                                                       name: str) -> None:
    """Were 500s: a deadline past the year 9999 (runAt), a naive date compared with an aware one, an estimate of
    years beyond it (total), a rate whose next start has no date (startsPerSecond); or taken as given, for
    another call to trip on (estimatedCompletionAt, createdAt)."""
    method, path, template, field, values = EXTREMES[name]
    api = server.platform.api.as_actor("admin")
    job = await api.jobs.create(type="workbook", operation="export")
    if not path.endswith("/ack"):
        await api.jobs.ack(job.id)
    path = API + path.replace("{job}", job.id)
    for value in values:
        filled = put_value(template, value)
        before = await snapshot(server)
        if method == "GET":
            status, body = await call(server, method, path, server.admin_token, params={field: str(value)})
        else:
            status, body = await call(server, method, path, server.admin_token, json=filled)
        message = assert_error(status, body, 422, "invalid")
        named = [d["field"] for d in body["error"]["details"]]
        assert field in message and any(f == field or f.startswith(field + ".") for f in named), (value, body)
        assert await snapshot(server) == before, f"{name} = {value!r} changed the store"


async def test_the_dates_and_numbers_at_the_edges_are_taken_and_everything_after_works(
        server: Server, clock: ManualClock) -> None:
    """The edges themselves are taken, and what the platform computes from them still fits: the deadline of a
    job that starts on the last day with the longest timeout, an estimate of years past the last date (none)."""
    token, api = server.admin_token, server.platform.api
    last = {"type": "workbook", "operation": "export", "runAt": MAX_DATE.isoformat(), "timeoutSeconds": 365 * 86_400}
    status, late = await call(server, "POST", f"{API}/jobs", token, json=last)
    assert (status, late["status"]) == (202, "scheduled"), late
    status, early = await call(server, "POST", f"{API}/jobs", token,
                               json={"type": "workbook", "operation": "export", "runAt": MIN_DATE.isoformat()})
    assert (status, early["status"]) == (202, "ready"), early
    assert late["id"] not in await api.jobs.due() and not await api.jobs.advance(late["id"])
    status, page = await call(server, "GET", f"{API}/jobs", token)
    assert status == 200 and page["total"] == 2, page

    status, acked = await call(server, "POST", f"{API}/jobs/{early['id']}/ack", token,
                               json={"estimatedCompletionAt": "9998-12-31T23:59:59-00:00"})
    assert status == 200 and acked["estimatedCompletionAt"] is not None, acked
    clock.advance(1)
    status, updated = await call(server, "PATCH", f"{API}/jobs/{early['id']}", token,
                                 json={"processed": 1, "total": MAX_INT64})
    assert status == 200 and updated["estimatedCompletionAt"] is None, updated  # ~292 billion years: no estimate
    status, updated = await call(server, "PATCH", f"{API}/jobs/{early['id']}", token,
                                 json={"processed": 5, "total": 10})
    assert status == 200 and updated["estimatedCompletionAt"] is not None, updated

    status, settings = await call(server, "PUT", f"{API}/job-settings/sheet:dedupe", token,
                                  json={"startsPerSecond": MIN_RATE})
    assert status == 200, settings
    answers = [await call(server, "POST", f"{API}/jobs", token, json={"type": "sheet", "operation": "dedupe"})
               for _ in range(2)]
    assert [(s, j["status"]) for s, j in answers] == [(202, "ready"), (202, "scheduled")], answers
