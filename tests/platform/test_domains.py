"""Spaces, workbooks, sheets, records in commits, and actions that start jobs."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from listener import Event, Invalid, JobStatus, Listener, NotFound, Platform
from listener.models import Workbook

pytestmark = pytest.mark.anyio

CONTACTS = {"name": "Contacts", "slug": "contacts",
            "fields": [{"key": "email", "type": "string"}, {"key": "age", "type": "number"}]}


async def make_workbook(platform: Platform, **extra: Any) -> Workbook:
    return await platform.api.workbooks.create(
        name="October Report Workbook", sheets=[CONTACTS, {"name": "Order Lines"}],
        actions=[{"operation": "export", "label": "Export Data", "mode": "foreground", "primary": True}], **extra)


async def test_workbook_with_sheets_and_events(platform: Platform) -> None:
    space = await platform.api.spaces.create(name="Acme", namespace="red")
    wb = await make_workbook(platform, space_id=space.id)
    assert [s.slug for s in wb.sheets] == ["contacts", "order-lines"]
    assert await platform.api.workbooks.get(wb.id) == wb
    assert await platform.api.sheets.get(wb.sheets[0].id) == wb.sheets[0]
    assert [w.id for w in await platform.api.workbooks.list(space_id=space.id)] == [wb.id]
    events = await platform.store.read_events(0, 10)
    assert [e.topic for e in events] == ["space:created", "workbook:created", "sheet:created", "sheet:created"]
    assert events[1].context.space_id == space.id and events[1].context.namespace == "red"
    assert events[2].context.sheet_slug == "contacts"


async def test_workbook_bad_input(platform: Platform) -> None:
    with pytest.raises(Invalid, match=r"sheets\.1\.slug"):
        await platform.api.workbooks.create(name="W", sheets=[{"name": "A"}, {"name": "a"}])
    with pytest.raises(Invalid, match=r"actions\.0\.label"):
        await platform.api.workbooks.create(name="W", actions=[{"operation": "x"}])
    with pytest.raises(NotFound):
        await platform.api.workbooks.create(name="W", space_id="sp_missing")
    assert await platform.store.head() == 0


async def test_records_change_in_commits(platform: Platform) -> None:
    wb = await make_workbook(platform)
    sheet = wb.sheets[0]
    head = await platform.store.head()
    rows = await platform.api.records.insert(sheet.id, [{"email": "a@example.com", "age": 30}, {"email": "b@x.io"}])
    await platform.api.records.update(sheet.id, [{"id": rows[0].id, "values": {"age": 31}}])
    await platform.api.records.delete(sheet.id, [rows[1].id])
    page = await platform.api.records.get(sheet.id)
    assert page.total == 1 and page.items[0].values == {"email": "a@example.com", "age": 31}
    commits = await platform.store.read_events(head, 10)
    assert [e.topic for e in commits] == ["commit:created"] * 3
    first = commits[0]
    assert (first.context.workbook_id, first.context.sheet_id, first.context.sheet_slug) == (wb.id, sheet.id,
                                                                                            "contacts")
    assert first.context.commit_id and first.payload["inserted"] == 2
    assert [c.payload["updated"] for c in commits] == [0, 1, 0] and commits[2].payload["deleted"] == 1


@pytest.mark.parametrize(("records", "field"), [
    pytest.param([{"emial": "x"}], "records.0.emial", id="unknown-field"),
    pytest.param([{"email": "ok"}, {"age": "old"}], "records.1.age", id="wrong-type"),
    pytest.param([{"age": True}], "records.0.age", id="bool-is-not-a-number"),
    pytest.param(["not an object"], "records.0", id="not-an-object"),
])
async def test_bad_records_are_refused_whole(platform: Platform, records: list[Any], field: str) -> None:
    wb = await make_workbook(platform)
    head = await platform.store.head()
    with pytest.raises(Invalid) as raised:
        await platform.api.records.insert(wb.sheets[0].id, records)
    assert raised.value.details[0]["field"] == field
    assert (await platform.api.records.get(wb.sheets[0].id)).total == 0
    assert await platform.store.head() == head


async def test_update_of_a_missing_record_changes_nothing(platform: Platform) -> None:
    wb = await make_workbook(platform)
    [row] = await platform.api.records.insert(wb.sheets[0].id, [{"email": "a"}])
    head = await platform.store.head()
    with pytest.raises(NotFound, match="rc_missing"):
        await platform.api.records.update(wb.sheets[0].id, [{"id": row.id, "values": {"email": "changed"}},
                                                            {"id": "rc_missing", "values": {"email": "b"}}])
    assert (await platform.api.records.get(wb.sheets[0].id)).items[0].values == {"email": "a"}
    assert await platform.store.head() == head


async def test_triggering_an_action_creates_the_job(platform: Platform) -> None:
    wb = await make_workbook(platform)
    job = await platform.api.actions.trigger(wb.id, "export")
    assert (job.job, job.source, job.trigger.value, job.status) == ("workbook:export", wb.id, "immediate",
                                                                     JobStatus.READY)
    ready = (await platform.store.read_events(0, 20))[-1]
    assert ready.topic == "job:ready" and ready.context.workbook_id == wb.id
    with pytest.raises(NotFound, match="export"):
        await platform.api.actions.trigger(wb.id, "import")


async def test_sheet_actions_input_forms_and_constraints(platform: Platform) -> None:
    action = {"operation": "dedupe", "label": "Dedupe", "mode": "background", "constraints": [{"type": "hasData"}],
              "inputForm": {"fields": [
                  {"key": "column", "label": "Column", "type": "enum", "constraints": [{"type": "required"}],
                   "config": {"options": [{"value": "email"}, {"value": "name"}]}},
                  {"key": "keep", "label": "Keep", "type": "string", "defaultValue": "first"}]}}
    wb = await platform.api.workbooks.create(name="W", sheets=[{**CONTACTS, "actions": [action]}])
    sheet = wb.sheets[0]
    with pytest.raises(Invalid, match="needs data"):
        await platform.api.actions.trigger(sheet.id, "dedupe", input={"column": "email"})
    await platform.api.records.insert(sheet.id, [{"email": "a"}])
    with pytest.raises(Invalid, match=r"input\.column"):
        await platform.api.actions.trigger(sheet.id, "dedupe", input={})
    with pytest.raises(Invalid, match=r"input\.column"):
        await platform.api.actions.trigger(sheet.id, "dedupe", input={"column": "phone"})
    with pytest.raises(Invalid, match=r"input\.colour"):
        await platform.api.actions.trigger(sheet.id, "dedupe", input={"column": "email", "colour": "red"})
    job = await platform.api.actions.trigger(sheet.id, "dedupe", input={"column": "email"})
    assert (job.job, job.mode.value, job.input) == ("sheet:dedupe", "background", {"column": "email", "keep": "first"})
    ready = (await platform.store.read_events(0, 50))[-1]
    assert (ready.context.sheet_slug, ready.context.workbook_id) == ("contacts", wb.id)


async def test_custom_job_from_a_commit(platform: Platform) -> None:
    """The Flatfile story: a commit on contacts creates a job that a second listener runs."""
    listener = Listener()
    finished = anyio.Event()

    @listener.on("commit:created", sheet="contacts")
    async def on_commit(event: Event) -> None:
        await event.api.jobs.create(type="workbook", operation="myCustomOperation", trigger="immediate",
                                    source=event.context.workbook_id)

    @listener.on("job:ready", job="workbook:myCustomOperation")
    async def run(event: Event) -> None:
        job_id = event.context.job_id or ""
        await event.api.jobs.ack(job_id, info="Starting my custom operation.", progress=10)
        await event.api.jobs.complete(job_id, outcome={"message": "Successfully completed my custom operation."})
        finished.set()

    wb = await make_workbook(platform)
    async with platform.running(listener):
        await platform.api.records.insert(wb.sheets[1].id, [{"x": 1}])  # not contacts: no job
        await platform.api.records.insert(wb.sheets[0].id, [{"email": "a@example.com"}])
        with anyio.fail_after(5):
            await finished.wait()
    jobs = (await platform.api.jobs.list()).items
    assert [(j.job, j.status, j.source) for j in jobs] == [("workbook:myCustomOperation", JobStatus.COMPLETE, wb.id)]
    assert jobs[0].created_by == "agent:default"


async def test_delete_workbook(platform: Platform) -> None:
    wb = await make_workbook(platform)
    await platform.api.records.insert(wb.sheets[0].id, [{"email": "a"}])
    await platform.api.workbooks.delete(wb.id)
    with pytest.raises(NotFound):
        await platform.api.workbooks.get(wb.id)
    with pytest.raises(NotFound):
        await platform.api.records.get(wb.sheets[0].id)
    assert (await platform.store.read_events(0, 20))[-1].topic == "workbook:deleted"
