"""Documents: a title, a Markdown body and actions, in-process and over HTTP, on both backends."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from listener import Event, Invalid, JobStatus, Listener, NotFound, Platform
from listener.client import Client
from listener.errors import Forbidden
from listener.models import Document
from tests.conftest import ManualClock, Server
from tests.platform.test_server import API, call

pytestmark = pytest.mark.anyio

SUMMARIZE = {"operation": "summarize", "label": "Summarize", "mode": "background",
             "inputForm": {"fields": [{"key": "words", "label": "Words", "type": "number", "defaultValue": 50}]}}
MARKDOWN = ("# Getting started\n\nUpload your **contacts**, then press *Import*.\n\n"
            "<script>alert('x')</script>\n<img src=x onerror=alert(1)>\n\n- [link](javascript:alert(1))\n")


async def test_create_get_list_update_delete_in_process(platform: Platform, clock: ManualClock) -> None:
    api = platform.api.as_actor("alice")
    space = await api.spaces.create(name="Acme", namespace="red")
    other = await api.spaces.create(name="Other")
    doc = await api.documents.create(title="Welcome", body="# Hi", space_id=space.id, actions=[SUMMARIZE])
    loose = await api.documents.create(title="Loose")
    assert doc.id.startswith("dc_") and (doc.title, doc.body, doc.space_id) == ("Welcome", "# Hi", space.id)
    assert [a.operation for a in doc.actions] == ["summarize"] and doc.actions[0].input_form is not None
    assert doc.created_by == "alice" and doc.created_at == doc.updated_at == clock.now()
    assert (loose.body, loose.space_id, loose.actions) == ("", None, [])
    assert await api.documents.get(doc.id) == doc
    assert [d.id for d in await api.documents.list()] == [doc.id, loose.id]
    assert [d.id for d in await api.documents.list(space_id=space.id)] == [doc.id]
    assert await api.documents.list(space_id=other.id) == []

    clock.advance(5)
    renamed = await api.documents.update(doc.id, title="Welcome aboard")
    assert (renamed.title, renamed.body, renamed.actions) == ("Welcome aboard", "# Hi", doc.actions)  # the rest kept
    assert renamed.updated_at == clock.now() and renamed.created_at == doc.created_at
    cleared = await api.documents.update(doc.id, body="", actions=[])
    assert (cleared.title, cleared.body, cleared.actions) == ("Welcome aboard", "", [])
    assert await api.documents.get(doc.id) == cleared
    # Updated documents keep their place in the listing.
    assert [d.id for d in await api.documents.list()] == [doc.id, loose.id]

    await api.documents.delete(doc.id)
    with pytest.raises(NotFound, match=doc.id):
        await api.documents.get(doc.id)
    assert [d.id for d in await api.documents.list()] == [loose.id]


async def test_events_carry_the_document_and_its_space(platform: Platform) -> None:
    api = platform.api.as_actor("alice")
    space = await api.spaces.create(name="Acme", namespace="red")
    head = await platform.store.head()
    doc = await api.documents.create(title="Guide", space_id=space.id)
    await api.documents.update(doc.id, title="Guide v2", body="text")
    await api.documents.update(doc.id)  # nothing given: nothing changes, no event
    await api.documents.delete(doc.id)
    events = await platform.store.read_events(head, 10)
    assert [e.topic for e in events] == ["document:created", "document:updated", "document:deleted"]
    for event in events:
        ctx = event.context
        assert (ctx.document_id, ctx.space_id, ctx.namespace, ctx.actor_id) == (doc.id, space.id, "red", "alice")
        assert ctx.job_id is None and ctx.workbook_id is None
    assert events[0].payload == {"title": "Guide"}
    assert events[1].payload == {"changed": ["body", "title"]}
    loose = await api.documents.create(title="No space")
    [created] = await platform.store.read_events(await platform.store.head() - 1, 1)
    assert (created.context.document_id, created.context.space_id) == (loose.id, None)


async def test_a_listener_filters_document_events_by_document(platform: Platform) -> None:
    seen: list[tuple[str, str | None]] = []
    done = anyio.Event()
    listener = Listener()
    first = await platform.api.documents.create(title="First")
    second = await platform.api.documents.create(title="Second")

    @listener.on("document:*", document=first.id)
    def on_first(event: Event) -> None:
        seen.append((event.topic, event.context.document_id))
        if event.topic == "document:deleted":
            done.set()

    async with platform.running(listener):
        await platform.api.documents.update(second.id, title="Not this one")
        await platform.api.documents.update(first.id, body="changed")
        await platform.api.documents.delete(second.id)
        await platform.api.documents.delete(first.id)
        with anyio.fail_after(5):
            await done.wait()
    assert seen == [("document:updated", first.id), ("document:deleted", first.id)]


async def test_an_action_on_a_document_runs_a_job_sourced_from_it(platform: Platform) -> None:
    space = await platform.api.spaces.create(name="Acme", namespace="red")
    doc = await platform.api.documents.create(title="Report", body="# Q3", space_id=space.id, actions=[SUMMARIZE])
    listener = Listener()
    handled: list[Event] = []

    @listener.on("job:ready", job="document:summarize")
    async def summarize(event: Event) -> None:
        handled.append(event)
        job_id = event.context.job_id or ""
        job = await event.api.jobs.ack(job_id)
        document = await event.api.documents.get(job.source or "")
        await event.api.jobs.complete(job_id, outcome={"message": f"{document.title}: {job.input['words']} words"})

    async with platform.running(listener):
        job = await platform.api.actions.trigger(doc.id, "summarize")
        assert (job.job, job.type, job.source, job.mode.value) == ("document:summarize", "document", doc.id,
                                                                         "background")
        assert job.input == {"words": 50}  # the form's default
        job = await platform.api.jobs.wait(job.id, timeout=5)
    assert job.status is JobStatus.COMPLETE and job.outcome is not None
    assert job.outcome.message == "Report: 50 words"
    [event] = handled
    ctx = event.context
    assert (ctx.document_id, ctx.space_id, ctx.namespace, ctx.domain, ctx.operation) == (
        doc.id, space.id, "red", "document", "summarize")
    created = [e for e in await platform.api.events.list(job_id=job.id) if e.topic == "job:created"]
    assert created[0].context.document_id == doc.id

    with pytest.raises(NotFound, match="summarize"):
        await platform.api.actions.trigger(doc.id, "publish")
    with pytest.raises(Invalid, match=r"input\.colour"):
        await platform.api.actions.trigger(doc.id, "summarize", input={"colour": "red"})
    # Actions replaced by an update are the ones a button can press.
    await platform.api.documents.update(doc.id, actions=[{"operation": "publish", "label": "Publish"}])
    with pytest.raises(NotFound, match="summarize"):
        await platform.api.actions.trigger(doc.id, "summarize")
    assert (await platform.api.actions.trigger(doc.id, "publish")).job == "document:publish"


async def test_markdown_is_stored_and_answered_as_given(server: Server) -> None:
    async with Client(server.url, token=server.admin_token) as client:
        doc = await client.documents.create(title="<b>Title</b>", body=MARKDOWN)
    assert (doc.title, doc.body) == ("<b>Title</b>", MARKDOWN)
    assert (await server.platform.api.documents.get(doc.id)).body == MARKDOWN
    status, raw = await call(server, "GET", f"{API}/documents/{doc.id}", server.admin_token)
    assert status == 200 and raw["body"] == MARKDOWN and raw["title"] == "<b>Title</b>"


@pytest.mark.parametrize(("fields", "field"), [
    pytest.param({"title": ""}, "title", id="empty-title"),
    pytest.param({"title": "x" * 501}, "title", id="long-title"),
    pytest.param({"title": 5}, "title", id="title-not-text"),
    pytest.param({"title": "T", "body": "x" * 1_000_001}, "body", id="long-body"),
    pytest.param({"title": "T", "body": "a\x00b"}, "body", id="nul-in-body"),
    pytest.param({"title": "T", "actions": [{"operation": "x"}]}, "actions.0.label", id="action-without-label"),
    pytest.param({"title": "T", "actions": [{"operation": "a b", "label": "A"}]}, "actions.0.operation",
                 id="bad-operation"),
    pytest.param({"title": "T", "actions": [SUMMARIZE, SUMMARIZE]}, "actions.1.operation", id="duplicate-action"),
    pytest.param({"title": "T", "actions": None}, "actions", id="null-actions"),
])
async def test_bad_input_to_create_is_refused_naming_the_field(platform: Platform, fields: dict[str, Any],
                                                               field: str) -> None:
    head = await platform.store.head()
    with pytest.raises(Invalid) as raised:
        await platform.api.documents.create(**fields)
    assert raised.value.details[0]["field"] == field
    assert field in str(raised.value)
    assert await platform.api.documents.list() == [] and await platform.store.head() == head


@pytest.mark.parametrize(("fields", "field"), [
    pytest.param({"title": None}, "title", id="null-title"),
    pytest.param({"title": ""}, "title", id="empty-title"),
    pytest.param({"body": None}, "body", id="null-body"),
    pytest.param({"title": "ok", "body": "x" * 1_000_001}, "body", id="long-body"),
    pytest.param({"actions": [{"label": "No operation"}]}, "actions.0.operation", id="action-without-operation"),
    pytest.param({"actions": [SUMMARIZE, SUMMARIZE]}, "actions.1.operation", id="duplicate-action"),
])
async def test_bad_input_to_update_changes_nothing(platform: Platform, fields: dict[str, Any], field: str) -> None:
    doc = await platform.api.documents.create(title="Keep", body="kept", actions=[SUMMARIZE])
    head = await platform.store.head()
    with pytest.raises(Invalid) as raised:
        await platform.api.documents.update(doc.id, **fields)
    assert raised.value.details[0]["field"] == field
    assert await platform.api.documents.get(doc.id) == doc and await platform.store.head() == head


async def test_unknown_ids_are_not_found_and_change_nothing(platform: Platform) -> None:
    workbook = await platform.api.workbooks.create(name="W")
    head = await platform.store.head()
    with pytest.raises(NotFound, match="sp_missing"):
        await platform.api.documents.create(title="T", space_id="sp_missing")
    for document_id in ("dc_missing", workbook.id):  # an id of another kind is no document either
        with pytest.raises(NotFound, match=document_id):
            await platform.api.documents.get(document_id)
        with pytest.raises(NotFound, match=document_id):
            await platform.api.documents.update(document_id, title="T")
        with pytest.raises(NotFound, match=document_id):
            await platform.api.documents.delete(document_id)
    assert await platform.api.documents.list() == [] and await platform.store.head() == head
    assert (await platform.api.workbooks.get(workbook.id)).name == "W"


async def test_concurrent_changes_are_all_kept_and_a_deleted_document_stays_deleted(platform: Platform) -> None:
    api = platform.api
    doc = await api.documents.create(title="Draft", body="v1")
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: api.documents.update(doc.id, title="Final"))
        tg.start_soon(lambda: api.documents.update(doc.id, body="v2"))
    got = await api.documents.get(doc.id)
    assert (got.title, got.body) == ("Final", "v2")  # neither update overwrote the other's field

    outcomes: list[str] = []

    async def attempt(coro: Any) -> None:
        try:
            await coro
            outcomes.append("done")
        except NotFound:
            outcomes.append("not found")

    async with anyio.create_task_group() as tg:
        tg.start_soon(attempt, api.documents.delete(doc.id))
        tg.start_soon(attempt, api.documents.update(doc.id, title="Too late"))
        tg.start_soon(attempt, api.documents.delete(doc.id))
    with pytest.raises(NotFound):
        await api.documents.get(doc.id)  # an update racing the delete did not bring it back
    assert await api.documents.list() == []
    assert outcomes.count("done") >= 1
    deleted = [e for e in await api.events.list(limit=1000) if e.topic == "document:deleted"]
    assert len(deleted) == 1  # of two deletes one succeeded: one event


# -- over HTTP ------------------------------------------------------------------


async def test_crud_over_http_with_the_client(server: Server) -> None:
    async with Client(server.url, token=server.admin_token) as client:
        space = await client.spaces.create(name="Acme", namespace="red")
        doc = await client.documents.create(title="Welcome", body="# Hi", space_id=space.id, actions=[SUMMARIZE])
        assert doc == await server.platform.api.documents.get(doc.id)
        assert await client.documents.get(doc.id) == doc
        loose = await client.documents.create(title="Loose")
        assert [d.id for d in await client.documents.list()] == [doc.id, loose.id]
        assert [d.id for d in await client.documents.list(space_id=space.id)] == [doc.id]

        updated = await client.documents.update(doc.id, body="# Hello")
        assert (updated.title, updated.body, updated.actions) == ("Welcome", "# Hello", doc.actions)
        assert await client.documents.get(doc.id) == updated

        job = await client.actions.trigger(doc.id, "summarize", input={"words": 10})
        assert (job.job, job.source, job.input) == ("document:summarize", doc.id, {"words": 10})
        [created] = [e for e in await client.events.list(job_id=job.id) if e.topic == "job:created"]
        assert (created.context.document_id, created.context.space_id) == (doc.id, space.id)

        await client.documents.delete(doc.id)
        with pytest.raises(NotFound, match=doc.id):
            await client.documents.get(doc.id)
        with pytest.raises(NotFound, match=doc.id):
            await client.documents.update(doc.id, title="Gone")
        assert [d.id for d in await client.documents.list()] == [loose.id]


async def test_the_client_refuses_what_the_platform_refuses(server: Server) -> None:
    async with Client(server.url, token=server.admin_token) as client:
        doc = await client.documents.create(title="Keep")
        head = await server.platform.store.head()
        with pytest.raises(Invalid) as raised:  # checked before it is sent
            await client.documents.update(doc.id, title=None)  # type: ignore[arg-type]
        assert raised.value.details[0]["field"] == "title"
        with pytest.raises(Invalid) as raised:  # checked by the server, answered as the same error
            await client.documents.create(title="T", actions=[SUMMARIZE, SUMMARIZE])
        assert raised.value.details[0]["field"] == "actions.1.operation"
        with pytest.raises(NotFound, match="sp_missing"):
            await client.documents.create(title="T", space_id="sp_missing")
        assert [d.id for d in await client.documents.list()] == [doc.id]
        assert await server.platform.store.head() == head


async def test_rest_routes_statuses_and_errors(server: Server) -> None:
    token = server.admin_token
    status, doc = await call(server, "POST", f"{API}/documents", token, json={"title": "T", "body": "b"})
    assert status == 201 and doc["title"] == "T" and doc["spaceId"] is None and doc["id"].startswith("dc_")
    status, listed = await call(server, "GET", f"{API}/documents?spaceId=sp_none", token)
    assert status == 200 and listed == {"items": []}
    status, listed = await call(server, "GET", f"{API}/documents", token)
    assert status == 200 and [d["id"] for d in listed["items"]] == [doc["id"]]

    path = f"{API}/documents/{doc['id']}"
    for body, field in [({"title": None}, "title"), ({"title": 1}, "title"), ({"tilte": "x"}, "tilte"),
                        ({"actions": [{"operation": "x"}]}, "actions.0.label")]:
        status, error = await call(server, "PATCH", path, token, json=body)
        assert status == 422 and error["error"]["code"] == "invalid", error
        assert error["error"]["details"][0]["field"] == field, error
    status, error = await call(server, "GET", f"{API}/documents?space=sp_1", token)
    assert status == 422 and error["error"]["details"][0]["field"] == "space"
    status, error = await call(server, "POST", f"{API}/documents", token, json={"body": "no title"})
    assert status == 422 and error["error"]["details"][0]["field"] == "title"
    status, got = await call(server, "GET", path, token)
    assert status == 200 and got == doc  # the refused changes changed nothing

    status, patched = await call(server, "PATCH", path, token, json={"body": "new"})
    assert status == 200 and (patched["title"], patched["body"]) == ("T", "new")
    status, _ = await call(server, "DELETE", path, token)
    assert status == 204
    for method in ("GET", "PATCH", "DELETE"):
        status, error = await call(server, method, path, token, **({"json": {"title": "x"}} if method == "PATCH"
                                                                   else {}))
        assert status == 404 and error["error"]["code"] == "not_found", (method, error)


async def test_members_read_documents_and_operators_write_them(server: Server) -> None:
    member = await server.token("mia", "member")
    agent = await server.token("worker", "agent")
    async with Client(server.url, token=agent) as as_agent, Client(server.url, token=member) as as_member:
        doc = await as_agent.documents.create(title="Handbook", body="# Rules")
        assert doc.created_by == "worker"
        assert await as_member.documents.get(doc.id) == doc
        assert [d.id for d in await as_member.documents.list()] == [doc.id]
        head = await server.platform.store.head()
        with pytest.raises(Forbidden, match="member"):
            await as_member.documents.create(title="Mine")
        with pytest.raises(Forbidden, match="member"):
            await as_member.documents.update(doc.id, title="Changed")
        with pytest.raises(Forbidden, match="member"):
            await as_member.documents.delete(doc.id)
        assert await as_agent.documents.get(doc.id) == doc
        assert await server.platform.store.head() == head
        assert isinstance(await as_agent.documents.update(doc.id, title="Handbook v2"), Document)
